# The lamp controller's entry point, on the board and in the simulator.
#
# Order matters: the configuration and the right level come first (no network
# needed), the watchdog starts after the first good pass, then the loop waits
# until the next deadline, a button edge or data from the broker, and goes
# round again. The watchdog is fed only while passes succeed: a loop that keeps
# failing or hangs resets the board, which comes back with the lamp lit (relay
# closed from the first instruction).
#
# The boot is counted before anything of the app's is imported, and whatever
# raises before the first good pass (an import, a MemoryError, pins the chip
# refuses) is kept for safe mode and resets the board: after the configured
# number of such boots in a row, the board boots into safe mode instead
# (bootcount.py, safemode.py; docs/lamp-config.md, "Safe mode").

import bootcount

if bootcount.start():
    import safemode  # noqa: F401 - it runs the board from here: never returns
try:
    import json
    import os
    import sys

    import ticks
    from alarm import KINDS as ALARM_KINDS
    from alarm import RAISED, Alarms
    from apploop import App, earliest, log_event, run
    from board import Board
    from button import Button
    from cmdauth import Auth
    from configstore import Store
    from console import Console
    from controller import Controller
    from counters import Counters
    from journal import Journal
    from link import Link
    from settings import CONFIG, COUNTER_FILE, COUNTERS, DEFAULT_CONFIG, JOURNAL, KEY_FILE, loads
    from timesource import DS3231, TimeKeeper
    from uplink import UNIX_2000, CommandError
except Exception as e:  # noqa: BLE001 - MemoryError too: counted, kept, the board reset
    bootcount.failed(e)

# Controller events kept in the journal (and sent to the centre); the rest,
# like Wi-Fi and MQTT chatter, only go to the console.
JOURNALED = ("mode", "level", "lamp_failure", "lamp_on_unexpected", "relay_failure")


