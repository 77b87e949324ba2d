# The check-in kiosk's entry point, on the board and in the simulator.
#
# A face-recognition module on a UART reports who stands in front of it; the
# kiosk welcomes a recognised person by name, records the check-in in the
# on-flash journal first and delivers it to the centre from there (at least
# once, with a unique id), so it works offline for days. No image is ever
# kept: a check-in is a person's id, the time and the device (docs/privacy.md).

# Its boots are counted as the lamp's are (bootcount.py), for an update's trial:
# a new app that fails before its first good pass is rolled back at the next
# boot (apptrial.py). The kiosk has no safe mode: at the count's limit it goes
# on trying its app.
import bootcount

bootcount.start()
try:
    import json
    import os
    import sys

    import ticks
    from apploop import App, earliest, log_event, run
    from board import Board
    from checkin import ALREADY, WELCOME, CheckIns
    from civil import split
    from cmdauth import Auth
    from configstore import Store
    from console import Console
    from facemodule import ERROR, FACE, JsonFaceModule
    from font import Boxes, Font
    from journal import Journal
    from kioskconfig import FALLBACK, loads, parse
    from link import Link
    from roster import Roster, RosterError, RosterFile, install, same
    from screens import Screens
    from timesource import TimeKeeper
    from uplink import UNIX_2000, CommandError
except Exception as e:  # noqa: BLE001 - as the lamp's main.py: counted, kept, the board reset
    bootcount.failed(e)

CONFIG = "/kiosk.json"  # what the centre or a technician installed
DEFAULT_CONFIG = "/config.json"  # shipped with the app
KEY_FILE = "/cmd.key"  # the device's command key, hex (provisioning writes it)
COUNTER_FILE = "/cmd.ctr"  # the last command counter accepted (docs/security.md)
JOURNAL = "/events"
ROSTER = "/roster.db"  # the roster in force, searched on flash (roster.py)
TODAY = "/today.txt"  # "DAY COUNT": today's check-ins, for the idle screen
FONT = "/font16.bin"
# Check-ins never make way for newer ones (critical): room for days offline.
SEGMENTS = 16
SEGMENT_RECORDS = 128
CLEAN_MS = 60000  # delivered check-ins are erased at most this often
RETENTION_CHECK_MS = 3600000  # undelivered ones past the retention: looked for hourly
MAX_PACKET = 16384  # a roster of a few hundred people arrives in one message
BEEP_MS = 120


def _fields(body):
    """An event's JSON body as a dict ({} if it is not one)."""
    try:
        v = json.loads(body)
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


