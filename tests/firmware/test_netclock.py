# Wi-Fi station management and NTP sync. CPython, float32, MicroPython.

from civil import to_seconds
from fakehw import SystemClock
from netclock import BACKOFF_MAX_MS, CONNECT_TIMEOUT_MS, NtpSync, Station
from timesource import TimeKeeper


class WLAN:
    """A station whose link the test controls; `connect` only works with the AP in reach."""

    def __init__(self):
        self.reach = False
        self.connected = False
        self.connects = 0

    def active(self, on=None):
        return True

    def connect(self, ssid, key):
        self.connects += 1
        self.connected = self.reach

    def disconnect(self):
        self.connected = False

    def isconnected(self):
        return self.connected and self.reach

    def status(self):
        return 1010 if self.isconnected() else 201


def drive(thing, wlan, ms, until=None):
    """Step `thing` at each deadline it gives for `ms` ms; returns the deadlines."""
    now, out = 0, []
    while now < ms:
        wait = thing.step(now)
        out.append(wait)
        now += max(wait, 1)
        if until is not None and until():
            break
    return out


def test_retries_are_bounded_and_back_off():
    w = WLAN()
    events = []
    st = Station(w, "park-iot", "k", lambda n, d: events.append((n, d)))
    now = 0
    while now < 3600000:
        now += max(st.step(now), 1)
    # Each attempt waits at most CONNECT_TIMEOUT_MS, then backs off up to 5 minutes:
    # about 14 attempts in the first hour, not a busy loop.
    assert 10 <= w.connects <= 20
    assert st.state != "up"
    assert len(events) == 2  # said at the first miss and when retries slow down, not each time
    # The AP comes back: connected within one back-off period.
    w.reach = True
    start = now
    while st.state != "up":
        now += max(st.step(now), 1)
    assert now - start <= BACKOFF_MAX_MS + CONNECT_TIMEOUT_MS
    assert events[-1][0] == "wifi" and events[-1][1].startswith("up after")
    # The link drops: noticed at the next link check, and connecting starts again.
    w.reach = False
    now += st.step(now)
    st.step(now)
    assert st.state == "connecting" and ("wifi", "down") in events


def keeper(t=None):
    k = TimeKeeper(SystemClock(t if t is not None else to_seconds(2026, 12, 21, 12)))
    if t is not None:
        k.sync(t, "ds3231")
    return k


def test_ntp_sets_the_clock_and_keeps_its_interval():
    k = keeper()
    server = [to_seconds(2026, 12, 21, 12, 0, 5)]
    events = []
    ntp = NtpSync(k, lambda: server[0], 3600, lambda n, d: events.append((n, d)))
    assert not k.valid
    assert ntp.step(0, True) == 3600000
    assert k.valid and k.source == "ntp" and k.now() == server[0]
    assert ntp.step(1000, True) == 3599000  # not due yet: no question asked
    assert ntp.step(0, False) == 3600000  # offline: nothing to do


def test_ntp_failure_is_retried_in_a_minute():
    k = keeper(to_seconds(2026, 12, 21, 12))

    def silent():
        raise OSError(110)

    events = []
    ntp = NtpSync(k, silent, 3600, lambda n, d: events.append((n, d)))
    assert ntp.step(0, True) == 60000
    assert ntp.failures == 1 and events[0][0] == "ntp"


def test_an_unreadable_ntp_answer_is_a_failure_not_a_crash():
    # ntptime unpacks the answer's bytes 40..44: a short datagram (a broken or
    # hostile server) makes MicroPython's struct raise ValueError, not OSError.
    k = keeper(to_seconds(2026, 12, 21, 12))

    def short_answer():
        raise ValueError("buffer too small")

    events = []
    ntp = NtpSync(k, short_answer, 3600, lambda n, d: events.append((n, d)))
    assert ntp.step(0, True) == 60000
    assert ntp.failures == 1 and events == [("ntp", "unreadable answer (buffer too small)")]
    assert k.now() == to_seconds(2026, 12, 21, 12)  # the clock untouched


def test_a_step_back_of_two_hours_is_taken_at_once():
    t = to_seconds(2026, 12, 21, 23, 30)
    k = keeper(t)
    ntp = NtpSync(k, lambda: t - 7200, 3600)
    ntp.step(0, True)
    assert k.now() == t - 7200


def test_a_jump_of_days_needs_a_second_answer():
    t = to_seconds(2026, 12, 21, 12)
    k = keeper(t)
    answers = [t + 10 * 86400, t + 10 * 86400 + 60]
    ntp = NtpSync(k, lambda: answers.pop(0), 3600)
    assert ntp.step(0, True) == 60000 and k.now() == t  # held back
    k.system.t += 60
    ntp.step(60000, True)  # a minute later, the server says the same: believed
    assert k.now() == t + 10 * 86400 + 60
    # A single wild answer, contradicted by the next, changes nothing.
    k2 = keeper(t)
    wild = [t + 400 * 86400, t + 60]
    ntp2 = NtpSync(k2, lambda: wild.pop(0), 3600)
    ntp2.step(0, True)
    k2.system.t += 60
    ntp2.step(60000, True)
    assert k2.now() == t + 60


def test_insane_times_are_refused():
    k = keeper()
    ntp = NtpSync(k, lambda: to_seconds(1999, 1, 1), 3600)
    assert ntp.step(0, True) == 60000
    assert not k.valid and k.rejected == 1


def test_the_first_setting_of_the_clock_is_not_called_a_step():
    # Regression: a board with no valid time said `clock ntp +851203920 s` (27
    # years, from 2000) when NTP first answered: a step from a time nobody used.
    k = keeper()
    server = [to_seconds(2026, 12, 22, 8, 3, 16)]
    events = []
    ntp = NtpSync(k, lambda: server[0], 60, lambda n, d: events.append((n, d)))
    ntp.step(0, True)
    assert events == [("clock", "set by ntp (no valid time before)")]
    server[0] -= 7200
    ntp.step(60000, True)
    assert events[-1] == ("clock", "ntp -7200 s")  # a correction is a step, with its size
