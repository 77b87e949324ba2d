"""`parkctl campaign power-cuts`: random short nights on the simulated lamp, with
presses, commands from the centre, configuration updates and power cuts at random
flash operations (docs/sim.md, the flash model), each checked against the
promises the product makes (docs/testing.md, the power-cut campaign).

A trial is a scenario file like any other (docs/scenarios.md), made from the
campaign's seed and the trial's number; it runs against a Mosquitto of its own (a
fresh broker: nothing a trial leaves on it can reach the next), and a failing
one is written out with its configuration, so that `parkctl sim FILE` runs it
again, the same, on either runtime."""

from __future__ import annotations

import functools
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .runtime import ROOT

CONFIG = ROOT / "sim" / "scenarios" / "songjiang-wifi.json"
# Every trial is a window of the same night in the G60 park (local time, CST-8):
# the lamp's schedule is then one curve, run once per campaign (reference()).
NIGHT = ("2026-12-21 16:00", "2026-12-22 08:00")
WINDOW_FIRST = 17 * 3600  # a trial starts between 17:00 ...
WINDOW_LAST = 30 * 3600 + 1800  # ... and 06:30 the next morning
AFTER_S = 120  # simulated time after the last power return: for delivery
LEVEL_AFTER_S = 3  # the level must be right this long after power returns
LEVEL_TOLERANCE = 2.5  # percent: the world records whole-percent moves
FADE_S = 120  # the schedule's fades are shorter than this
SHOWN_AGAIN = "still open after the reset: shown again"  # an open alarm at boot (lamp's main.py)

INVARIANTS = (
    ("lost", "alarms lost"),
    ("invented", "alarms invented"),
    ("duplicates", "duplicate alarms (after dedupe by id)"),
    ("looping", "boards looping"),
    ("wrong_level", "wrong levels 3 s after power returns"),
    ("run_twice", "commands run twice"),
    ("refused", "commands refused as replays (sent once by the centre)"),
    ("flash", "flash images that do not mount"),
)


@dataclass
class Trial:
    index: int
    seed: int
    text: str  # the scenario, with `config trial.json` beside it
    config: dict


@dataclass
class Outcome:
    index: int
    seed: int
    counts: dict[str, int]
    why: list[str] = field(default_factory=list)  # what failed, for people
    error: str = ""  # the trial could not run (the simulator failed)
    seconds: float = 0.0
    landed: int = 0  # (update-cuts) cuts inside a flash operation of the update

    @property
    def failed(self) -> bool:
        return bool(self.error) or any(self.counts.values())


