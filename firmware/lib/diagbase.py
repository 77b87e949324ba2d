# The diagnostics console commands both apps have (docs/diagnostics.md): what a
# field technician runs over USB with `parkctl diag`, while the device keeps
# working. Each app's diag module subclasses Diagnostics with its own commands.

import gc
import json
import os

from civil import format_datetime, parse_clock, parse_date, to_seconds
from configstore import ConfigError
from uplink import UNIX_2000, CommandError

MANIFEST = "/manifest.json"
LOG_MAX = 100
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
    APP = "device"

    def __init__(self, app):
        """app: the app's object (state(), journal, clock, store, board, console,
        station, mqtt_status(), uptime_ms, restart_later(why)); its store's
        parser checks a configuration."""
        self.app = app
        self.loads = app.store.loads
        self.version, self.manifest = read_manifest()

    def handlers(self):
        return {
            "help": self.help,
            "status": self.status,
            "log": self.log,
            "time": self.time,
            "config": self.config,
            "reboot": self.reboot,
        }

    def help(self, args, line):
        return sorted(self.handlers())

    def status(self, args, line):
        app = self.app
        b = app.board
        s = app.state()
        s["app"] = self.APP
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

    def time(self, args, line):
        clock = self.app.clock
        if args and args[0] == "set":
            if len(args) != 2:
                raise CommandError("time set wants one argument: UTC as YYYY-MM-DDTHH:MM:SSZ")
            try:
                step = clock.sync(_parse_iso(args[1]), "console")
            except ValueError as e:
                raise CommandError(str(e))
            self.time_set()
            return {"step_s": step, "utc": format_datetime(clock.now()) + "Z"}
        if args:
            raise CommandError("time or time set ISO, not time %s" % args[0])
        return {
            "utc": format_datetime(clock.now()) + "Z",
            "unix": clock.now() + UNIX_2000,
            "valid": clock.valid,
            "source": clock.source,
        }

    def time_set(self):
        """The clock was set from the console: what the app must redo."""

    def config(self, args, line):
        action = args[0] if args else None
        store = self.app.store
        if action == "get":
            for path in (store.source or store.path, store.path, store.default_path):
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
                    self.loads(text)
                    return {"valid": True, "errors": []}
                self.app.store.save(text)
            except ConfigError as e:
                if action == "validate":
                    return {"valid": False, "errors": e.errors}
                raise CommandError("; ".join(e.errors))
            self.app.restart_later("configuration installed from the console")
            return {"installed": store.path, "restart_in_s": 2}
        raise CommandError("config get, config set JSON or config validate JSON")

    def reboot(self, args, line):
        self.app.restart_later("reboot from the console")
        return {"restart_in_s": 2}
