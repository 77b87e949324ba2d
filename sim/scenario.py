"""Scenario files: a timeline of stimuli and expectations (docs/scenarios.md).

    # A winter night in the G60 park
    config ../firmware/lamp/config.json
    start 2026-12-21 12:00
    end 2026-12-22 12:00
    power off 23:10 - 23:40
    at 03:00 lamp fails
    expect level 50 +-1 at 23:45
    expect fault lamp_failure once

Times are local, in the configuration's time zone: `YYYY-MM-DD HH:MM[:SS]`, or
`HH:MM[:SS]` for the first such time at or after the start. Parsed here, on the
host; the simulator itself (both runtimes) gets the result as JSON.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cpython import FIRMWARE, FIRMWARE_LAMP, FIRMWARE_LIB
from .textfile import TextFileError, read_text

if str(FIRMWARE_LIB) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_LIB))
if str(FIRMWARE_LAMP) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_LAMP))

import civil
import lampconfig
from configcheck import ConfigError

APPS = ("lamp", "kiosk")


@functools.cache
def config_parser(app: str):
    """The app's own configuration parser (firmware/<app>/<app>config.py), loaded
    once (by path: the two apps' folders are not both on sys.path)."""
    if app == "lamp":
        return lampconfig.loads
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{app}config", FIRMWARE / app / f"{app}config.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.loads


def roster_update(path: Path, version: int | None = None) -> bytes:
    """A roster update as the centre sends it (firmware/kiosk/roster.py) from a
    file of {"version": N, "people": [[id, name, department, active], ...]}."""
    import hashlib

    data = json.loads(path.read_text())
    people = data["people"]
    body = json.dumps(people, ensure_ascii=False).encode()
    head = {
        "version": data["version"] if version is None else version,
        "count": len(people),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return json.dumps(head).encode() + b"\n" + body


FAULTS = ("lamp_failure", "lamp_on_unexpected", "relay_failure")
MODES = ("schedule", "photocell", "failsafe", "alarm")


# The wrong pieces `centre offers DIR damaged KIND` sends (docs/scenarios.md).
DAMAGE = ("truncated", "reordered", "foreign", "garbage", "corrupt")


class ScenarioError(ValueError):
    pass


@dataclass
class Expectation:
    text: str  # as written, to name it when it fails
    kind: str  # level, no_fault, fault, mode
    at: int | None = None  # park time (UTC)
    value: Any = None
    tolerance: float = 0.0
    count: int | None = None


@dataclass
class Scenario:
    path: Path
    app: str = "lamp"
    name: str = ""
    config_path: Path | None = None
    config: dict = field(default_factory=dict)
    start: int = 0
    end: int = 0
    seed: int = 0
    board: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    tz: Any = None  # posixtz.TZ, from the configuration

    @property
    def networked(self) -> bool:
        """Its lamp has Wi-Fi configured: the simulation needs a broker."""
        return "network" in self.config

    @property
    def controls_broker(self) -> bool:
        return any(e["do"] == "broker" for e in self.events)

    @property
    def needs_centre(self) -> bool:
        return any(e["do"] == "centre" for e in self.events) or any(
            x.kind in ("alarm_by", "alarms", "checkins") for x in self.expectations
        )

    def to_json(self, seed: int | None = None, realtime: float | None = None) -> dict:
        """What the simulator core takes (docs/sim.md)."""
        return {
            "app": self.app,
            "realtime": realtime,
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "seed": self.seed if seed is None else seed,
            "config": self.config,
            "board": self.board,
            "events": sorted(self.events, key=lambda e: e["at"]),
            "probes": [e.at for e in self.expectations if e.kind == "level"],
            # Flash operations take the chip's time only where a cut can land in
            # one: the two runtimes' littlefs part ways after a few months of
            # writes (docs/sim.md), and a year without cuts must stay the same.
            "flash_timed": any(e["do"] in ("power_off", "cut_op") for e in self.events),
        }


_DT = re.compile(r"^(?:(\d{4}-\d{2}-\d{2})\s+)?(\d{2}:\d{2}(?::\d{2})?)$")


class _Parser:
    def __init__(self, path: Path):
        self.path = path
        self.sc = Scenario(path=path)
        self.lineno = 0
        self.pending: list[tuple[int, str, list[str]]] = []
        self.broker_spans: list[tuple[int, int, int]] = []  # (start, end, line) of `broker ... T - T`
        self.power_spans: list[tuple[int, int, int]] = []  # of `power off T - T`

    def fail(self, why: str) -> ScenarioError:
        return ScenarioError(f"{self.path}:{self.lineno}: {why}")

    def when(self, text: str) -> int:
        """A local time -> park time (UTC)."""
        m = _DT.match(text.strip())
        if not m:
            raise self.fail(f'"{text}" is not YYYY-MM-DD HH:MM[:SS] or HH:MM[:SS]')
        try:
            clock = civil.parse_clock(m.group(2))
            tz = self.sc.tz
            if m.group(1):
                y, mo, d = civil.parse_date(m.group(1))
                local = civil.days_from_civil(y, mo, d) * 86400 + clock
            else:
                if not self.sc.start:
                    raise self.fail("a time without a date needs `start` first")
                start_local = tz.to_local(self.sc.start)
                local = (start_local // 86400) * 86400 + clock
                if local < start_local:
                    local += 86400
        except ValueError as e:
            raise self.fail(str(e)) from None
        return self.sc.tz.to_utc(local)

    def span(self, words: list[str]) -> tuple[int, int | None]:
        text = " ".join(words)
        if " - " in text:
            a, b = text.split(" - ", 1)
            t0, t1 = self.when(a), self.when(b)
            if t1 <= t0:
                raise self.fail(f'"{text}" ends before it starts')
            return t0, t1
        return self.when(text), None

    def parse(self, text: str) -> Scenario:
        sc = self.sc
        for lineno, raw in enumerate(text.splitlines(), 1):
            self.lineno = lineno
            line = raw.split("#", 1)[0].strip()
            if not line:
                if raw.strip().startswith("#") and not sc.name:
                    sc.name = raw.strip().lstrip("#").strip()
                continue
            words = line.split()
            head = words[0]
            if head == "name":
                sc.name = " ".join(words[1:])
            elif head == "app":
                if len(words) != 2 or words[1] not in APPS:
                    raise self.fail(f"app is one of {', '.join(APPS)}")
                if sc.config_path is not None:
                    raise self.fail("`app` comes before `config`: it says how to read it")
                sc.app = words[1]
            elif head == "config":
                self._config(" ".join(words[1:]))
            elif head == "deployed":
                self.sc.board["deployed"] = str(self._folder(" ".join(words[1:])))
            elif words[:2] == ["release", "key"]:
                self.sc.board["release_key"] = str(self._file(" ".join(words[2:]), "release key"))
            elif head in ("start", "end", "seed") or head in (
                "power",
                "at",
                "wifi",
                "expect",
                "rtc",
                "ntp",
                "broker",
                "crowd",
            ):
                self.pending.append((self.lineno, head, words[1:]))
            else:
                raise self.fail(f'unknown statement "{head}"')
        if sc.config_path is None:
            raise ScenarioError(f"{self.path}: no `config` line")
        # Times need the time zone, which the configuration gives: statements in
        # order, but crowds last (they keep clear of the power cuts).
        for lineno, head, words in sorted(self.pending, key=lambda p: p[1] == "crowd"):
            self.lineno = lineno
            first = len(sc.events)
            getattr(self, "_" + head)(words)
            for ev in sc.events[first:]:
                ev["line"] = lineno  # named if the simulator fails to apply it
        if not sc.start or not sc.end:
            raise ScenarioError(f"{self.path}: `start` and `end` are both needed")
        if sc.end <= sc.start:
            raise ScenarioError(f"{self.path}: `end` is not after `start`")
        for ev in sc.events:
            if not sc.start <= ev["at"] <= sc.end:
                raise ScenarioError(f"{self.path}: an event at {self._fmt(ev['at'])} is outside start..end")
        return sc

    def _fmt(self, t: int) -> str:
        return civil.format_datetime(self.sc.tz.to_local(t)).replace("T", " ")

    def _config(self, rel: str) -> None:
        path = (self.path.parent / rel).resolve()
        try:
            text = read_text(path)
        except TextFileError as e:
            if e.unreadable:
                raise self.fail(f"cannot read the configuration {path}: {e.unreadable}") from None
            raise self.fail(f"the configuration {e}") from None
        try:
            cfg = config_parser(self.sc.app)(text)
        except ConfigError as e:
            raise self.fail(f"the configuration {path} is not valid: " + "; ".join(e.errors)) from None
        self.sc.config_path = path
        self.sc.config = json.loads(text)
        self.sc.tz = cfg.tz

    def _folder(self, rel: str) -> Path:
        # An app as deployed: a release's files/ or a build's fs/ (docs/scenarios.md).
        path = (self.path.parent / rel).resolve()
        if not rel or not (path / "main.py").is_file() or not (path / "manifest.json").is_file():
            raise self.fail(f"deployed needs a folder with an app's main.py and manifest.json, not {path}")
        return path

    def _file(self, rel: str, what: str) -> Path:
        path = (self.path.parent / rel).resolve()
        if not rel or not path.is_file():
            raise self.fail(f"{what}: no file {path}")
        return path

    def _start(self, words: list[str]) -> None:
        self.sc.start = self.when(" ".join(words))

    def _end(self, words: list[str]) -> None:
        self.sc.end = self.when(" ".join(words))

    def _seed(self, words: list[str]) -> None:
        if len(words) != 1 or not words[0].isdigit():
            raise self.fail("seed needs a whole number")
        self.sc.seed = int(words[0])

    def _rtc(self, words: list[str]) -> None:
        # "rtc battery dead|ok", "rtc unset", "rtc off by +2h"
        if words[:1] == ["battery"] and len(words) == 2 and words[1] in ("dead", "ok"):
            self.sc.board["rtc_battery"] = words[1]
        elif words == ["unset"]:
            self.sc.board["ds3231"] = "unset"
        elif words[:2] == ["off", "by"] and len(words) == 3:
            m = re.match(r"^([+-])(\d+)(s|min|h)$", words[2])
            if not m:
                raise self.fail(f'"{words[2]}" is not an offset like +2h, -90s or +5min')
            n = int(m.group(2)) * {"s": 1, "min": 60, "h": 3600}[m.group(3)]
            self.sc.board["clock_offset_s"] = n if m.group(1) == "+" else -n
        else:
            raise self.fail('expected "rtc battery dead", "rtc battery ok", "rtc unset" or "rtc off by +2h"')

    def _ntp(self, words: list[str]) -> None:
        if words != ["unreachable"]:
            raise self.fail('expected "ntp unreachable"')
        self.sc.board["ntp"] = "unreachable"

    def _wifi(self, words: list[str]) -> None:
        if words in (["up"], ["down"]):
            self.sc.board["wifi"] = words[0]
            return
        if len(words) >= 2 and words[0] in ("up", "down") and " - " not in " ".join(words):
            self.sc.events.append({"at": self.when(" ".join(words[1:])), "do": "wifi", "state": words[0]})
            return
        if words[:1] == ["flapping"]:
            t0, t1 = self.span(words[1:])
            if t1 is None:
                raise self.fail('expected "wifi flapping T - T"')
            self.sc.events.append({"at": t0, "do": "wifi_flap", "until": t1})
            return
        if not words or words[0] not in ("up", "down"):
            raise self.fail('expected "wifi up", "wifi down", "wifi down T - T" or "wifi flapping T - T"')
        t0, t1 = self.span(words[1:])
        if t1 is not None and words[0] == "down":
            # An outage: outages that overlap nest (sim/world.py), the link is
            # back when the last of them ends.
            self.sc.events.append({"at": t0, "do": "wifi", "state": "down", "outage": 1})
            self.sc.events.append({"at": t1, "do": "wifi", "state": "up", "outage": -1})
            return
        other = "up" if words[0] == "down" else "down"
        self.sc.events.append({"at": t0, "do": "wifi", "state": words[0]})
        if t1 is not None:
            self.sc.events.append({"at": t1, "do": "wifi", "state": other})

    def _broker(self, words: list[str]) -> None:
        # broker down T - T: killed, started again; broker hangs T [- T]: stopped
        # (connections open, nothing answered), resumed (or killed by a later `down`)
        if words[:1] not in (["down"], ["hangs"]):
            raise self.fail('expected "broker down T - T" or "broker hangs T [- T]"')
        t0, t1 = self.span(words[1:])
        if t1 is None and words[0] == "down":
            raise self.fail('expected "broker down T - T": it is started again at the second time')
        if t1 is not None:
            # One broker: the end of one span would end another that goes on.
            for a, b, line in self.broker_spans:
                if t0 < b and a < t1:
                    raise self.fail(f"this broker span overlaps the one on line {line}")
            self.broker_spans.append((t0, t1, self.lineno))
        self.sc.events.append({"at": t0, "do": "broker", "state": "down" if words[0] == "down" else "hung"})
        if t1 is not None:
            self.sc.events.append({"at": t1, "do": "broker", "state": "up"})

    def _power(self, words: list[str]) -> None:
        usage = (
            'expected "power off T [- T]", "power on T", "power cut at flash op N after T - T" '
            'or "power cut mid-write T - T"'
        )
        if words[:2] == ["cut", "mid-write"]:
            # The first flash operation from the first time on (program or erase).
            t0, t1 = self.span(words[2:])
            if t1 is None:
                raise self.fail('expected "power cut mid-write T - T"')
            self.sc.events.append({"at": t0, "do": "cut_op", "n": 1, "until": t1})
            return
        if words[:4] == ["cut", "at", "flash", "op"]:
            # power cut at flash op N after T - T2: part-way through the N-th program
            # or erase operation from T on (N = 1: the first), back at T2.
            if len(words) < 7 or not words[4].isdigit() or int(words[4]) < 1 or words[5] != "after":
                raise self.fail('expected "power cut at flash op N after T - T" (N from 1)')
            t0, t1 = self.span(words[6:])
            if t1 is None:
                raise self.fail(
                    'expected "power cut at flash op N after T - T": the power is back at the second'
                )
            self.sc.events.append({"at": t0, "do": "cut_op", "n": int(words[4]), "until": t1})
            return
        if not words or words[0] not in ("off", "on"):
            raise self.fail(usage)
        t0, t1 = self.span(words[1:])
        if t1 is not None:
            if words[0] != "off":
                raise self.fail('a span is for "power off T - T"')
            # The end of one cut would bring the power back in the middle of the other.
            for a, b, line in self.power_spans:
                if t0 <= b and a <= t1:
                    raise self.fail(f"this power cut overlaps the one on line {line}: make them one")
            self.power_spans.append((t0, t1, self.lineno))
        self.sc.events.append({"at": t0, "do": "power_" + words[0]})
        if t1 is not None:
            self.sc.events.append({"at": t1, "do": "power_on"})

    def _at(self, words: list[str]) -> None:
        # at T lamp fails|repaired / photocell ok|stuck|open|short / rtc battery dead|ok
        for k in range(len(words), 0, -1):
            try:
                t = self.when(" ".join(words[:k]))
            except ScenarioError:
                continue
            what = words[k:]
            break
        else:
            raise self.fail("`at` needs a time")
        if what == ["lamp", "fails"]:
            self.sc.events.append({"at": t, "do": "lamp_fail"})
        elif what == ["lamp", "repaired"]:
            self.sc.events.append({"at": t, "do": "lamp_repair"})
        elif len(what) == 2 and what[0] == "photocell" and what[1] in ("ok", "stuck", "open", "short"):
            self.sc.events.append({"at": t, "do": "photocell", "fault": what[1]})
        elif what == ["board", "resets"]:
            self.sc.events.append({"at": t, "do": "reset"})
        elif len(what) == 2 and what[0] == "sky" and what[1] in ("storm", "clear"):
            self.sc.events.append({"at": t, "do": "sky", "state": what[1]})
        elif len(what) == 3 and what[:2] == ["rtc", "battery"] and what[2] in ("dead", "ok"):
            self.sc.events.append({"at": t, "do": "rtc_battery", "state": what[2]})
        elif what[:2] == ["press", "button"] and len(what) == 4 and what[2] == "for":
            self.sc.events.append({"at": t, "do": "press", "ms": self._ms(what[3])})
        elif what[:2] == ["button", "noise"] and len(what) == 3:
            self.sc.events.append({"at": t, "do": "noise", "ms": self._ms(what[2])})
        elif len(what) == 2 and what[0] == "centre" and what[1] in ("ack", "resolve", "garbage"):
            self.sc.events.append({"at": t, "do": "centre", "cmd": what[1]})
        elif what[:2] == ["centre", "offers"] and len(what) in (3, 5, 7):
            # centre offers DIR [trial S] [damaged KIND]: a signed release (docs/updates.md).
            folder = (self.path.parent / what[2]).resolve()
            if not (folder / "release.json").is_file() or not (folder / "release.sig").is_file():
                raise self.fail(f"`centre offers DIR`: {folder} has no release.json and release.sig")
            message: dict[str, Any] = {"release": str(folder)}
            rest = what[3:]
            while rest:
                if rest[0] == "trial" and rest[1].isdigit():
                    message["trial_s"] = int(rest[1])
                elif rest[0] == "damaged" and rest[1] in DAMAGE:
                    message["damage"] = rest[1]
                else:
                    raise self.fail(
                        "`centre offers DIR [trial S] [damaged KIND]`: S in whole seconds, "
                        f"KIND one of {', '.join(DAMAGE)}"
                    )
                rest = rest[2:]
            self.sc.events.append({"at": t, "do": "centre", "cmd": "offer", "message": message})
        elif what[:2] == ["centre", "replays"] and len(what) <= 3:
            # centre replays [N]: the Nth command it sent (default the last), byte for byte.
            message = {}
            if len(what) == 3:
                if not what[2].isdigit() or int(what[2]) < 1:
                    raise self.fail(
                        f"`centre replays N`: N counts the centre's commands from 1, not {what[2]!r}"
                    )
                message["n"] = int(what[2])
            self.sc.events.append({"at": t, "do": "centre", "cmd": "replay", "message": message})
        elif what[:2] == ["centre", "forges"] and what[2:] in (["ack"], ["resolve"]):
            self.sc.events.append({"at": t, "do": "centre", "cmd": "forge_" + what[2]})
        elif what[:2] in (["centre", "sends"], ["centre", "forges"]):
            try:
                message = json.loads(" ".join(what[2:]))
            except ValueError as e:
                raise self.fail(f"`centre {what[1]}` needs a JSON command: {e}") from None
            if not isinstance(message, dict):
                raise self.fail(f'`centre {what[1]}` needs a JSON object, like {{"cmd": "status"}}')
            cmd = "send" if what[1] == "sends" else "forge"
            self.sc.events.append({"at": t, "do": "centre", "cmd": cmd, "message": message})
        elif what[:1] == ["face"] and self.sc.app == "kiosk":
            self.sc.events.append(dict(self._face(what[1:]), at=t))
        elif what[:2] == ["centre", "roster"] and (len(what) == 3 or what[3:] == ["damaged"]):
            # centre roster FILE [damaged]: published retained; damaged: cut short
            # on the way (its checksum no longer matches).
            path = (self.path.parent / what[2]).resolve()
            try:
                payload = roster_update(path)
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise self.fail(f"cannot make a roster update from {path}: {e}") from None
            if what[3:] == ["damaged"]:
                payload = payload[:-20]
            site = self.sc.config.get("site", {}).get("id", "park")
            topic = f"park/{site}/kiosk/roster"
            message = {"topic": topic, "payload": payload.decode(), "retain": True}
            self.sc.events.append({"at": t, "do": "centre", "cmd": "publish", "message": message})
        else:
            raise self.fail(
                f'unknown stimulus "{" ".join(what)}" (lamp fails, lamp repaired, '
                "photocell ok|stuck|open|short, sky storm|clear, rtc battery dead|ok, "
                "press button for N ms|s, button noise N ms, centre ack|resolve|garbage, "
                "centre replays [N], centre forges ack|resolve, centre sends|forges {JSON}, "
                "centre roster FILE [damaged], and for a kiosk: face ...)"
            )

    def _crowd(self, words: list[str]) -> None:
        """crowd T - T people N [repeats N] [unknown N] [spoofs N] [garbage N] [badcrc N] roster FILE:
        N people of the roster (active ones) come to the kiosk once each at random
        times in the span, some of them again within a minute or four (repeats),
        with unknown faces, photos held up (spoofs), noise and damaged frames
        among them; nobody comes while the power is off or in the minute after."""
        import random

        usage = (
            'expected "crowd T - T people N [repeats N] [unknown N] [spoofs N] [garbage N] [badcrc N] '
            'roster FILE"'
        )
        if "people" not in words or "roster" not in words:
            raise self.fail(usage)
        k = words.index("people")
        t0, t1 = self.span(words[:k])
        if t1 is None:
            raise self.fail(usage)
        rest = words[k:]
        counts: dict[str, int] = {}
        roster_file = None
        while rest:
            if len(rest) < 2:
                raise self.fail(usage)
            key, value = rest[0], rest[1]
            rest = rest[2:]
            if key == "roster":
                roster_file = value
            elif key in ("people", "repeats", "unknown", "spoofs", "garbage", "badcrc") and value.isdigit():
                counts[key] = int(value)
            else:
                raise self.fail(usage)
        assert roster_file is not None
        path = (self.path.parent / roster_file).resolve()
        try:
            people = [p[0] for p in json.loads(path.read_text())["people"] if p[3] is True]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise self.fail(f"cannot read the roster {path}: {e}") from None
        n = counts.get("people", 0)
        if n > len(people):
            raise self.fail(f"people {n}: the roster has {len(people)} active people")
        dark: list[tuple[int, int]] = []
        off = None
        for ev in sorted(self.sc.events, key=lambda e: e["at"]):
            if ev["do"] == "power_off":
                off = ev["at"]
            elif ev["do"] == "power_on" and off is not None:
                dark.append((off, ev["at"] + 60))
                off = None
        rnd = random.Random(self.sc.seed * 7919 + t0)

        def when() -> int:
            while True:
                t = rnd.randrange(t0, t1)
                if not any(a <= t <= b for a, b in dark):
                    return t

        chosen = rnd.sample(people, n)
        firsts = {pid: when() for pid in chosen}
        for pid, t in firsts.items():
            self.sc.events.append(
                {"at": t, "do": "face", "what": "person", "id": pid, "live": 1, "score": 0.9}
            )
        for pid in rnd.sample(chosen, min(counts.get("repeats", 0), n)):
            t = firsts[pid] + rnd.randrange(20, 240)
            if t <= t1 and not any(a <= t <= b for a, b in dark):
                self.sc.events.append(
                    {"at": t, "do": "face", "what": "person", "id": pid, "live": 1, "score": 0.95}
                )
        for _ in range(counts.get("unknown", 0)):
            self.sc.events.append({"at": when(), "do": "face", "what": "unknown", "score": 0.42})
        for _ in range(counts.get("spoofs", 0)):
            pid = rnd.choice(people)
            self.sc.events.append(
                {"at": when(), "do": "face", "what": "person", "id": pid, "live": 0, "score": 0.9}
            )
        for _ in range(counts.get("garbage", 0)):
            self.sc.events.append({"at": when(), "do": "face", "what": "garbage"})
        for _ in range(counts.get("badcrc", 0)):
            pid = rnd.choice(people)
            self.sc.events.append(
                {"at": when(), "do": "face", "what": "badcrc", "id": pid, "live": 1, "score": 0.9}
            )

    def _face(self, words: list[str]) -> dict:
        """face PERSON score S [spoof] [badcrc] | face unknown [score S] | face garbage | face error TEXT"""
        usage = (
            'expected "face PERSON score S [spoof] [badcrc]", "face unknown [score S]", "face garbage" '
            'or "face error TEXT"'
        )
        if words == ["garbage"]:
            return {"do": "face", "what": "garbage"}
        if words[:1] == ["error"] and len(words) > 1:
            return {"do": "face", "what": "error", "msg": " ".join(words[1:])}
        if not words:
            raise self.fail(usage)
        ev: dict[str, Any] = {"do": "face", "what": "unknown" if words[0] == "unknown" else "person"}
        if ev["what"] == "person":
            ev["id"] = words[0]
            ev["live"] = 1
        rest = words[1:]
        if rest[:1] == ["score"] and len(rest) >= 2:
            try:
                ev["score"] = float(rest[1])
            except ValueError:
                raise self.fail(f'"{rest[1]}" is not a score from 0 to 1') from None
            rest = rest[2:]
        elif ev["what"] == "person":
            raise self.fail(usage)
        for w in rest:
            if w == "spoof" and ev["what"] == "person":
                ev["live"] = 0
            elif w == "badcrc" and ev["what"] == "person":
                ev["what"] = "badcrc"
            else:
                raise self.fail(usage)
        return ev

    def _ms(self, text: str) -> int:
        m = re.match(r"^(\d+)(ms|s)$", text)
        if not m:
            raise self.fail(f'"{text}" is not a duration like 300ms or 2s')
        return int(m.group(1)) * (1000 if m.group(2) == "s" else 1)

    def _expect(self, words: list[str]) -> None:
        text = "expect " + " ".join(words)
        sc = self.sc
        if words == ["no", "fault"]:
            sc.expectations.append(Expectation(text, "no_fault"))
        elif words[:1] == ["level"]:
            # expect level N [+-TOL] at T
            m = re.match(r"^level (\d+(?:\.\d+)?)(?: \+-(\d+(?:\.\d+)?))? at (.+)$", " ".join(words))
            if not m:
                raise self.fail('expected "expect level N [+-TOL] at T"')
            sc.expectations.append(
                Expectation(text, "level", self.when(m.group(3)), float(m.group(1)), float(m.group(2) or 0))
            )
        elif words[:1] == ["fault"] and len(words) >= 3:
            if words[1] not in FAULTS:
                raise self.fail(f'unknown fault "{words[1]}" (one of {", ".join(FAULTS)})')
            tail = words[2:]
            if tail == ["once"]:
                n = 1
            elif len(tail) == 2 and tail[0].isdigit() and tail[1] == "times":
                n = int(tail[0])
            else:
                raise self.fail('expected "expect fault NAME once" or "expect fault NAME N times"')
            sc.expectations.append(Expectation(text, "fault", value=words[1], count=n))
        elif words[:1] == ["mode"] and len(words) >= 4 and words[2] == "at":
            if words[1] not in MODES:
                raise self.fail(f'unknown mode "{words[1]}" (one of {", ".join(MODES)})')
            sc.expectations.append(Expectation(text, "mode", self.when(" ".join(words[3:])), words[1]))
        elif words[:4] == ["an", "alarm", "at", "centre"] and len(words) > 5 and words[4] == "by":
            sc.expectations.append(Expectation(text, "alarm_by", self.when(" ".join(words[5:]))))
        elif len(words) == 4 and words[0].isdigit() and words[1:] == ["alarms", "at", "centre"]:
            sc.expectations.append(Expectation(text, "alarms", count=int(words[0])))
        elif len(words) == 4 and words[0].isdigit() and words[1:] == ["checkins", "at", "centre"]:
            sc.expectations.append(Expectation(text, "checkins", count=int(words[0])))
        else:
            raise self.fail(f'unknown expectation "{text}"')


def load(path: Path) -> Scenario:
    try:
        text = read_text(path)
    except TextFileError as e:
        raise ScenarioError(str(e)) from None
    return _Parser(path).parse(text)