def _clock(t: int) -> str:
    """Seconds from NIGHT's midnight -> a local date and time for the scenario."""
    day = "2026-12-21" if t < 86400 else "2026-12-22"
    t %= 86400
    return f"{day} {t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def make_trial(campaign_seed: int, index: int) -> Trial:
    """Trial `index` of the campaign: the same for the same seeds, anywhere."""
    rnd = random.Random(campaign_seed * 1_000_003 + index)
    seed = rnd.randrange(1, 2**31)
    config = json.loads(CONFIG.read_text())
    # A device id of its own: the trial's topics and session are its own too.
    config["device"] = f"lamp-trial-{index}"
    t0 = rnd.randrange(WINDOW_FIRST, WINDOW_LAST)
    span = rnd.randrange(4 * 60, 8 * 60)
    lines = [
        f"# power-cut campaign {campaign_seed}, trial {index}",
        "config trial.json",
        f"start {_clock(t0)}",
        "END",
        f"seed {seed}",
        "wifi up",
    ]
    last = t0 + span
    cuts: list[tuple[int, int]] = []
    for _ in range(rnd.randint(1, 3)):
        at = rnd.randrange(t0 + 30, t0 + span)
        back = at + rnd.choice((1, 2, 5, 10, 30, 60))
        flash = rnd.random() >= 0.2
        n = rnd.randint(1, 40)
        if any(at <= b + 1 and a <= back + 1 for a, b in cuts):
            # Two cuts at once are one longer cut (the scenario refuses such
            # spans): this one is left out, the draws stay the same.
            continue
        if flash:
            lines.append(f"power cut at flash op {n} after {_clock(at)} - {_clock(back)}")
        else:
            lines.append(f"power off {_clock(at)} - {_clock(back)}")
        cuts.append((at, back))
        last = max(last, back)
    for _ in range(rnd.randint(1, 3)):
        if cuts and rnd.random() < 0.25:
            # Held through the cut and still held when the power is back.
            at, back = rnd.choice(cuts)
            lines.append(f"at {_clock(at - 1)} press button for {back - at + 2}s")
        else:
            at = rnd.randrange(t0 + 20, t0 + span)
            lines.append(f"at {_clock(at)} press button for {rnd.choice((80, 300, 700, 1500))}ms")
    n_cmd = 0
    for _ in range(rnd.randint(0, 4)):
        at = rnd.randrange(t0 + 60, t0 + span)
        kind = rnd.choice(("ack", "resolve", "resolve", "override", "test_alarm", "config"))
        if kind in ("ack", "resolve"):
            lines.append(f"at {_clock(at)} centre {kind}")
            continue
        n_cmd += 1
        cid = f"c-{index}-{n_cmd}"
        if kind == "override":
            msg: dict[str, Any] = {
                "id": cid,
                "cmd": "override",
                "level": rnd.choice((10, 30, 70)),
                "minutes": 5,
            }
        elif kind == "test_alarm":
            msg = {"id": cid, "cmd": "test_alarm"}
        else:
            new = json.loads(json.dumps(config))
            new["alarm"] = {"debounce_ms": rnd.choice((30, 50, 80))}
            msg = {"id": cid, "cmd": "config", "config": new}
        lines.append(f"at {_clock(at)} centre sends {json.dumps(msg)}")
        if rnd.random() < 0.3:
            # The centre did not see the reply and sends it again, same id.
            again = min(at + rnd.randint(1, 120), t0 + span)
            lines.append(f"at {_clock(again)} centre sends {json.dumps(msg)}")
    end = last + AFTER_S
    text = "\n".join(lines).replace("END", f"end {_clock(end)}") + "\n"
    return Trial(index, seed, text, config)


# --- the reference: the lamp's level through the night, with nothing happening ---


@functools.cache
def reference() -> list[tuple[int, float]]:
    """(park time, level) at each whole-percent move through NIGHT, no cuts,
    no presses, no network (the same schedule as the trials' configuration)."""
    from . import simcmd

    config = json.loads(CONFIG.read_text())
    config.pop("network")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ref.json").write_text(json.dumps(config))
        scn = Path(tmp) / "ref.scn"
        scn.write_text(f"config ref.json\nstart {NIGHT[0]}\nend {NIGHT[1]}\n")
        result = simcmd.run(scn)
    return _levels(result.entries)


def _at(t: int) -> str:
    """Park time -> the local time of the trials' park (CST-8), for people."""
    import civil

    return civil.format_datetime(t + 8 * 3600).replace("T", " ")


def _levels(entries) -> list[tuple[int, float]]:
    return [(e.t, float(e.text)) for e in entries if e.kind == "level"]


def _level_at(levels: list[tuple[int, float]], t: int) -> float:
    seen = 0.0
    for at, level in levels:
        if at > t:
            break
        seen = level
    return seen


# --- one trial -----------------------------------------------------------------


