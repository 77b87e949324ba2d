"""`parkctl rollout`: a signed release offered to a fleet wave by wave
(docs/updates.md, "Rolling a release over a fleet").

The rollout is a state machine with no MQTT client and no clock of its own:
whoever drives it (the CLI with paho and the wall clock, a simulated centre in
virtual time) hands it each message the devices publish and the time, and
publishes what it returns. That keeps one set of rules for both, and lets the
tests drive it message by message.

The device pulls (docs/updates.md, "The transfer over MQTT"): the rollout sends
each device of a wave the signed `update` command, answers every `fetch` for the
release with the piece asked for, and reads each device's outcome from its
replies, events and retained state. A device that rolls back, refuses, or is not
healthy within the deadline halts the rollout: no later wave is offered, the
wave's devices not yet switched are told to cancel, and no more pieces are
served (a device that missed the cancel stalls instead of installing)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from sim.cmdsign import command, derive_key, verify

from .errors import UserError

CHUNK_MAX = 1024  # the most a device asks for at once (its packets are 2 KB)
DEFAULT_WAVES = "1,5%,25%,100%"
DEFAULT_DEADLINE_S = 900.0
DEFAULT_TRIAL_S = 600
TRIAL_RANGE = (60, 86400)  # what a device takes as trial_s
REOFFER_S = 30.0  # a stalled transfer is offered again, at most this often
STATE_FORMAT = 1
# How a device refuses an offer while its app is on trial after an earlier update
# (firmware/lib/updater.py): it asks to be offered again later.
ON_TRIAL = "the app is on trial after an update"

# A device's states in the rollout.
WAITING = "waiting"  # its wave has not come
OFFERED = "offered"  # the update command sent, no answer yet
FETCHING = "fetching"
STALLED = "stalled"  # the device gave up asking: offered again
INSTALLING = "installing"
TRIAL = "trial"  # switched, the new app on trial
DONE = "done"  # healthy on the release's version
ROLLED_BACK = "rolled_back"
REFUSED = "refused"
SILENT = "silent"  # not healthy within the deadline
CANCELLED = "cancelled"
SKIPPED = "skipped"  # runs a newer version: it would refuse the release
IN_FLIGHT = (OFFERED, FETCHING, STALLED, INSTALLING, TRIAL)
NOT_SWITCHED = (OFFERED, FETCHING, STALLED, INSTALLING)  # what a cancel still stops
FAILED = (ROLLED_BACK, REFUSED, SILENT)

Out = tuple[str, bytes, int]  # (topic, payload, qos) to publish


# ---- waves ------------------------------------------------------------------


def parse_waves(text: str) -> list[tuple[str, Fraction]]:
    """ "1,5%,25%,100%" -> [("count", 1), ("percent", 5), ...]; ValueError says what is wrong."""
    entries: list[tuple[str, Fraction]] = []
    for part in text.split(","):
        p = part.strip()
        percent = p.endswith("%")
        number = p[:-1].strip() if percent else p
        try:
            value = Fraction(number) if percent else Fraction(int(number))
        except (ValueError, ZeroDivisionError):
            what = "a percentage like 25%" if percent else "a count like 5 or a percentage like 25%"
            raise ValueError(f"--waves: {p!r} is not {what}") from None
        if value <= 0 or (percent and value > 100):
            raise ValueError(f"--waves: {p!r}: each wave is a count above 0 or a percentage from 0 to 100")
        entries.append(("percent" if percent else "count", value))
    return entries


def wave_sizes(spec: list[tuple[str, Fraction]], n: int) -> list[int]:
    """The cumulative number of devices offered by the end of each wave, for n
    devices: each entry rounded up, at least one more than the wave before, at
    most n; the last wave takes all that are left."""
    out: list[int] = []
    for kind, value in spec:
        if (out[-1] if out else 0) >= n:
            break
        target = math.ceil(value * n / 100) if kind == "percent" else int(value)
        out.append(min(n, max(target, (out[-1] if out else 0) + 1)))
    if out and out[-1] < n:
        out.append(n)
    return out


# ---- the release ------------------------------------------------------------


class Release:
    """What the rollout serves: the manifest's bytes (as signed), the signature,
    and each file's bytes by its path in the manifest."""

    def __init__(self, manifest: bytes, sig: bytes, files: Mapping[str, bytes]):
        self.manifest = manifest
        self.sig = sig
        self.rid = hashlib.sha256(manifest).hexdigest()
        m = json.loads(manifest)
        self.app: str = m["app"]
        self.version: str = m["version"]
        self.downgrade_ok = m.get("downgrade_ok") is True
        # The order a device fetches in: the manifest, then its files.
        self.order = ["release.json"] + [e["path"] for e in m["files"]]
        self.pieces: dict[str, bytes] = {"release.json": manifest}
        for e in m["files"]:
            self.pieces[e["path"]] = files[e["path"]]
        self.total = sum(len(b) for b in self.pieces.values())
        self.before: dict[str, int] = {}
        done = 0
        for p in self.order:
            self.before[p] = done
            done += len(self.pieces[p])

    @classmethod
    def from_folder(cls, folder: Path) -> Release:
        """The release `parkctl release sign` wrote, each file checked against the
        manifest (the device would refuse one that is not as listed)."""
        from .release import FILES_DIR, read_release

        data, sig = read_release(folder)
        try:
            m = json.loads(data)
        except ValueError:
            m = None
        if isinstance(m, dict) and "image" in m:
            # Its health is read from the state's app version, which an image does not change.
            raise UserError(
                f'{folder}: an image release (docs/updates.md, "The MicroPython image"): '
                "parkctl rollout does not roll images out yet; offer it with the update command"
            )
        try:
            if m is None:
                raise ValueError
            entries = [(e["path"], e["size"], e["sha256"]) for e in m["files"]]
            if not isinstance(m["app"], str) or not isinstance(m["version"], str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{folder}: release.json is not a release's manifest") from None
        files = {}
        for path, size, digest in entries:
            try:
                body = (folder / FILES_DIR / path).read_bytes()
            except OSError as e:
                raise UserError(f"{folder}: {path} cannot be read ({e.strerror})") from None
            if len(body) != size or hashlib.sha256(body).hexdigest() != digest:
                raise UserError(
                    f"{folder}: {path} is not the file the manifest lists (changed since signing)"
                )
            files[path] = body
        return cls(data, sig, files)


def check_release(folder: Path, public_key: Path) -> Release:
    """The release in `folder`, checked as `parkctl release verify` checks it (the
    firmware's own code: signature with the park's key, manifest, paths, files):
    a release that devices would refuse is not rolled out."""
    from . import release as rel

    data, _ = rel.read_release(folder)
    try:
        m = json.loads(data)
    except ValueError:
        m = None
    app = m.get("app") if isinstance(m, dict) else None
    chips = m.get("chips") if isinstance(m, dict) else None
    chip = chips[0] if isinstance(chips, list) and chips and isinstance(chips[0], str) else "?"
    verdict = rel.verify(folder, public_key, app if isinstance(app, str) else "?", chip)
    if not verdict["ok"]:
        raise UserError(f"{folder}: devices would refuse this release: {verdict['reason']}")
    return Release.from_folder(folder)


# ---- the rollout --------------------------------------------------------------


def _newer(a: str, b: str | None) -> bool:
    """Whether version a is after b (None: a device that never took a release)."""
    if b is None:
        return True
    from .runtime import import_firmware

    import_firmware()
    from release import parse_version

    pa, pb = parse_version(a), parse_version(b)
    return pa is not None and (pb is None or pa > pb)


STATES = (WAITING, *IN_FLIGHT, DONE, *FAILED, CANCELLED, SKIPPED)
_RECORD = {
    "prefix": (str,),
    "from": (str, type(None)),
    "version": (str, type(None)),
    "wave": (int,),
    "state": (str,),
    "offered": (int, float, type(None)),
    "deadline": (int, float, type(None)),
    "progress": (int,),
    "detail": (str,),
    "cmd": (str, type(None)),
    "last_offer": (int, float, type(None)),
}


def _check_record(dev: str, rec: dict[str, Any]) -> None:
    """A device's record from a state file, as this module writes it (ValueError if not)."""
    for key, types in _RECORD.items():
        if not isinstance(rec.get(key), types) or isinstance(rec.get(key), bool):
            raise ValueError(f"{dev}: {key} is {rec.get(key)!r}")
    if rec["state"] not in STATES:
        raise ValueError(f"{dev}: no state {rec['state']!r}")


class Rollout:
    """One release over a set of devices, wave by wave.

    devices: device id -> (topic prefix park/<site>/<app>/<device>, the version it
    runs or None). master_key: the park's command key (each device's is derived
    from it); counter: the commands' counters, above the last each device took
    (the CLI: the centre's clock in ms; a simulation: its own count); run: a name
    for this rollout, unique to it, in its commands' ids."""

    def __init__(
        self,
        release: Release,
        devices: Mapping[str, tuple[str, str | None]],
        master_key: bytes,
        counter: Callable[[], int],
        run: str,
        waves: str = DEFAULT_WAVES,
        deadline_s: float = DEFAULT_DEADLINE_S,
        trial_s: int = DEFAULT_TRIAL_S,
    ):
        if not deadline_s > 0:
            raise ValueError("the deadline must be above 0 s")
        if not TRIAL_RANGE[0] <= trial_s <= TRIAL_RANGE[1]:
            raise ValueError(
                f"trial_s must be from {TRIAL_RANGE[0]} to {TRIAL_RANGE[1]} s (what devices take)"
            )
        self.release = release
        self.master_key = master_key
        self.counter = counter
        self.run = run
        self.spec = waves
        self.deadline_s = float(deadline_s)
        self.trial_s = int(trial_s)
        self.devices: dict[str, dict[str, Any]] = {}
        todo = []
        for dev in sorted(devices):
            prefix, version = devices[dev]
            rec = {
                "prefix": prefix,
                "from": version,
                "version": version,
                "wave": 0,
                "state": WAITING,
                "offered": None,
                "deadline": None,
                "progress": 0,
                "detail": "",
                "cmd": None,
                "last_offer": None,
            }
            self.devices[dev] = rec
            if version == release.version:
                rec.update(state=DONE, progress=100, detail="runs it already")
            elif not release.downgrade_ok and not _newer(release.version, version):
                # It would refuse it (version): not a failure of the release.
                rec.update(state=SKIPPED, detail=f"runs {version}, not older than {release.version}")
            else:
                todo.append(dev)
        sizes = wave_sizes(parse_waves(waves), len(todo))
        self.waves: list[list[str]] = []
        start = 0
        for i, end in enumerate(sizes):
            self.waves.append(todo[start:end])
            for dev in todo[start:end]:
                self.devices[dev]["wave"] = i + 1
            start = end
        self.wave = -1  # index of the wave under way; -1 before start()
        self.halted: dict[str, str] | None = None  # {"device", "why"}
        self.aborted = False
        self.done = False
        self.seq = 0
        self.chunks = 0  # pieces served
        self.bad_fetches = 0  # asks for our release that name no piece of it
        self.unsigned = 0  # state, events and replies not signed by their device: not believed
        self.changes = 0  # bumped at every change of the table (for the driver: save, redraw)
        self.ended: list[int] = []  # waves ended, in order (for the driver's table)

    # -- what the driver calls ----------------------------------------------

    @property
    def finished(self) -> bool:
        return self.done or self.halted is not None or self.aborted

    def start(self, now: float) -> list[Out]:
        """Offer the first wave."""
        if self.wave >= 0:
            raise RuntimeError("the rollout has started already")
        return self._advance(now)

    def resume(self, now: float) -> list[Out]:
        """Go on after a pause or a halt (a new process, the operator's decision):
        the devices of the current wave that are not done are offered again with a
        fresh deadline (a device goes on where it stopped)."""
        if self.aborted:
            raise UserError("this rollout was aborted: start a new one")
        if self.wave < 0:
            return self.start(now)
        self.halted = None
        out: list[Out] = []
        if not self.done:
            for dev in self.waves[self.wave]:
                rec = self.devices[dev]
                if rec["state"] == TRIAL:
                    rec["deadline"] = now + self.deadline_s  # switched already: wait for it afresh
                elif rec["state"] != DONE:
                    out += self._offer(dev, now)
        self.changes += 1
        return out + self._advance(now)

    def abort(self, now: float) -> list[Out]:
        """End the rollout: devices still fetching are told to cancel; those already
        switched keep the new app (or roll back by themselves)."""
        out = self._cancel_unswitched("the rollout was aborted")
        self.aborted = True
        self.changes += 1
        return out

    def message(self, topic: str, payload: bytes, now: float) -> list[Out]:
        """A message a device published (fetch, state, event, reply); what to publish."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != "park":
            return []
        dev, kind = parts[3], parts[4]
        if kind == "fetch":
            return self._fetch(topic[: -len("/fetch")], payload)
        rec = self.devices.get(dev)
        if rec is None or kind not in ("state", "event", "reply"):
            return []
        body = verify(derive_key(self.master_key, dev), topic, payload)
        if body is None:
            self.unsigned += 1  # a forged "done" must not let a rollout go on
            return []
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):  # deep nesting too
            return []
        if not isinstance(obj, dict):
            return []
        if kind == "state":
            self._state(dev, rec, obj, now)
        elif kind == "event":
            self._event(dev, rec, obj, now)
        else:
            self._reply(dev, rec, obj, now)
        return self._after(now)

    def tick(self, now: float) -> list[Out]:
        """Deadlines: a device of the wave not healthy by its deadline halts the rollout."""
        if self.finished:
            return []
        for dev in self.waves[self.wave] if self.wave >= 0 else []:
            rec = self.devices[dev]
            if rec["state"] in IN_FLIGHT and rec["deadline"] is not None and now >= rec["deadline"]:
                heard = f" (last: {rec['detail']})" if rec["detail"] else ""
                rec["cancel"] = rec["state"] in NOT_SWITCHED
                self._fail(dev, SILENT, f"not healthy {self.deadline_s:g} s after the offer{heard}")
        out = self._after(now)
        return out + self._reoffers(now)

    def next_deadline(self) -> float | None:
        """The earliest time tick() has something to do (for a driver in virtual time)."""
        if self.finished or self.wave < 0:
            return None
        times = [
            self.devices[d]["deadline"]
            for d in self.waves[self.wave]
            if self.devices[d]["state"] in IN_FLIGHT and self.devices[d]["deadline"] is not None
        ]
        return min(times) if times else None

    # -- the table, the state file ------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        order = sorted(self.devices, key=lambda d: (self.devices[d]["wave"] or 0, d))
        return [
            {
                "device": d,
                "wave": self.devices[d]["wave"] or "-",
                "from": self.devices[d]["from"] or "-",
                "state": self.devices[d]["state"],
                "progress": self.devices[d]["progress"],
                "detail": self.devices[d]["detail"],
            }
            for d in order
        ]

    def outcome(self) -> str:
        return "aborted" if self.aborted else "halted" if self.halted else "done" if self.done else "running"

    def summary(self) -> dict[str, Any]:
        return {
            "release": self.release.rid,
            "app": self.release.app,
            "version": self.release.version,
            "outcome": self.outcome(),
            "halted": self.halted,
            "wave": self.wave + 1,
            "waves": [len(w) for w in self.waves],
            "done": sum(1 for r in self.devices.values() if r["state"] == DONE),
            "devices": self.rows(),
            "chunks_served": self.chunks,
            "bad_fetches": self.bad_fetches,
            "unsigned": self.unsigned,
        }

    def to_json(self) -> dict[str, Any]:
        """Everything to go on from (no key: the master key is the centre's secret)."""
        return {
            "format": STATE_FORMAT,
            "release": self.release.rid,
            "version": self.release.version,
            "run": self.run,
            "waves_spec": self.spec,
            "deadline_s": self.deadline_s,
            "trial_s": self.trial_s,
            "waves": self.waves,
            "wave": self.wave,
            "halted": self.halted,
            "aborted": self.aborted,
            "done": self.done,
            "seq": self.seq,
            "chunks": self.chunks,
            "bad_fetches": self.bad_fetches,
            "unsigned": self.unsigned,
            "devices": self.devices,
        }

    @classmethod
    def from_json(
        cls, data: dict[str, Any], release: Release, master_key: bytes, counter: Callable[[], int]
    ) -> Rollout:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError("not a rollout's state (format 1)")
        if data.get("release") != release.rid:
            raise ValueError("the state is of another release than the one in its folder (changed since?)")
        self = cls.__new__(cls)
        self.release = release
        self.master_key = master_key
        self.counter = counter
        try:
            self.run = str(data["run"])
            self.spec = str(data["waves_spec"])
            self.deadline_s = float(data["deadline_s"])
            self.trial_s = int(data["trial_s"])
            self.waves = [[str(d) for d in w] for w in data["waves"]]
            self.wave = int(data["wave"])
            self.halted = data["halted"]
            self.aborted = bool(data["aborted"])
            self.done = bool(data["done"])
            self.seq = int(data["seq"])
            self.chunks = int(data["chunks"])
            self.bad_fetches = int(data["bad_fetches"])
            self.unsigned = int(data["unsigned"])
            self.devices = {str(k): dict(v) for k, v in data["devices"].items()}
            if any(d not in self.devices for w in self.waves for d in w):
                raise ValueError("a device of a wave has no record")
            if not isinstance(data["waves"], list) or not all(isinstance(w, list) for w in data["waves"]):
                raise ValueError("waves is not a list of lists")
            if not -1 <= self.wave < len(self.waves):
                raise ValueError(f"wave {self.wave + 1} of {len(self.waves)}")
            h = self.halted
            if h is not None and not (
                isinstance(h, dict) and all(isinstance(h.get(k), str) for k in ("device", "why"))
            ):
                raise ValueError(f"halted is {h!r}")
            for dev, rec in self.devices.items():
                _check_record(dev, rec)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"not a rollout's state: {e!r}") from None
        self.changes = 0
        self.ended = []
        return self

    # -- inside ---------------------------------------------------------------

    def _sign(self, dev: str, cmd: dict[str, Any]) -> Out:
        topic = self.devices[dev]["prefix"] + "/cmd"
        self.seq += 1
        cmd = dict(cmd, id=f"rollout-{self.run}-{self.seq}")
        return topic, command(derive_key(self.master_key, dev), topic, cmd, ctr=self.counter()), 1

    def _offer(self, dev: str, now: float) -> list[Out]:
        rec = self.devices[dev]
        if rec["version"] == self.release.version:
            rec.update(state=DONE, progress=100, detail="runs it already")
            return []
        out = self._sign(
            dev,
            {
                "cmd": "update",
                "release": self.release.rid,
                "size": len(self.release.manifest),
                "sig": self.release.sig.hex(),
                "trial_s": self.trial_s,
            },
        )
        rec.update(state=OFFERED, offered=now, deadline=now + self.deadline_s, last_offer=now, detail="")
        rec["cmd"] = json.loads(out[1])["id"]
        self.changes += 1
        return [out]

    def _advance(self, now: float) -> list[Out]:
        """Offer the next wave once every device of this one is done."""
        out: list[Out] = []
        while not self.finished:
            if self.wave >= 0 and any(self.devices[d]["state"] != DONE for d in self.waves[self.wave]):
                break
            if self.wave >= 0:
                self.ended.append(self.wave + 1)
            if self.wave + 1 >= len(self.waves):
                self.done = True
                self.changes += 1
                break
            self.wave += 1
            self.changes += 1
            for dev in self.waves[self.wave]:
                out += self._offer(dev, now)
        return out

    def _after(self, now: float) -> list[Out]:
        """What a change leads to: a halt's cancels, or the next wave."""
        if self.halted is not None and not self.aborted:
            return self._cancel_unswitched("the rollout halted")
        return self._advance(now)

    def _cancel_unswitched(self, why: str) -> list[Out]:
        out: list[Out] = []
        for dev in self.waves[self.wave] if self.wave >= 0 else []:
            rec = self.devices[dev]
            if rec["state"] in NOT_SWITCHED:
                out.append(self._sign(dev, {"cmd": "update", "cancel": True}))
                rec.update(state=CANCELLED, detail=why, deadline=None)
                self.changes += 1
            elif rec.pop("cancel", False):
                # Silent before its switch: when it is back, the broker gives it the
                # offer and then this, so it does not go on alone.
                out.append(self._sign(dev, {"cmd": "update", "cancel": True}))
        return out

    def _fail(self, dev: str, state: str, why: str) -> None:
        rec = self.devices[dev]
        rec.update(state=state, detail=why, deadline=None)
        self.changes += 1
        if (
            self.halted is None
            and not self.aborted
            and dev in (self.waves[self.wave] if self.wave >= 0 else [])
        ):
            self.halted = {"device": dev, "why": f"{state.replace('_', ' ')}: {why}"}

    def _healthy(self, dev: str, rec: dict[str, Any], detail: str) -> None:
        if rec["state"] != DONE:
            rec.update(state=DONE, progress=100, detail=detail, deadline=None, version=self.release.version)
            self.changes += 1

    def _fetch(self, prefix: str, payload: bytes) -> list[Out]:
        try:
            ask = json.loads(payload)
        except (ValueError, RecursionError):  # deep nesting too
            return []
        if not isinstance(ask, dict) or ask.get("release") != self.release.rid:
            return []  # another release's transfer: not ours to judge
        if self.halted is not None or self.aborted:
            return []  # nothing more of a halted release reaches a device
        path, offset, length = ask.get("path"), ask.get("offset"), ask.get("length")
        data = self.release.pieces.get(path) if isinstance(path, str) else None
        if (
            data is None
            or not isinstance(offset, int)
            or not isinstance(length, int)
            or isinstance(offset, bool)
            or isinstance(length, bool)
            or offset < 0
            or not 1 <= length <= CHUNK_MAX
            or offset + length > len(data)
        ):
            self.bad_fetches += 1
            return []
        assert isinstance(path, str)
        self.chunks += 1
        piece = data[offset : offset + length]
        body = {
            "release": self.release.rid,
            "path": path,
            "offset": offset,
            "data": base64.b64encode(piece).decode("ascii"),
        }
        rec = self.devices.get(prefix.split("/")[-1])
        if rec is not None and rec["state"] in (OFFERED, FETCHING, STALLED):
            pct = (self.release.before[path] + offset + length) * 100 // self.release.total
            if rec["state"] != FETCHING or pct != rec["progress"]:
                rec.update(state=FETCHING, progress=min(pct, 99))
                self.changes += 1
        return [(prefix + "/chunk", json.dumps(body, separators=(",", ":")).encode(), 0)]

    def _state(self, dev: str, rec: dict[str, Any], state: dict[str, Any], now: float) -> None:
        app = state.get("app")
        if isinstance(app, dict) and isinstance(app.get("version"), str):
            was = rec["version"]
            rec["version"] = app["version"]
            on_it = app["version"] == self.release.version
            if rec["state"] not in IN_FLIGHT:
                return
            if on_it and app.get("trial") is False:
                self._healthy(dev, rec, "healthy")
                return
            if on_it and app.get("trial") is True:
                if rec["state"] != TRIAL:
                    rec.update(state=TRIAL, progress=100, detail=f"on trial (up to {self.trial_s} s)")
                    self.changes += 1
                return
            if rec["state"] == TRIAL and was == self.release.version:
                # It ran the release on trial and runs another version now: rolled back
                # (the event says why; it may come later or have been lost).
                up = state.get("update")
                last = up.get("last") if isinstance(up, dict) else None
                self._fail(dev, ROLLED_BACK, str(last or f"back on {app['version']}"))
                return
        if rec["state"] not in IN_FLIGHT:
            return
        up = state.get("update")
        if not isinstance(up, dict) or up.get("release") != self.release.rid:
            return
        st = up.get("state")
        have, size = up.get("have"), up.get("size")
        if isinstance(have, int) and isinstance(size, int) and size > 0 and rec["state"] != TRIAL:
            pct = min(99, have * 100 // size)
            if pct != rec["progress"]:
                rec["progress"] = pct
                self.changes += 1
        if st == "stalled" and rec["state"] in (OFFERED, FETCHING, STALLED):
            rec.update(state=STALLED, detail="the transfer stalled: offered again")
            self.changes += 1
        elif st == "installing" and rec["state"] in (OFFERED, FETCHING, STALLED):
            rec.update(state=INSTALLING, progress=100, detail="")
            self.changes += 1
        elif st == "fetching" and rec["state"] in (OFFERED, STALLED):
            rec.update(state=FETCHING, detail="")
            self.changes += 1

    def _event(self, dev: str, rec: dict[str, Any], ev: dict[str, Any], now: float) -> None:
        if rec["state"] not in IN_FLIGHT:
            return
        kind = ev.get("type")
        if kind == "update_done" and ev.get("version") == self.release.version:
            self._healthy(dev, rec, "healthy")
        elif kind == "update_rolled_back" and ev.get("version") == self.release.version:
            self._fail(dev, ROLLED_BACK, str(ev.get("detail") or f"back on {ev.get('to')}"))
        elif kind == "update_refused" and ev.get("release") == self.release.rid:
            self._fail(dev, REFUSED, f"{ev.get('code')}: {ev.get('detail')}")
        elif kind == "update_installed" and ev.get("version", self.release.version) == self.release.version:
            if rec["state"] in NOT_SWITCHED:
                rec.update(state=TRIAL, progress=100, detail=f"on trial (up to {self.trial_s} s)")
                self.changes += 1

    def _reply(self, dev: str, rec: dict[str, Any], reply: dict[str, Any], now: float) -> None:
        if reply.get("id") != rec["cmd"] or rec["state"] not in IN_FLIGHT:
            return
        if not reply.get("ok"):
            reason = str(reply.get("reason") or "refused")
            if reason.startswith(ON_TRIAL) and rec["state"] in NOT_SWITCHED:
                # Busy, not a verdict on this release: offered again until its deadline.
                rec.update(state=STALLED, detail="on trial after an earlier update: offered again")
                self.changes += 1
                return
            self._fail(dev, REFUSED, reason)
            return
        result = reply.get("result")
        st = result.get("state") if isinstance(result, dict) else None
        if st == "running":
            self._healthy(dev, rec, "runs it already")
        elif st == "fetching" and rec["state"] in (OFFERED, STALLED):
            rec.update(state=FETCHING, detail="")
            self.changes += 1

    def _reoffers(self, now: float) -> list[Out]:
        """Stalled transfers offered again (a device waits for that, docs/updates.md)."""
        out: list[Out] = []
        if self.finished or self.wave < 0:
            return out
        for dev in self.waves[self.wave]:
            rec = self.devices[dev]
            if rec["state"] == STALLED and now - (rec["last_offer"] or 0) >= REOFFER_S:
                deadline, offered = rec["deadline"], rec["offered"]
                out += self._offer(dev, now)
                rec.update(
                    deadline=deadline, offered=offered, state=STALLED
                )  # the deadline stays the first offer's
        return out


def b64_piece(text: str) -> bytes:
    """A chunk's data back to bytes (tests, simulated devices)."""
    return binascii.a2b_base64(text)
