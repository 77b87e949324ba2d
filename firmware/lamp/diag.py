# The lamp's diagnostics console commands (docs/diagnostics.md): what a field
# technician runs over USB with `parkctl diag`, while the lamp stays lit.

import gc
import json
import os

from civil import format_datetime, parse_clock, parse_date, to_seconds
from lampconfig import ConfigError, loads
from uplink import UNIX_2000, CommandError

MANIFEST = "/manifest.json"
LOG_MAX = 100
RAMP = (25, 50, 75, 100)  # % duty steps of the self-test's PWM ramp
RAMP_STEP_MS = 50
SECRETS = ("key", "password")


def read_manifest(path=MANIFEST):
    """(version, hash) of the build on the board's filesystem; (None, None) without one."""
    try:
        with open(path) as f:
            m = json.loads(f.read())
        return m.get("version"), m.get("hash")
    except (OSError, ValueError, AttributeError):
        return None, None


def _masked(obj):
    net = obj.get("network") if isinstance(obj, dict) else None
    if isinstance(net, dict):
        for k in SECRETS:
            if net.get(k):
                net[k] = "***"
    return obj


def _parse_iso(text):
    """Park time (UTC seconds since 2000) from YYYY-MM-DDTHH:MM[:SS][Z]."""
    if text.endswith("Z"):
        text = text[:-1]
    if "T" not in text:
        raise CommandError("time set wants UTC as YYYY-MM-DDTHH:MM:SSZ, not %r" % text)
    day, clock = text.split("T", 1)
    try:
        y, m, d = parse_date(day)
        s = parse_clock(clock)
    except ValueError as e:
        raise CommandError("time set: %s" % e)
    return to_seconds(y, m, d) + s