def check(entries, ref: list[tuple[int, float]], flash_ok: bool, index: int = 0, seed: int = 0) -> Outcome:
    import sim.scenario  # noqa: F401 - puts the firmware's civil module on the path

    """The invariants, from the trial's timeline (docs/testing.md says how each
    is read from it)."""
    counts = dict.fromkeys((k for k, _ in INVARIANTS), 0)
    why: list[str] = []
    console = [(e.t, e.text) for e in entries if e.kind == "console"]
    # Alarm id -> where in the timeline the device raised (resolved) it: the
    # entry's index, and its time. An alarm found open on flash at boot counts as
    # raised: its record was on flash before a cut kept its console line from
    # being said (the device shows it again).
    raised_i: dict[str, int] = {}
    resolved_i: dict[str, int] = {}
    raised: dict[str, int] = {}
    resolved: dict[str, int] = {}
    for i, e in enumerate(entries):
        x = e.text
        if e.kind != "console":
            continue
        if x.startswith("event alarm_raised ") or (x.startswith("event alarm ") and x.endswith(SHOWN_AGAIN)):
            raised_i.setdefault(x.split()[2], i)
            raised.setdefault(x.split()[2], e.t)
        elif x.startswith("event alarm_resolved "):
            resolved_i.setdefault(x.split()[2], i)
            resolved.setdefault(x.split()[2], e.t)
    at_centre = {
        e.text.split()[1] for e in entries if e.kind == "centre" and e.text.startswith("alarm_raised ")
    }
    # Resolved on flash before a cut that kept its console line from being said:
    # the device delivers it from its journal afterwards (it sends only what is
    # on flash), so it was resolved by that cut.
    cuts = [e.t for e in entries if e.kind == "power" and e.text == "mains cut"]
    for e in entries:
        if e.kind == "centre" and e.text.startswith("alarm_resolved "):
            aid = e.text.split()[1]
            if aid not in resolved:
                before = [c for c in cuts if c <= e.t]
                resolved[aid] = before[-1] if before else e.t
    # Lost: raised on the device and never at the centre ...
    for aid in sorted(set(raised) - at_centre):
        counts["lost"] += 1
        why.append(f"alarm {aid} raised on the device at {_at(raised[aid])} never reached the centre")
    # ... or shown on the pole after a press and never raised at all. Read in the
    # timeline's order, not by its times: they are whole seconds, and a press,
    # the power coming back and a resolve can share one.
    kinds = [(i, e.t, e.kind, e.text) for i, e in enumerate(entries)]
    resets_i = [i for i, _, k, _ in kinds if k == "reset"]
    mode_alarm_i = [(i, t) for i, t, k, x in kinds if k == "console" and x == "event mode alarm"]
    for pi, p, k, x in kinds:
        if k != "world" or not x.startswith("button pressed"):
            continue
        if any(r < pi and not (a in resolved_i and resolved_i[a] < pi) for a, r in raised_i.items()):
            continue  # an alarm is open: the press counts towards it
        # The pole went into alarm for this press (not for a reset's restore).
        shown = [
            i for i, t in mode_alarm_i if i > pi and t <= p + 2 and not any(pi < r < i for r in resets_i)
        ]
        if shown and not any(r > pi for r in raised_i.values()):
            counts["lost"] += 1
            why.append(f"the press at {_at(p)} was shown on the pole and never raised as an alarm")
    mode_alarm = [t for _, t in mode_alarm_i]
    # Shown again after power returns, until resolved.
    shown_again = mode_alarm + [
        t for t, x in console if x.startswith("event alarm ") and x.endswith(SHOWN_AGAIN)
    ]
    # Power-ons the power stayed on for LEVEL_AFTER_S (another cut can come sooner).
    boots = [
        e.t
        for e in entries[1:]
        if e.kind == "reset"
        and e.text == "power on"
        and not any(e.t <= c <= e.t + LEVEL_AFTER_S for c in cuts)
    ]
    for b in boots:
        open_ids = [a for a, t in raised.items() if t < b and not (a in resolved and resolved[a] < b)]
        if open_ids and not any(b <= t <= b + LEVEL_AFTER_S for t in shown_again):
            counts["lost"] += 1
            why.append(
                f"alarm {open_ids[-1]} open before the cut is not shown again after power returns at {_at(b)}"
            )
    invented = at_centre - set(raised)
    counts["invented"] = len(invented)
    why += [f"alarm {a} at the centre was never raised on the device" for a in sorted(invented)]
    # Duplicates: more alarms than there were presses and test alarms to raise
    # them. A press still held when the power comes back is a press of its own
    # (docs/protocol.md: a button held as the power comes back), so each power-on inside a hold counts.
    holds = [
        (e.t, e.t + int(e.text.split()[3]) / 1000)
        for e in entries
        if e.kind == "world" and e.text.startswith("button pressed for ")
    ]
    power_ons = [e.t for e in entries if e.kind == "reset" and e.text == "power on"]
    presses_seen = len(holds) + sum(1 for a, b in holds for t in power_ons if a < t <= b)
    tests = {
        e.text.split()[2] for e in entries if e.kind == "centre" and e.text.startswith("sends test_alarm ")
    }
    extra = len(raised) - presses_seen - len(tests)
    if extra > 0:
        counts["duplicates"] = extra
        why.append(f"{len(raised)} alarms raised for {presses_seen} presses and {len(tests)} test alarms")
    wdt = sum(1 for e in entries if e.kind == "reset" and e.text == "watchdog")
    stopped = [e.text for e in entries if e.kind == "firmware" and e.text.startswith("main.py stopped")]
    if wdt >= 3 or stopped:
        counts["looping"] = 1
        why.append(f"{wdt} watchdog resets" + (f"; {stopped[0]}" if stopped else ""))
    # Wrong levels: as the night's schedule says, unless an alarm (flashing) or
    # an override the centre sent may rightly be in force.
    levels = _levels(entries)
    overrides = [e.t for e in entries if e.kind == "centre" and e.text.startswith("sends override")]
    for b in boots:
        t = b + LEVEL_AFTER_S
        modes = [(tt, x) for tt, x in console if x.startswith("event mode ") and tt <= t]
        if modes and modes[-1][1] == "event mode alarm":
            continue
        if any(o <= t <= o + 300 for o in overrides):
            continue
        # A fade under way may rightly be taken up at its end (or its start):
        # any level the schedule had in the two minutes around is right.
        near = [_level_at(ref, t + d) for d in range(-FADE_S, FADE_S + 1, 5)]
        want, seen = _level_at(ref, t), _level_at(levels, t)
        if not min(near) - LEVEL_TOLERANCE <= seen <= max(near) + LEVEL_TOLERANCE:
            counts["wrong_level"] += 1
            why.append(
                f"level {seen:.1f} at {_at(t)}, {LEVEL_AFTER_S} s after power returned; schedule {want:.1f}"
            )
    # Commands run twice: two different answers to one command id.
    replies: dict[str, set[str]] = {}
    for e in entries:
        if e.kind == "centre" and e.text.startswith("reply to ") and ": ok" in e.text:
            head, _, how = e.text.partition(": ")
            replies.setdefault(head.split()[-1], set()).add(how)
    for cid, hows in sorted(replies.items()):
        if len(hows) > 1:
            counts["run_twice"] += 1
            why.append(f"command {cid} answered {len(hows)} different ways: {' | '.join(sorted(hows))}")
    # Commands lost: the centre signs each command it sends with a new counter,
    # so a refusal as a replay is of the broker's resend of one the lamp took
    # and never answered (a cut between its counter and its reply).
    for e in entries:
        if e.kind == "centre" and e.text.startswith("reply to ") and "replayed or stale" in e.text:
            counts["refused"] += 1
            why.append(e.text)
    if not flash_ok:
        counts["flash"] = 1
        why.append("the flash image left at the end does not mount")
    return Outcome(index, seed, counts, why)