class Kiosk(App):
    APP = "kiosk"
    CHIP = "esp32s3"

    def __init__(self, cfg, store, board, clock):
        self.start(store, board)
        self.cfg = cfg
        self.clock = clock
        self.device = cfg.device or board.device_id()
        self.journal = Journal(os, JOURNAL, self.device, SEGMENTS, SEGMENT_RECORDS)
        self.base = "park/%s/kiosk/%s" % (cfg.site_id, self.device)
        self.roster_topic = "park/%s/kiosk/roster" % cfg.site_id
        self.roster = self._load_roster()
        log_event("roster", self._roster_text())
        self.checkins = CheckIns(self.roster, cfg.threshold, cfg.window_s, cfg.liveness)
        self.face = JsonFaceModule(cfg.face_crc)
        self.face_errors = 0  # error frames the module sent
        self.roster_refused = 0
        self.expired = 0  # undelivered check-ins erased after the retention
        self.auth = Auth(os, KEY_FILE, COUNTER_FILE)
        self.link = Link(
            cfg,
            board,
            clock,
            self.base,
            self.device,
            self.journal,
            self.state,
            self._delivered,
            self.auth,
            MAX_PACKET,
        )
        self.station = self.link.station
        up = self.link.uplink
        if up is not None:
            up.handlers = {"purge": self._purge_cmd, "status": self._status, "config": self.config_command}
            up.listen(self.roster_topic, self._roster_update)
        self.attach(self.link, Console(board.console_write, self._console_commands))
        board.watch_console()
        board.wake_on(board.face)
        try:
            font = Font(FONT)
        except (OSError, ValueError) as e:
            log_event("font", "cannot read %s: %s; every character shows as a box" % (FONT, e))
            font = Boxes()
        self.screens = Screens(board.fb, font, cfg.name)
        self.day, self.today = self._load_today()
        self.shown = None  # what the idle screen shows now, to redraw only on a change
        self.hold_until = None  # ticks: a check-in's screen stays until then
        self.beep_until = None
        # Ticks: erase delivered check-ins and expired ones then. At boot first:
        # records may have aged while the power was off.
        self.clean_at = board.ticks_ms()
        self.untimed = 0  # check-ins of this boot recorded before the clock was known
        self._restore_window()

    def _console_commands(self):
        # Loaded at the first line typed on the console, not at boot.
        from diag import Diagnostics

        return Diagnostics(self).handlers()

    # --- state on flash ------------------------------------------------------

    def _load_roster(self):
        try:
            return RosterFile(ROSTER)
        except OSError:
            pass  # none yet
        except RosterError as e:
            log_event("roster", "%s is damaged (%s)" % (ROSTER, e))
        return Roster()

    def _roster_text(self):
        r = self.roster
        if not r.version:
            return "none yet: waiting for the centre's"
        return "version %d, %d people" % (r.version, len(r))

    def _load_today(self):
        try:
            with open(TODAY) as f:
                day, n = f.read().split()
            return int(day), int(n)
        except (OSError, ValueError):
            return None, 0

    def _save(self, path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)

    def _local_day(self):
        if not self.clock.valid:
            return None
        return self.cfg.tz.to_local(self.clock.now()) // 86400

    def _restore_window(self):
        """Who checked in within the repeat window before a reset: still 'already'."""
        if not self.clock.valid or not self.cfg.window_s:
            return
        now = self.clock.now() + UNIX_2000
        mono = self.uptime_ms // 1000
        for _, _, _, body in self.journal.find(lambda seq, kind: kind == "checkin"):
            rec = _fields(body)
            ts, pid = rec.get("ts"), rec.get("person")
            if isinstance(ts, int) and isinstance(pid, str) and 0 <= now - ts < self.cfg.window_s:
                self.checkins.last[pid] = mono - (now - ts)

    # --- events ----------------------------------------------------------------

    def unix_time(self):
        return self.clock.now() + UNIX_2000 if self.clock.valid else None

    def post(self, kind, fields, critical=False):
        fields["ts"] = self.unix_time()
        aid = self.journal.append(kind, json.dumps(fields), critical)
        log_event(kind, fields.get("detail") or aid)
        self.link.changed()
        return aid

    def _delivered(self, kind, aid):
        soon = ticks.add(self.board.ticks_ms(), CLEAN_MS)
        if kind == "checkin" and ticks.diff(soon, self.clean_at) < 0:
            self.clean_at = soon

    def state(self):
        s = {
            "device": self.device,
            "ts": self.unix_time(),
            "roster": self.roster.version,
            "people": len(self.roster),
            "today": self.today if self.day == self._local_day() else 0,
            "pending": len(self.journal.pending),
            "boot": self.journal.boot,
            "time_valid": self.clock.valid,
            "cmd_refused": self.auth.refused,
            "cmd_refused_why": self.auth.why,
        }
        self.update_state(s)
        return s

    def face_counts(self):
        f = self.face
        c = self.checkins
        return {
            "frames": f.frames,
            "bad_crc": f.bad_crc,
            "malformed": f.malformed,
            "module_errors": self.face_errors,
            "rejected": c.rejected,
            "repeats": c.repeats,
        }

    # --- the centre ------------------------------------------------------------

    def _roster_update(self, payload):
        if same(payload, self.roster):
            return  # the retained roster again, after a reconnect
        self.roster.close()  # not open while the new file is renamed over it
        try:
            install(payload, self.roster, ROSTER, os)
        except RosterError as e:
            self.roster_refused += 1
            self.post("roster_refused", {"detail": str(e)})
            return
        finally:
            self.roster = self.checkins.roster = self._load_roster()
        self.post("roster", {"detail": self._roster_text()})

    def purge(self, pid):
        """Erase every check-in of one person from the kiosk (delivered or not)."""
        n = self.journal.erase(
            lambda seq, kind, body, pending: kind == "checkin" and _fields(body).get("person") == pid
        )
        self.checkins.last.pop(pid, None)
        log_event("purge", "%d check-in(s) erased" % n)
        return n

    def _purge_cmd(self, msg):
        pid = msg.get("person")
        if not isinstance(pid, str) or not pid:
            raise CommandError('"person" must be the person\'s id (a string)')
        return {"erased": self.purge(pid)}

    def _status(self, msg):
        s = self.state()
        s["face"] = self.face_counts()
        return s

    def _clean(self):
        """Privacy: a delivered check-in is erased once its repeat window is over;
        an undelivered one once it is older than the retention."""
        now = self.unix_time()
        if now is None:
            return False
        keep_s = self.cfg.window_s
        retain_s = self.cfg.retention_days * 86400
        expired = [0]
        waiting = [False]

        def drop(seq, kind, body, pending):
            if kind != "checkin":
                return False
            ts = _fields(body).get("ts")
            if not isinstance(ts, int):
                return not pending  # no time: erased as soon as delivered
            if pending:
                if now - ts > retain_s:
                    expired[0] += 1
                    return True
                return False
            if now - ts >= keep_s:
                return True
            waiting[0] = True  # delivered, still in its window: next time
            return False

        self.journal.erase(drop)
        if expired[0]:
            self.expired += expired[0]
            self.post(
                "checkins_expired",
                {
                    "detail": "%d undelivered check-in(s) older than %d days erased"
                    % (expired[0], self.cfg.retention_days)
                },
            )
        return waiting[0]

    def _time_untimed(self):
        """The clock is known now: check-ins of this boot recorded without a time
        get theirs, from the uptime, before they go to the centre."""
        now = self.clock.now() + UNIX_2000
        mono_now = self.uptime_ms // 1000
        boot = self.journal.boot

        def fix(seq, kind, body, pending):
            if kind != "checkin" or '"mono"' not in body:
                return body
            rec = _fields(body)
            if rec.get("boot") != boot or not isinstance(rec.get("mono"), int):
                return body  # an earlier boot's: its uptime means nothing now
            ts = now - (mono_now - rec.pop("mono"))
            rec.pop("boot")
            rec["ts"] = ts
            return json.dumps(rec)

        self.journal.rewrite(fix)
        self.untimed = 0
        self._restore_window()

    # --- the screen ------------------------------------------------------------

    def _clock_text(self, t=None):
        if t is None:
            if not self.clock.valid:
                return "--:--"
            t = self.clock.now()
        hh, mm = split(self.cfg.tz.to_local(t))[3:5]
        return "%02d:%02d" % (hh, mm)

    def _idle(self, now):
        """Redraw the idle screen if what it shows changed; ms until the next minute."""
        day = self._local_day()
        if day is not None and day != self.day:
            self.day, self.today = day, 0
        pending = len(self.journal.pending)
        key = (self._clock_text(), self.today, self.link.up, pending)
        if key != self.shown:
            self.screens.idle(key[0], key[1], key[2], key[3])
            self.board.show()
            self.shown = key
        if not self.clock.valid:
            return 60000
        return (60 - self.clock.now() % 60) * 1000

    def _face(self, ev, now):
        if ev[0] == ERROR:
            self.face_errors += 1
            self._hold(now, self.screens.error, "face module: " + ev[1])
            return
        if ev[0] != FACE:
            return
        if not len(self.roster):
            self.checkins.decide(ev, self.uptime_ms // 1000)  # counted all the same
            self._hold(now, self.screens.error, "no roster from the centre yet")
            return
        got = self.checkins.decide(ev, self.uptime_ms // 1000)
        if got is None:
            return
        screen, d = got
        if screen == WELCOME:
            rec = {"person": d["id"]}
            if not self.clock.valid:
                # Timed once the clock is known (_time_untimed), from the uptime.
                rec["mono"] = self.uptime_ms // 1000
                rec["boot"] = self.journal.boot
                self.untimed += 1
            self.post("checkin", rec, critical=True)
            day = self._local_day()
            if day is not None and day != self.day:
                self.day, self.today = day, 0
            self.today += 1
            if self.day is not None:  # without the date, today's count stays in RAM
                self._save(TODAY, "%d %d" % (self.day, self.today))
            self._hold(now, self.screens.welcome, d["name"], self._clock_text())
            self.board.buzz(True)
            self.beep_until = ticks.add(now, BEEP_MS)
        elif screen == ALREADY:
            ago = self.uptime_ms // 1000 - int(d["at"])
            first = self.clock.now() - ago if self.clock.valid else None
            self._hold(now, self.screens.already, d["name"], self._clock_text(first))
        else:
            self._hold(now, self.screens.not_recognised)

    def _hold(self, now, draw, *args):
        draw(*args)
        self.board.show()
        self.shown = None
        self.hold_until = ticks.add(now, self.cfg.show_s * 1000)

    # --- the pass ----------------------------------------------------------------

    def step(self, now):
        deadline = ticks.add(now, 3600000)
        self.tick(now)
        deadline = self.link.connect(now, deadline)
        if self.untimed and self.clock.valid:
            self._time_untimed()
        data = self.board.face_read()
        if data:
            for ev in self.face.feed(data):
                self._face(ev, now)
        if self.beep_until is not None:
            if ticks.diff(now, self.beep_until) >= 0:
                self.board.buzz(False)
                self.beep_until = None
            else:
                deadline = earliest(now, deadline, ticks.diff(self.beep_until, now))
        if self.hold_until is not None and ticks.diff(now, self.hold_until) >= 0:
            self.hold_until = None
        if self.hold_until is None:
            deadline = earliest(now, deadline, self._idle(now))
        else:
            deadline = earliest(now, deadline, ticks.diff(self.hold_until, now))
        if ticks.diff(now, self.clean_at) >= 0:
            self.clean_at = ticks.add(now, CLEAN_MS if self._clean() else RETENTION_CHECK_MS)
        deadline = earliest(now, deadline, ticks.diff(self.clean_at, now))
        deadline = self.link.exchange(now, deadline)
        return self.finish(now, deadline)


def main():
    store = Store(os, CONFIG, DEFAULT_CONFIG, loads)
    cfg = store.load_or(lambda: parse(FALLBACK))
    board = Board(cfg)
    board.start_display()
    clock = TimeKeeper(board.clock, None, board.rtc_trusted())
    clock.boot()
    app = Kiosk(cfg, store, board, clock)
    app.post("boot", {"detail": clock.source or "no valid time"})
    deadline = app.step(board.ticks_ms())
    board.start_watchdog()
    board.wait_until(deadline)
    run(app, board, _healthy)


def _healthy():
    # The first pass succeeded: the count cleared, bootcount's code off the heap.
    globals().pop("bootcount").healthy()
    sys.modules.pop("bootcount", None)


try:
    main()
except Exception as e:  # noqa: BLE001 - as at the imports
    bootcount.failed(e)
