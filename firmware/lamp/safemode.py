# Safe mode: what the lamp runs instead of its app after bootcount.LIMIT (the
# configuration's safe_mode_boots) boots in a row that never became healthy
# (docs/lamp-config.md, "Safe mode"). main.py imports it before anything of the
# app's, and it runs the board from here on.
#
# Only what a pole needs to be fixed from afar: the lamp lit at its fail-safe
# level, the console, the link to the centre and the `config` command. The
# schedule, the photocell, the alarm button and the counters are not run (their
# code may be what fails). Safe mode says so, with the last failure, to the
# centre (a `safe_mode` event) and on the console (`diag status`, `diag
# safemode`). A new configuration (from the centre or `config set`) or the
# console's `safemode leave` leaves it: the count is cleared, the board restarts.
# A configuration on trial when safe mode begins is rolled back at once, and the
# board restarts with the last good one.

import json
import os

import bootcount
import diagbase
import ticks
from apploop import App, log_event, run
from board import Board, failsafe
from boardbase import Board as BaseBoard
from cmdauth import Auth
from configstore import Store
from console import Console
from journal import Journal
from link import Link
from settings import CONFIG, COUNTER_FILE, DEFAULT_CONFIG, JOURNAL, KEY_FILE, loads
from timesource import TimeKeeper
from uplink import UNIX_2000, CommandError


class SafeBoard(BaseBoard):
    """The board's clock, console, network and watchdog: nothing of the lamp's
    own (its pins may be what fails), but its device id."""

    PREFIX = Board.PREFIX

    def __init__(self, cfg, pwm):
        super().__init__(cfg)
        self.pwm = pwm  # safe mode's light (board.failsafe): kept referenced


class Safe(App):
    def __init__(self, cfg, store, board, clock, boots, failure, lit):
        self.start(store, board)
        self.cfg = cfg
        self.clock = clock
        self.boots = boots
        self.failure = failure
        self.level = cfg.failsafe_level
        self.device = cfg.device or board.device_id()
        self.journal = Journal(os, JOURNAL, self.device)
        # Not the app's alarm code (it may be what fails): an open alarm's
        # records are kept through a rotation all the same.
        self.journal.hold(lambda i, kind, body: kind.startswith("alarm"))
        self.auth = Auth(os, KEY_FILE, COUNTER_FILE)
        base = "park/%s/lamp/%s" % (cfg.site_id, self.device)
        self.link = Link(
            cfg, board, clock, base, self.device, self.journal, self.state, lambda k, a: None, self.auth
        )
        self.station = self.link.station
        if self.link.uplink is not None:
            self.link.uplink.handlers = {"config": self.config_command, "status": lambda m: self.state()}
        self.attach(self.link, Console(board.console_write, lambda: Diagnostics(self).handlers()))
        board.watch_console()
        self.why = "%d boots in a row never became healthy: safe mode, the lamp at %d %%%s" % (
            boots,
            int(self.level),
            "" if lit else " (its pins refused: on the default ones)",
        )

    def unix_time(self):
        return self.clock.now() + UNIX_2000 if self.clock.valid else None

    def post(self, kind, fields):
        fields["ts"] = self.unix_time()
        seq = self.journal.reserve()
        self.journal.append(kind, json.dumps(fields), False, seq)
        log_event(kind, fields.get("detail"))
        self.link.changed()

    def state(self):
        s = {
            "device": self.device,
            "ts": self.unix_time(),
            "mode": "safe_mode",
            "reason": self.why,
            "level": self.level,
            "faults": ["safe_mode"],
            "safe_mode": {"boots": self.boots, "failure": self.failure},
            "pending": len(self.journal.pending),
            "boot": self.journal.boot,
            "time_valid": self.clock.valid,
            "cmd_refused": self.auth.refused,
        }
        self.update_state(s)
        return s

    def config_command(self, msg):
        r = App.config_command(self, msg)
        bootcount.healthy()  # a new configuration: tried afresh at the restart
        return r

    def _trial(self, now, deadline):
        # Never confirmed here (the app has not run with it): the configuration
        # on trial is the likeliest cause of the failed boots.
        self.trial_until = None
        try:
            self.store.rollback()
            bootcount.healthy()
            why = "the configuration on trial rolled back: the board fell into safe mode with it"
        except OSError as e:
            why = "the configuration on trial could not be rolled back: %s" % e
        self.post("config", {"detail": why})
        self.restart_later("configuration rolled back")
        return deadline

    def step(self, now):
        deadline = ticks.add(now, 3600000)
        self.tick(now)
        deadline = self.link.connect(now, deadline)
        deadline = self.link.exchange(now, deadline)
        return self.finish(now, deadline)


class Diagnostics(diagbase.Diagnostics):
    APP = "lamp"

    def handlers(self):
        h = super().handlers()
        h["safemode"] = self.safemode
        return h

    def config(self, args, line):
        r = super().config(args, line)
        if args[:1] == ["set"]:
            bootcount.healthy()  # a new configuration: tried afresh at the restart
        return r

    def safemode(self, args, line):
        app = self.app
        if args == ["leave"]:
            bootcount.healthy()
            app.restart_later("safe mode left from the console")
            return {"safe_mode": False, "restart_in_s": 2}
        if args:
            raise CommandError("safemode (why the lamp is in it) or safemode leave (restarts the app)")
        n, lim, _ = bootcount.read()
        return {"safe_mode": True, "failed_boots": n, "limit": lim, "failure": app.failure}


def main():
    boots, _, failure = bootcount.read()
    store = Store(os, CONFIG, DEFAULT_CONFIG, loads)
    cfg = store.load_or(loads)
    duty = int(65535 * (cfg.failsafe_level / 100) ** cfg.gamma)
    lit = True
    try:
        pwm = failsafe(cfg.pins, duty)
    except (ValueError, OSError) as e:
        # Pins the chip refuses (maybe why the app failed): the DevKitC's.
        log_event("safe_mode", "the configuration's pins refused (%s): the default ones lit" % e)
        lit = False
        pwm = failsafe(loads().pins, duty)
    board = SafeBoard(cfg, pwm)
    if not failure:  # nothing raised: the boot hung, or the power went
        c = board.reset_cause()
        failure = "none caught: the last boot ended by %s" % (
            "the watchdog (it hung before its first good pass)" if c == 3 else "reset cause %d" % c
        )
    clock = TimeKeeper(board.clock, None, board.rtc_trusted())
    clock.boot()
    app = Safe(cfg, store, board, clock, boots, failure, lit)
    app.post("safe_mode", {"detail": app.why, "failure": failure, "boots": boots})
    board.start_watchdog()
    run(app, board)


main()