class Diagnostics:
    def __init__(self, app):
        self.app = app
        self.test_mode = False
        self.version, self.manifest = read_manifest()

    def handlers(self):
        return {
            "help": self.help,
            "status": self.status,
            "log": self.log,
            "selftest": self.selftest,
            "time": self.time,
            "config": self.config,
            "alarm": self.alarm,
            "reboot": self.reboot,
            "test": self.test,
        }

    def help(self, args, line):
        return sorted(self.handlers())

    def status(self, args, line):
        app = self.app
        b = app.board
        s = app.state()
        s["app"] = "lamp"
        s["version"] = self.version
        s["manifest"] = self.manifest
        s["uptime_s"] = app.uptime_ms // 1000
        s["reset_cause"] = b.reset_cause()
        gc.collect()
        s["heap_free"] = gc.mem_free()
        st = os.statvfs("/")
        s["flash_free"] = st[0] * st[3]
        s["wifi"] = app.station.up if app.station is not None else None
        s["mqtt"] = app.mqtt_status()
        s["console_errors"] = app.console.errors
        return s

    def log(self, args, line):
        n = 10
        if args:
            if not args[0].isdigit() or not 1 <= int(args[0]) <= LOG_MAX:
                raise CommandError("log N: N is a whole number from 1 to %d" % LOG_MAX)
            n = int(args[0])
        j = self.app.journal
        out = []
        for seq, aid, kind, body in j.recent(n):
            try:
                fields = json.loads(body)
            except ValueError:
                fields = body
            out.append({"id": aid, "kind": kind, "delivered": seq not in j.pending, "fields": fields})
        return out

    def selftest(self, args, line):
        app = self.app
        b = app.board
        out = {}
        lit = app.ctl.status()["level"] > 0
        if lit:
            why = "skipped: the lamp is lit (the test would interrupt its light)"
            out["relay"] = out["pwm_ramp"] = why
        else:
            out["relay"], out["pwm_ramp"] = self._ramp(b)
        out["light_adc"] = b.light_adc.read_u16()
        out["current_adc"] = b.current_adc.read_u16()
        out["button"] = "pressed" if app.button.pressed else "released"
        out["button_stuck"] = app.button.stuck
        try:
            out["ds3231"] = 0x68 in b.i2c.scan()
        except OSError:
            out["ds3231"] = False
        st = os.statvfs("/")
        out["flash_free"] = st[0] * st[3]
        gc.collect()
        out["heap_free"] = gc.mem_free()
        out["journal_torn"] = app.journal.torn
        out["ok"] = out["ds3231"] and not out["button_stuck"] and out["flash_free"] > 16384
        return out

    def _ramp(self, b):
        """Relay closed, PWM stepped up with the lamp current read at each step, then
        everything as it was (only while the lamp is meant to be dark)."""
        relay_was = b.relay.value()
        duty_was = b.pwm.duty_u16()
        amps = []
        try:
            b.relay.value(b.relay_active)
            for pct in RAMP:
                b.pwm.duty_u16(pct * 65535 // 100)
                b.sleep_ms(RAMP_STEP_MS)
                amps.append(b.current_adc.read_u16())
        finally:
            b.pwm.duty_u16(duty_was)
            b.relay.value(relay_was)
        rising = all(amps[i] < amps[i + 1] for i in range(len(amps) - 1))
        return "clicked", {"duty_pct": list(RAMP), "current_adc": amps, "rising": rising}

    def time(self, args, line):
        clock = self.app.clock
        if args and args[0] == "set":
            if len(args) != 2:
                raise CommandError("time set wants one argument: UTC as YYYY-MM-DDTHH:MM:SSZ")
            try:
                step = clock.sync(_parse_iso(args[1]), "console")
            except ValueError as e:
                raise CommandError(str(e))
            self.app.ctl.refresh()
            return {"step_s": step, "utc": format_datetime(clock.now()) + "Z"}
        if args:
            raise CommandError("time or time set ISO, not time %s" % args[0])
        return {
            "utc": format_datetime(clock.now()) + "Z",
            "unix": clock.now() + UNIX_2000,
            "valid": clock.valid,
            "source": clock.source,
        }

    def config(self, args, line):
        action = args[0] if args else None
        store = self.app.store
        if action == "get":
            for path in (store.path, store.default_path):
                try:
                    with open(path) as f:
                        return {"file": path, "trial": store.trial, "config": _masked(json.loads(f.read()))}
                except (OSError, ValueError):
                    pass
            raise CommandError("no configuration file on the board")
        if action in ("set", "validate"):
            text = line.split(None, 2)[2] if len(args) > 1 else ""
            if not text:
                raise CommandError("config %s wants the whole configuration as JSON on the line" % action)
            try:
                if action == "validate":
                    loads(text)
                    return {"valid": True, "errors": []}
                self.app.store.save(text)
            except ConfigError as e:
                if action == "validate":
                    return {"valid": False, "errors": e.errors}
                raise CommandError("; ".join(e.errors))
            self.app.restart_later("configuration installed from the console")
            return {"installed": store.path, "restart_in_s": 2}
        raise CommandError("config get, config set JSON or config validate JSON")

    def alarm(self, args, line):
        if args != ["test"]:
            raise CommandError("alarm test: the only alarm command (raises a test alarm)")
        return self.app.test_alarm()

    def reboot(self, args, line):
        self.app.restart_later("reboot from the console")
        return {"restart_in_s": 2}

    def test(self, args, line):
        """The HIL rig's hands on a real board (docs/hil.md): pins jumpered to the
        app's inputs, driven only in test mode, which only this command enters."""
        b = self.app.board
        what = args[0] if args else None
        if what in ("on", "off"):
            self.test_mode = what == "on"
            return {"test_mode": self.test_mode}
        if not self.test_mode:
            raise CommandError("not in test mode: `test on` first (for the HIL rig only)")
        try:
            nums = [int(a) for a in args[1:]]
        except ValueError:
            raise CommandError("test %s: pins and times are whole numbers" % what)
        if what == "pulse" and len(nums) == 2:
            b.test_pulse(nums[0], nums[1])
            return {"pin": nums[0], "ms": nums[1]}
        if what == "pin" and len(nums) in (1, 2):
            return b.test_pin(nums[0], nums[1] if len(nums) == 2 else None)
        if what == "adc" and len(nums) == 1:
            return b.test_adc(nums[0])
        if what == "hang" and len(nums) <= 1:
            # The watchdog, shortened (S seconds, default the lamp's), then a loop that
            # never feeds it: the board must reset and come back lit right.
            b.start_watchdog(nums[0] * 1000 if nums else None)
            while True:
                pass
        raise CommandError("test on|off, test pulse PIN MS, test pin PIN [0|1], test adc PIN, test hang [S]")
