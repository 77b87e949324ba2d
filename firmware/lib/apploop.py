# The main loop both apps run, and what their passes share (App).
#
# The watchdog is fed only while passes succeed: a loop that keeps failing or
# hangs resets the board, which boots back into a known state.

import json
import sys

import ticks
from configstore import TRIAL_LEASE_MS, ConfigError
from uplink import CommandError

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


def run(app, board, healthy=None):
    """Step `app` for ever: app.step(now) returns the ticks of its next deadline;
    the board waits until then or until something arrives. healthy(), if given,
    is called once, after the first pass that succeeded (the boot is healthy:
    bootcount.py)."""
    failures = 0
    while True:
        now = board.ticks_ms()
        try:
            deadline = app.step(now)
            failures = 0
            if healthy is not None:
                f, healthy = healthy, None
                f()
        except Exception as e:  # noqa: BLE001 - a pass must never end the loop
            failures += 1
            sys.print_exception(e)
            deadline = ticks.add(now, 1000)
        ok = failures < FAILURES_BEFORE_RESET
        if ok:
            board.feed()
        board.wait_until(deadline, ok)


RESTART_DELAY_MS = 2000  # after a new configuration: time for the reply to go out
# Loaded only for an update and forgotten after it (docs/updates.md).
UPDATE_CODE = ("updater", "staging", "release", "p256", "apptrial", "bootcount")


def _exists(path):
    try:
        open(path).close()
        return True
    except OSError:
        return False


