# The main loop both apps run, and what their passes share.
#
# The watchdog is fed only while passes succeed: a loop that keeps failing or
# hangs resets the board, which boots back into a known state.

import sys

import ticks

FAILURES_BEFORE_RESET = 3


def log_event(name, detail):
    # One line per event on the serial console: what a technician (and the
    # simulator) reads.
    print("event", name, detail)


def earliest(now, deadline, ms):
    """The earlier of an absolute deadline and `ms` from now (ms < 0: none)."""
    if ms < 0:
        return deadline
    d = ticks.add(now, ms)
    return d if ticks.diff(d, deadline) < 0 else deadline


def run(app, board):
    """Step `app` for ever: app.step(now) returns the ticks of its next deadline;
    the board waits until then or until something arrives."""
    failures = 0
    while True:
        now = board.ticks_ms()
        try:
            deadline = app.step(now)
            failures = 0
        except Exception as e:  # noqa: BLE001 - a pass must never end the loop
            failures += 1
            sys.print_exception(e)
            deadline = ticks.add(now, 1000)
        healthy = failures < FAILURES_BEFORE_RESET
        if healthy:
            board.feed()
        board.wait_until(deadline, healthy)