class Lamp(App):
    """Everything the loop steps: network, button, alarm, lighting, uplink."""

    def __init__(self, cfg, store, board, clock):
        self.start(store, board)
        self.cfg = cfg
        self.clock = clock
        self.device = cfg.device or board.device_id()
        self.journal = Journal(os, JOURNAL, self.device)
        base = "park/%s/lamp/%s" % (cfg.site_id, self.device)
        self.auth = Auth(os, KEY_FILE, COUNTER_FILE)
        self.link = Link(
            cfg, board, clock, base, self.device, self.journal, self.state, self._delivered, self.auth
        )
        self.station = self.link.station
        if self.link.uplink is not None:
            self.link.uplink.handlers = {
                "ack": self._ack,
                "resolve": self._resolve,
                "override": self._override,
                "config": self.config_command,
                "time": self._time,
                "status": self._status,
                "test_alarm": self._test_alarm,
            }
        self.alarms = Alarms(board.button_led, cfg.flash, self.post, self._reserve)
        records = self.journal.find(lambda seq, kind: kind in ALARM_KINDS)
        restored = self.alarms.restore(records, board.ticks_ms())
        # From here on a rotation of the journal carries the open alarm's records.
        self.journal.hold(self.alarms.holds)
        if restored is not None:
            log_event("alarm", "%s still open after the reset: shown again" % restored["id"])
            if restored["state"] == RAISED and self.alarms.seq not in self.journal.pending:
                # The broker's PUBACK was journaled, the power went before the
                # alarm_delivered event was.
                self.alarms.delivered(restored["id"])
        self.counters = Counters(COUNTERS, cfg)
        self.counters.on_saved = self.link.changed
        c = self.counters
        log_event("counters", "%d s burning, %d Wh, %d switch cycles" % c.saved)
        if c.problem:
            self.post("counters_problem", {"detail": c.problem})
        self.ctl = Controller(cfg, board, clock, self.alarms)
        self.ctl.on_event = self._controller_event
        self.button = Button(board.button_pin, board.ticks_ms, int(cfg.debounce_ms), int(cfg.stuck_s * 1000))
        board.watch_button(self.button)
        self.attach(self.link, Console(board.console_write, self._console_commands))
        board.watch_console()

    def _console_commands(self):
        # Loaded at the first line typed on the console, not at boot.
        from diag import Diagnostics

        return Diagnostics(self).handlers()

    # --- events --------------------------------------------------------------

    def unix_time(self):
        return self.clock.now() + UNIX_2000 if self.clock.valid else None

    def _reserve(self):
        seq = self.journal.reserve()
        return seq, self.journal.event_id(seq)

    def post(self, kind, fields, critical=False, seq=None):
        """Journal an event (then it is delivered from the journal); returns its id."""
        fields["ts"] = self.unix_time()
        j = self.journal
        if seq is None:
            seq = j.reserve()
        aid = j.event_id(seq)
        # A raise goes into a segment of its own: the quickest write there is,
        # and the pole waits for it (docs/journal.md, "Power cuts").
        j.append(kind, json.dumps(fields), critical, seq, kind == "alarm_raised")
        # Said once it is on flash: a cut in its write leaves no event the console
        # has claimed (an alarm cut in its own write was never shown either).
        log_event(kind, fields.get("detail") or fields.get("alarm") or aid)
        self.link.changed()
        return aid

    def _controller_event(self, name, detail):
        if name in JOURNALED or name.endswith("_cleared"):
            self.post(name, {"detail": detail})
        else:
            log_event(name, detail)

    def _delivered(self, kind, aid):
        if kind == "alarm_raised":
            self.alarms.delivered(aid)

    def _button(self, name):
        if name == "press":
            # The raise is journaled in here, the first write after the press;
            # the controller's pass below shows it.
            self.alarms.press(self.board.ticks_ms(), self.unix_time())
            self.link.changed()
        elif name == "stuck":
            self.post("button_stuck", {"detail": "held over %d s" % self.cfg.stuck_s})
        elif name == "unstuck":
            self.post("button_stuck_cleared", {"detail": "released"})

    def state(self):
        s = self.ctl.status()
        s["device"] = self.device
        s["ts"] = self.unix_time()
        s["alarm"] = self.alarms.open
        s["pending"] = len(self.journal.pending)
        s["boot"] = self.journal.boot
        s["cmd_refused"] = self.auth.refused  # commands without this device's authenticator, or replayed
        s["cmd_refused_why"] = self.auth.why
        self.counters.report(s)
        self.update_state(s)
        if self.button.stuck:
            s["faults"].append("button_stuck")
        return s

    # --- commands from the centre ------------------------------------------

    def _alarm_id(self, msg):
        aid = msg.get("alarm")
        if not isinstance(aid, str):
            raise CommandError('"alarm" must be the alarm id (a string)')
        return aid

    def _ack(self, msg):
        why = self.alarms.acknowledge(self._alarm_id(msg))
        if why:
            raise CommandError(why)

    def _resolve(self, msg):
        why = self.alarms.resolve(self._alarm_id(msg))
        if why:
            raise CommandError(why)

    def _override(self, msg):
        eng = self.ctl.engine
        if msg.get("clear"):
            eng.clear_override()
        else:
            level = msg.get("level")
            minutes = msg.get("minutes")
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 100:
                raise CommandError('"level" must be a whole number from 0 to 100')
            if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 10080:
                raise CommandError('"minutes" must be a whole number from 1 to 10080')
            if not self.clock.valid:
                raise CommandError("the device has no valid time: an override needs one")
            eng.set_override(level, self.clock.now() + minutes * 60, "centre")
        self.ctl.refresh()

    def _time(self, msg):
        ts = msg.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise CommandError('"ts" must be Unix time in whole seconds')
        try:
            step = self.clock.sync(ts - UNIX_2000, "centre")
        except ValueError as e:
            raise CommandError(str(e))
        return {"step_s": step}

    def _status(self, msg):
        return self.state()

    def _test_alarm(self, msg):
        return self.test_alarm()

    def test_alarm(self):
        return {"alarm": self.alarms.press(self.board.ticks_ms(), self.unix_time(), test=True)}

    # --- the pass ------------------------------------------------------------

    def step(self, now):
        """One pass; returns the ticks by which the next is due."""
        deadline = ticks.add(now, 3600000)
        self.tick(now)
        # The network first: a clock it steps is acted on in this same pass.
        deadline = self.link.connect(now, deadline)
        deadline = earliest(now, deadline, self.button.step(now, self._button))
        d = self.ctl.step(now)
        if ticks.diff(d, deadline) < 0:
            deadline = d
        # Counted over the pass just made; a save due wakes the loop then, so that
        # a cut never loses more than counters.SAVE_MS of burning.
        deadline = earliest(now, deadline, self.counters.step(now, self.ctl))
        self.alarms.write()  # a raise the flash refused at the press, again
        deadline = self.link.exchange(now, deadline)
        return self.finish(now, deadline)


def main():
    store = Store(os, CONFIG, DEFAULT_CONFIG, loads)
    cfg = store.load_or(loads)
    board = Board(cfg)
    clock = TimeKeeper(board.clock, DS3231(board.i2c), board.rtc_trusted())
    clock.boot()
    app = Lamp(cfg, store, board, clock)
    app.post("boot", {"detail": clock.source or "no valid time"})
    deadline = app.ctl.step(board.ticks_ms())  # the right level first, no network needed
    board.start_watchdog()
    board.wait_until(deadline)
    run(app, board, lambda: _healthy(int(cfg.safe_mode_boots)))


def _healthy(n):
    # The first pass succeeded: the count cleared, and bootcount's code off the
    # heap (main.py's name for it too: nothing after this can raise out of run()).
    globals().pop("bootcount").healthy(n)
    sys.modules.pop("bootcount", None)


try:
    main()
except Exception as e:  # noqa: BLE001 - as at the imports
    bootcount.failed(e)