class App:
    """What every app's pass ends with: a configuration on trial confirmed or
    rolled back, the console's commands, a restart when one is due. The app
    calls start() first, attach() once its link and console exist, and has
    post(kind, fields) to journal an event."""

    APP = "lamp"  # the app's name in a release's manifest (release.py)
    CHIP = "esp32"  # the chip it runs on when its manifest does not say

    def start(self, store, board):
        self.store = store
        self.board = board
        self.restart_at = None
        self.restart_why = None
        self.uptime_ms = 0
        self._last_step = board.ticks_ms()
        now = board.ticks_ms()
        # The trial's time left, counted across boots (configstore.start_trial).
        self.trial_until = ticks.add(now, store.counted[2]) if store.trial else None
        self.trial_lease = ticks.add(now, TRIAL_LEASE_MS)
        # Updates (updater.py, apptrial.py: loaded only while one runs).
        self.upd = None
        self.upd_info = [0, 0, None]  # refused, bad chunks, the last outcome
        self.app_trial = _exists("/app.trial")  # the app is new, on trial
        self._upd_boot = True
        self._upd_up = False
        import apptrial  # its version(), then forgotten

        self.version = apptrial.version()
        sys.modules.pop("apptrial", None)

    def attach(self, link, console):
        self.link = link
        self.console = console
        if link.uplink is not None:
            link.uplink.handlers["update"] = self.update_command

    def post(self, kind, fields):
        raise NotImplementedError

    def tick(self, now):
        """The start of a pass: the uptime moves on."""
        self.uptime_ms += ticks.diff(now, self._last_step)
        self._last_step = now

    def restart_later(self, why):
        """Restart in RESTART_DELAY_MS: time for the reply to go out first."""
        self.restart_at = ticks.add(self.board.ticks_ms(), RESTART_DELAY_MS)
        self.restart_why = why

    def mqtt_status(self):
        return self.link.status()

    def config_command(self, msg):
        """The centre's `config` command: a whole new configuration, on trial."""
        c = msg.get("config")
        if not isinstance(c, dict):
            raise CommandError('"config" must be the whole configuration, a JSON object')
        try:
            self.store.save(json.dumps(c), trial=True)
        except ConfigError as e:
            raise CommandError("; ".join(e.errors))
        self.restart_later("new configuration installed")
        return {"restart_in_s": RESTART_DELAY_MS // 1000}

    def finish(self, now, deadline):
        """The end of a pass; returns the deadline."""
        if self.store.rolled_back:  # at boot: said once the journal can take it
            self.post("config", {"detail": self.store.rolled_back})
            self.store.rolled_back = None
        if self.trial_until is not None:
            deadline = self._trial(now, deadline)
        if self.upd is not None or self.app_trial or self._upd_boot:
            deadline = self._updates(now, deadline)
        b = self.board
        if b.console_pending:
            self.console.feed(b.console_read())
            if b.console_pending:
                deadline = now  # more waiting: round again at once
        if self.restart_at is not None:
            if ticks.diff(now, self.restart_at) >= 0:
                log_event("restart", self.restart_why)
                b.restart()
            deadline = earliest(now, deadline, ticks.diff(self.restart_at, now))
        return deadline

    # --- updates (docs/updates.md): their code is in updater.py, loaded for them

    def update_command(self, msg):
        import updater

        return updater.get(self).offer(msg)

    def _chunk(self, payload):
        if self.upd is None:
            self.upd_info[1] += 1  # no transfer runs: a stray or late piece
        else:
            self.upd.chunk(payload)

    def update_state(self, s):
        """The state's `app` and `update` (docs/updates.md, "State")."""
        s["app"] = {"version": self.version, "trial": bool(self.app_trial)}
        i = self.upd_info
        if self.upd is None and not (i[0] or i[1] or i[2]):
            s["update"] = None
        else:
            import updater

            s["update"] = updater.state(self)
            if self.upd is None:
                sys.modules.pop("updater", None)  # (said after a refusal: not kept for it)

    def _updates(self, now, deadline):
        boot = self._upd_boot
        if boot:
            self._upd_boot = False
            if not (self.app_trial or _exists("/update.result") or _exists("/stage/offer")):
                return deadline
        try:
            import updater

            return updater.app_pass(self, now, deadline, boot)
        except Exception as e:  # noqa: BLE001 - said and counted: never a pass that fails at every boot
            self.upd = None
            for m in UPDATE_CODE:
                sys.modules.pop(m, None)
            try:
                import os

                os.remove("/stage/offer")  # not taken up again at the next boot
            except OSError:
                pass
            self.upd_info[0] += 1
            self.upd_info[2] = "failed: %s: %s" % (type(e).__name__, e)
            self.post("update_refused", {"code": "failed", "detail": self.upd_info[2]})
            return deadline

    def _trial(self, now, deadline):
        """A configuration on trial: confirmed once the centre is reachable with
        it, rolled back if not within its time (configtrial.TRIAL_MS, across
        boots; its time on flash is extended a lease ahead). The store's files change in one
        atomic step each (configstore.py): a flash that refuses the step is
        said, and the trial ends here all the same (the next boot finds it
        still on trial, and tries again); nothing from the store ends the pass,
        or the watchdog would reset the board at every pass."""
        if self.link.up:
            self.trial_until = None
            try:
                self.store.confirm()
                detail = "new configuration confirmed: the centre is reachable"
            except Exception as e:  # noqa: BLE001 - said, never a reset loop
                detail = "the centre is reachable, but the configuration could not be confirmed: %s" % e
            self.post("config", {"detail": detail})
        elif ticks.diff(now, self.trial_until) >= 0:
            self.trial_until = None
            try:
                self.store.rollback()
                detail = "no contact with the centre with the new configuration: rolled back"
            except Exception as e:  # noqa: BLE001 - said, never a reset loop
                detail = "no contact with the centre, and the rollback failed: %s" % e
            self.post("config", {"detail": detail})
            self.restart_at = now
            self.restart_why = "configuration rolled back"
        else:
            if ticks.diff(now, self.trial_lease) >= 0:
                self.trial_lease = ticks.add(now, TRIAL_LEASE_MS)
                try:
                    self.store.extend_trial()
                except Exception as e:  # noqa: BLE001 - said; the boots still bound it
                    log_event("config", "the trial's time not kept: %s" % e)
            deadline = earliest(now, deadline, ticks.diff(self.trial_until, now))
            deadline = earliest(now, deadline, ticks.diff(self.trial_lease, now))
        return deadline