def _flash_mounts(image: Path) -> bool:
    import littlefs

    from sim import cpython

    ctx = littlefs.UserContext(0)  # its own buffer would be made of a list of 2 MiB
    ctx.buffer = bytearray(image.read_bytes())
    try:
        # Not littlefs-python's mount, which formats a flash that does not mount.
        fs = cpython.littlefs_on(ctx, image.stat().st_size // cpython.BLOCK_SIZE, mount=False)
        fs.mount()
        fs.listdir("/")
    except Exception:
        return False
    return True


def run_trial(campaign_seed: int, index: int, runtime: str) -> Outcome:
    """Make, run and check one trial (in a worker process)."""
    from . import simcmd

    trial = make_trial(campaign_seed, index)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scn = Path(tmp) / "trial.scn"
        scn.write_text(trial.text)
        (Path(tmp) / "trial.json").write_text(json.dumps(trial.config, indent=1))
        image = Path(tmp) / "flash.img"
        try:
            result = simcmd.run(scn, runtime, broker="mosquitto", flash=image)
        except Exception as e:
            text = str(e).strip().splitlines()
            return Outcome(index, trial.seed, {}, [], f"{type(e).__name__}: {text[-1] if text else ''}")
        out = check(result.entries, reference(), _flash_mounts(image), index, trial.seed)
    out.seconds = time.perf_counter() - start
    return out


def _worker(job: tuple) -> Outcome:
    if job[0] == "update-cuts":
        from . import updatecuts

        return updatecuts.run_trial(*job[1:])
    return run_trial(*job[1:])


@dataclass
class Summary:
    trials: int
    runtime: str
    seed: int
    jobs: int
    seconds: float
    counts: dict[str, int]
    failed: list[Outcome]
    written: list[Path]
    landed: int = 0  # (update-cuts) cuts inside a flash operation of an update, in all

    @property
    def per_minute(self) -> float:
        return self.trials / self.seconds * 60 if self.seconds else 0.0


def write_failure(out: Path, campaign_seed: int, outcome: Outcome) -> Path:
    """The failing trial as a scenario that runs it again (and its configuration)."""
    trial = make_trial(campaign_seed, outcome.index)
    out.mkdir(parents=True, exist_ok=True)
    name = f"power-cuts-{campaign_seed}-{outcome.index}"
    (out / f"{name}.json").write_text(json.dumps(trial.config, indent=1) + "\n")
    head = [f"# power-cut campaign {campaign_seed}, trial {outcome.index}: it failed"]
    head += [f"#   {w}" for w in (outcome.why or [outcome.error])]
    body = trial.text.replace("config trial.json", f"config {name}.json").split("\n", 1)[1]
    path = out / f"{name}.scn"
    path.write_text("\n".join(head) + "\n" + body)
    return path


def run(
    trials: int,
    runtime: str = "cpython",
    seed: int = 1,
    jobs: int | None = None,
    out: Path | None = None,
    progress=None,
    kind: str = "power-cuts",
) -> Summary:
    """Run the campaign (`kind`: power-cuts, or update-cuts: updatecuts.py);
    progress(done, total), if given, after each trial."""
    if trials < 1:
        raise UserError("--trials must be at least 1")
    if runtime not in ("cpython", "micropython"):
        raise UserError(f"unknown runtime {runtime!r}: choose cpython or micropython")
    jobs = jobs or os.cpu_count() or 1
    if not 1 <= jobs <= 256:
        raise UserError("--jobs must be 1..256")
    from .brokers import mosquitto_binary

    mosquitto_binary()  # not installed: say so once, not in every trial
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    invariants = INVARIANTS
    with tempfile.TemporaryDirectory() as tmp:
        extra: tuple = ()
        if kind == "update-cuts":
            from . import updatecuts

            invariants = updatecuts.INVARIANTS
            extra = (updatecuts.prepare(Path(tmp)),)
        work = [(kind, seed, i, runtime, *extra) for i in range(trials)]
        outcomes = _run_all(work, jobs, trials, progress)
        seconds = time.perf_counter() - start
        counts = dict.fromkeys((k for k, _ in invariants), 0)
        counts["errors"] = 0
        for o in outcomes:
            for k, v in o.counts.items():
                counts[k] += v
            counts["errors"] += bool(o.error)
        failed = sorted((o for o in outcomes if o.failed), key=lambda o: o.index)
        written = []
        if out is not None:
            for o in failed:
                if kind == "update-cuts":
                    written.append(updatecuts.write_failure(out, seed, o, extra[0]))
                else:
                    written.append(write_failure(out, seed, o))
    landed = sum(o.landed for o in outcomes)
    return Summary(trials, runtime, seed, jobs, seconds, counts, failed, written, landed)


def _run_all(work: list[tuple], jobs: int, trials: int, progress) -> list[Outcome]:
    import multiprocessing

    outcomes: list[Outcome] = []
    if jobs == 1:
        for job in work:
            outcomes.append(_worker(job))
            if progress:
                progress(len(outcomes), trials)
    else:
        ctx = multiprocessing.get_context("forkserver")
        with ctx.Pool(jobs) as pool:
            for o in pool.imap_unordered(_worker, work):
                outcomes.append(o)
                if progress:
                    progress(len(outcomes), trials)
    return outcomes
