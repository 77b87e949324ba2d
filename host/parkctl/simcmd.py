"""`parkctl sim`: run a scenario on the simulated board, print what happened,
check the expectations, draw the plot."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SimulatorError, UserError
from .runtime import ROOT, micropython_binary

if TYPE_CHECKING:
    from sim.scenario import Scenario

DEFAULT_SCENARIO = ROOT / "sim" / "scenarios" / "winter-night.scn"
# The simulator shares the interpreter with the firmware; the kiosk (an ESP32-S3
# with PSRAM) has a 150 KB frame buffer, and its virtual panel as much again.
# The lamp gets 1M, ten times a board's: a board starts each boot with an empty
# heap, but here the world's and the simulator's objects made during one boot
# stay, scattered where that boot's firmware was, and the next boot compiles its
# modules from source among them. In 512k, a run of 100 short power cuts had,
# about one run in eight, a boot that stopped with "MemoryError ... allocating
# 2672 bytes" importing link.py, with 300 KB free in pieces of at most 12 KB.
# The same family: the virtual board's console names (host/parkctl/vboard.py).
# The firmware's own heap is measured as a board's by `make bench`.
SIM_HEAP = {"lamp": "1M", "kiosk": "2M"}


SCENARIOS = ROOT / "sim" / "scenarios"


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.scn"))


def scenario_path(name: str) -> Path:
    """A scenario file, or the name of one shipped in sim/scenarios (kiosk-morning);
    a UserError listing the shipped ones when it is neither."""
    p = Path(name)
    if p.exists() or p.suffix or "/" in name:
        return p  # a file: what cannot be read is said when it is read
    shipped = SCENARIOS / f"{name}.scn"
    if shipped.exists():
        return shipped
    raise UserError(f"no scenario {name}: give a file, or one of {', '.join(shipped_scenarios())}")


@dataclass
class Entry:
    t: int  # park time (UTC)
    kind: str
    text: str
    wall: float = 0.0  # time.perf_counter() when it happened (CPython runtime): for benchmarks


@dataclass
class Result:
    scenario: Scenario
    entries: list[Entry]
    checks: list[tuple[str, bool, str]]  # (expectation, passed, what was seen)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)


def run(
    path: Path,
    runtime: str = "cpython",
    seed: int | None = None,
    realtime: float | None = None,
    broker: str | None = None,
    heap_probe: bool = False,
    frames: Path | None = None,
    flash: Path | None = None,
    romfs: Path | None = None,
    from_flash: Path | None = None,
    ota: Path | None = None,
) -> Result:
    """broker, for a networked scenario: "embedded" (the default: amqtt, in this
    process), "mosquitto" (one of our own), or the URL of one that is running
    (then the scenario cannot stop it); heap_probe: MicroPython only, `heap`
    entries (bench/alarms.py); frames: a folder for the kiosk display's frames
    (PNG, named NNNNN-HHMMSS.png by local time); flash: where to copy the
    board's flash image (littlefs2) when the run ends; romfs: MicroPython only,
    the app's code as a ROMFS image (build.romfs_image), imported from /rom;
    from_flash: the board powers on with a copy of this image (one `flash` kept:
    the board lost power at the end of that run), not with a new one; ota: the
    board has MicroPython's OTA partition table, its app slots and otadata in
    this file (sim/vesp32/esp32.py make_flash), which the run changes in place."""
    from sim.scenario import ScenarioError, load

    try:
        sc = load(path)
    except ScenarioError as e:
        raise UserError(str(e)) from None
    if frames is not None and sc.app != "kiosk":
        raise UserError(f"{path}: --frames is for a kiosk scenario (its display); this one is a {sc.app}'s")
    if romfs is not None and runtime != "micropython":
        raise UserError("a ROMFS image is for the MicroPython runtime")
    from sim.cpython import WorldEventFailed

    owned = _own_broker(broker or "embedded", sc, reach=True) if sc.networked else None
    try:
        return _run(sc, runtime, seed, realtime, owned, heap_probe, frames, flash, romfs, from_flash, ota)
    except WorldEventFailed as e:
        raise SimulatorError(world_failure(sc, e)) from e
    finally:
        if owned is not None:
            owned.close()


def world_failure(sc: Scenario, e) -> str:
    """A world event that failed on the simulator's side, for people: where in
    the scenario, when, and what was raised; it is not the firmware's doing."""
    when = local(sc, e.t_us // 1000000).replace("T", " ")
    where = f"{sc.path}"
    if e.line is not None:
        lines = sc.path.read_text().splitlines()
        text = lines[e.line - 1].split("#", 1)[0].strip() if 0 < e.line <= len(lines) else ""
        where = f"{sc.path}:{e.line}: `{text}`"
    return (
        f"{where}: its event `{e.what}` at {when} failed on the simulator's side, "
        f"not in the firmware: {e.error}"
    )


def _own_broker(broker: str, sc: Scenario, reach: bool = False):
    """reach: a broker at a URL is tried first (one connection), so that one that
    refuses is said in one line before the run."""
    from .brokers import Embedded, External, Mosquitto, check_reachable

    if broker == "embedded":
        if any(e["do"] == "broker" and e["state"] == "hung" for e in sc.events):
            raise UserError(f"{sc.path}: `broker hangs` needs --broker mosquitto (amqtt cannot be paused)")
        return Embedded().start()
    if broker == "mosquitto":
        return Mosquitto().start()
    if sc.controls_broker:
        raise UserError(
            f"{sc.path}: `broker ...` statements need a broker the simulation starts "
            "(--broker embedded or --broker mosquitto), not one at a URL"
        )
    if reach:
        check_reachable(broker)
    return External(broker)


def _centre_login(broker) -> tuple[str, str] | None:
    """The simulated centre's account on a broker at a URL (the park's broker,
    docs/broker.md): the centre's tools' own, from the environment; brokers the
    simulation starts take anyone."""
    from .brokers import External
    from .centrecmd import Login

    if not isinstance(broker, External):
        return None
    login = Login.find()
    return (login.user, login.password or "") if login.user else None


def _run(
    sc: Scenario,
    runtime: str,
    seed: int | None,
    realtime: float | None,
    broker,
    heap_probe: bool,
    frames: Path | None = None,
    flash: Path | None = None,
    romfs: Path | None = None,
    from_flash: Path | None = None,
    ota: Path | None = None,
) -> Result:
    from sim import cpython
    from sim.centre import Outside

    from .brokers import parse_url

    config = dict(sc.config)
    if broker is not None:
        config["network"] = dict(config["network"], broker=broker.url)
    data = sc.to_json(seed, realtime)
    data["config"] = config
    if broker is not None:
        # A configuration the centre sends has the lamp's broker set in it too.
        data["events"] = [_with_broker(e, broker.url) for e in data["events"]]
    data["heap_probe"] = heap_probe
    if romfs is not None:
        data["romfs"] = str(romfs)
    if ota is not None:
        data["ota"] = str(ota)
    entries: list[Entry] = []
    now = [sc.start]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "flash.img"
        if from_flash is not None:
            shutil.copyfile(from_flash, image)
        else:
            cpython.make_image(image, _flash_files(sc.app, config, sc.board))
        raw = Path(tmp) / "frames"
        if frames is not None:
            raw.mkdir()
            data["frames"] = str(raw)
        if runtime == "cpython":
            made: list[Outside] = []

            def ready(world) -> None:
                assert broker is not None
                log = lambda kind, text: world.log(world.now_us, kind, text)  # noqa: E731
                world.outside = Outside(broker, *parse_url(broker.url), log, login=_centre_login(broker))
                made.append(world.outside)

            try:
                cpython.run(
                    data,
                    image,
                    lambda t, kind, text: entries.append(Entry(t, kind, text, time.perf_counter())),
                    ready if broker is not None else None,
                )
            finally:
                for o in made:
                    o.close()
        elif runtime == "micropython":
            data["outside"] = broker is not None
            outside = None
            if broker is not None:
                log = lambda kind, text: entries.append(Entry(now[0], kind, text))  # noqa: E731
                outside = Outside(broker, *parse_url(broker.url), log, login=_centre_login(broker))
            try:
                _run_micropython(sc.app, data, image, Path(tmp) / "scenario.json", entries, now, outside)
            finally:
                if outside is not None:
                    outside.close()
        else:
            raise UserError(f"unknown runtime {runtime!r}: choose cpython or micropython")
        if frames is not None:
            _write_frames(sc, raw, frames)
        if flash is not None:
            shutil.copyfile(image, flash)
    return Result(sc, entries, check(sc, entries))


def _with_broker(ev: dict, url: str) -> dict:
    msg: Any = ev.get("message") if ev["do"] == "centre" else None
    if not isinstance(msg, dict) or msg.get("cmd") != "config":
        return ev
    cfg: Any = msg.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("network"), dict) or "broker" in cfg["network"]:
        return ev
    cfg = dict(cfg, network=dict(cfg["network"], broker=url))
    return dict(ev, message=dict(msg, config=cfg))


def _flash_files(app: str, config: dict, board: dict) -> dict[str, bytes]:
    """The simulated board's flash at power-on: its configuration, its command
    key (derived from the simulator's master key, which the simulated centre
    signs with), and the
    kiosk's font (as `parkctl build kiosk` puts it there)."""
    from sim.cmdsign import deployed_files, sim_key_file

    files = {"/config.json": json.dumps(config).encode(), **sim_key_file(app, config)}
    files.update(deployed_files(board))
    if app == "kiosk":
        from .font import FONT_FILE

        files[FONT_FILE] = _kiosk_font()
    return files


@functools.cache
def _kiosk_font() -> bytes:
    from .font import make_font

    return make_font()  # a second: made once per process


def _write_frames(sc: Scenario, raw: Path, out: Path) -> None:
    from .frames import save_png

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    for f in sorted(raw.glob("*.raw")):
        n, t = f.stem.split("-")
        hhmmss = local(sc, int(t)).split("T")[1].replace(":", "")
        save_png(f.read_bytes(), 240, 320, out / f"{n}-{hhmmss}.png")


def _run_micropython(
    app: str, data: dict, image: Path, spec: Path, entries: list[Entry], now: list[int], outside
) -> None:
    """sim/mp_main.py in the MicroPython interpreter; the world outside the board
    (centre, broker) runs here and answers its requests (\x1d lines) on its stdin.
    now[0]: the simulated time of the request being answered."""
    spec.write_text(json.dumps(data))
    paths = [ROOT / "sim", ROOT / "sim" / "vesp32", ROOT / "firmware" / app, ROOT / "firmware" / "lib"]
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(str(p) for p in paths))
    cmd = [
        micropython_binary(),
        "-X",
        f"heapsize={SIM_HEAP[app]}",
        str(ROOT / "sim" / "mp_main.py"),
        str(image),
        str(spec),
    ]
    errors = spec.with_suffix(".stderr")
    with errors.open("w") as errf:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf, text=True
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("\x1d") and outside is not None:
                ask = json.loads(line[1:])
                now[0] = ask.pop("t") // 1000000
                try:
                    answer = outside.answer(ask)
                except Exception as e:
                    answer = "\x15" + f"{type(e).__name__}: {e}".replace("\n", " ")
                proc.stdin.write(answer + "\n")
                proc.stdin.flush()
            else:
                entries.extend(parse_micropython_output(line, entries[-1].t if entries else now[0]))
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    failed = [e for e in entries if e.kind == "world-failed"]
    if failed:
        from sim.cpython import WorldEventFailed

        what, line, t_us, error = json.loads(failed[0].text)
        raise WorldEventFailed(what, line, t_us, error)
    if rc != 0:
        raise RuntimeError(f"the simulator failed in MicroPython (exit {rc}):\n{errors.read_text()}")


def parse_micropython_output(stdout: str, start: int) -> list[Entry]:
    """sim/mp_main.py's stdout: timeline entries framed by \x1e; the interpreter's
    report of its name table (micropython.qstr_info, which the heap probe asks
    for) as kind `names`; any other line is the firmware writing to stdout itself
    (a traceback), kept as console lines."""
    entries: list[Entry] = []
    for line in stdout.split("\n"):
        if line.startswith("\x1e"):
            t, kind, text = json.loads(line[1:])
            entries.append(Entry(t, kind, text))
        elif line:
            kind = "names" if line.startswith("qstr pool: ") else "console"
            entries.append(Entry(entries[-1].t if entries else start, kind, line))
    return entries


def run_fleet(
    path: Path,
    lamps: int,
    seed: int | None = None,
    broker: str | None = None,
    jobs: int | None = None,
    realtime: float | None = None,
) -> list[Result]:
    """`lamps` boards (CPython) in `jobs` processes (default: one per 100 lamps, up
    to the cores there are), one Result each; a networked scenario's lamps all
    use `broker` (default: an embedded one), and each lamp has a centre of its own
    there when the scenario has the centre's statements."""
    from sim import fleet
    from sim.scenario import ScenarioError, load

    try:
        sc = load(path)
    except ScenarioError as e:
        raise UserError(str(e)) from None
    if sc.app != "lamp":
        raise UserError(f"{path}: --lamps runs lamps; this is a {sc.app}'s scenario")
    if sc.controls_broker:
        raise UserError(f"{path}: `broker ...` statements are for one lamp, not --lamps")
    owned = None
    data = sc.to_json(seed, realtime)
    if realtime is not None and not sc.networked:
        raise UserError(f"{path}: --realtime with --lamps is for a scenario with a network (wifi up ...)")
    if sc.networked:
        if broker is None and sc.needs_centre:
            # A centre per lamp: as many clients again, each with its own topics.
            # amqtt (0.12) loses a client that connects while another subscribes
            # to a new topic (its session ends in "dictionary changed size during
            # iteration" and the lamp waits for ever): Mosquitto, which is not so.
            broker = "mosquitto" if _has_mosquitto() else "embedded"
        owned = _own_broker(broker or "embedded", sc)
        data["config"] = dict(data["config"], network=dict(data["config"]["network"], broker=owned.url))
        if sc.needs_centre:
            from .brokers import parse_url

            host, port = parse_url(owned.url)
            data["centre"] = {"host": host, "port": port}
    per_lamp: list[list[Entry]] = [[] for _ in range(lamps)]
    try:
        fleet.run(
            data,
            lamps,
            lambda i, t, kind, text: per_lamp[i].append(Entry(t, kind, text)),
            jobs,
        )
    finally:
        if owned is not None:
            owned.close()
    return [Result(sc, entries, check(sc, entries)) for entries in per_lamp]


def _has_mosquitto() -> bool:
    from .brokers import mosquitto_binary

    try:
        mosquitto_binary()
    except UserError:
        return False
    return True


def _events(entries: list[Entry], name: str) -> list[Entry]:
    prefix = f"event {name} "
    return [e for e in entries if e.kind == "console" and (e.text + " ").startswith(prefix)]


def check(sc: Scenario, entries: list[Entry]) -> list[tuple[str, bool, str]]:
    from sim.scenario import FAULTS

    out = []
    probes = {int(e.text.split()[0]): float(e.text.split()[1]) for e in entries if e.kind == "probe"}
    k = 0
    for ex in sc.expectations:
        if ex.kind == "level":
            seen = probes.get(k)
            k += 1
            ok = seen is not None and abs(seen - ex.value) <= ex.tolerance
            out.append((ex.text, ok, "no reading" if seen is None else f"level was {seen:.1f}"))
        elif ex.kind == "no_fault":
            faults = [e for f in FAULTS for e in _events(entries, f)]
            out.append((ex.text, not faults, ", ".join(e.text[6:] for e in faults) or "no fault"))
        elif ex.kind == "fault":
            n = len(_events(entries, ex.value))
            out.append((ex.text, n == ex.count, f"raised {n} time(s)"))
        elif ex.kind == "checkins":
            seen = [e for e in entries if e.kind == "centre" and e.text.startswith("checkin ")]
            out.append((ex.text, len(seen) == ex.count, f"{len(seen)} check-in(s) at the centre"))
        elif ex.kind in ("alarm_by", "alarms"):
            raised = [e for e in entries if e.kind == "centre" and e.text.startswith("alarm_raised ")]
            if ex.kind == "alarms":
                out.append((ex.text, len(raised) == ex.count, f"{len(raised)} alarm(s) at the centre"))
            else:
                first = raised[0].t if raised else None
                ok = first is not None and ex.at is not None and first <= ex.at
                out.append((ex.text, ok, "no alarm" if first is None else f"first at {local(sc, first)}"))
        elif ex.kind == "mode":
            modes = [e for e in _events(entries, "mode") if ex.at is not None and e.t <= ex.at]
            seen = modes[-1].text.split()[2] if modes else None
            out.append((ex.text, seen == ex.value, f"mode was {seen}"))
    return out


def local(sc: Scenario, t: int) -> str:
    import civil

    return civil.format_datetime(sc.tz.to_local(t))


def describe(entry: Entry) -> tuple[str, str]:
    """(what, detail) of a timeline entry, for people."""
    if entry.kind == "console" and entry.text.startswith("event "):
        parts = entry.text.split(" ", 2)
        name = parts[1]
        rest = parts[2] if len(parts) > 2 else ""
        if name == "level":
            level, _, why = rest.partition(" ")
            return "level", f"{level} %  {why}"
        if name == "boot":
            return "boot", rest if rest == "no valid time" else f"time from {rest}"
        if name == "clock" and rest.startswith("ntp ") and rest.endswith(" s"):
            step = rest[4:-2]
            return "clock", f"NTP stepped it {step} s" + _span(step)
        return name, rest
    if entry.kind == "end":
        # The runner's count of the loop's sleeps (a check that a run repeats
        # itself), or why there is none: over a real network it varies.
        if entry.text.endswith(" sleeps"):
            return "end", f"end of the scenario (the firmware's loop slept {entry.text[:-7]} times)"
        return "end", "end of the scenario"
    return entry.kind, entry.text


def _span(step: str) -> str:
    """(2 h 00 min), for a step of an hour or more."""
    try:
        n = abs(int(step))
    except ValueError:
        return ""
    if n < 3600:
        return ""
    h, m = divmod(n // 60, 60)
    return f" ({h} h {m:02d} min)" if h < 48 else f" ({n // 86400} days)"


# The plot's colours: one hue each, none a shade of another (the level's amber,
# the alarm's red, the power cut's near-black, the Wi-Fi outage's blue).
_LEVEL = "#d08700"
_ALARM = "#c8102e"
_POWER = "#3a3a3a"
_WIFI = "#2f6db5"
_SUN = "#6b6b6b"
_MODES = {"alarm": _ALARM, "failsafe": "#7a3fa0", "photocell": "#1d8a5a"}
_MODE_NAMES = {"alarm": "alarm", "failsafe": "fail-safe", "photocell": "photocell"}


def _utc_offset(tz: object, t: int) -> str:
    off = tz.to_local(t) - t  # type: ignore[attr-defined]
    sign = "+" if off >= 0 else "-"
    h, m = divmod(abs(off) // 60, 60)
    return f"UTC{sign}{h}" + (f":{m:02d}" if m else "")


def plot(result: Result, out: Path) -> None:
    """The lamp's night as someone who did not write the scenario reads it: the
    level, what the lamp did instead of it (flashing for an alarm, dark while it
    was broken or the power was off), the network, and why the lamp decided as
    it did (its mode, the clock's loss), on the park's local time."""
    import matplotlib

    matplotlib.use("Agg")
    import datetime

    import civil
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import sun
    from matplotlib.patches import Patch

    sc = result.scenario
    tz = sc.tz
    span = sc.end - sc.start

    def dt(t: int) -> float:
        y, m, d, hh, mm, ss = civil.split(tz.to_local(t))[:6]
        return float(mdates.date2num(datetime.datetime(y, m, d, hh, mm, ss)))

    def at_least(t0: int, t1: int) -> int:
        # A short span (a two-minute power cut in a day) is drawn wide enough to see.
        return max(t1, t0 + span // 150)

    # Modes other than the schedule, as (mode, start, end).
    modes: list[tuple[str, int, int]] = []
    mode, since = "schedule", sc.start
    for e in result.entries:
        if e.kind == "console" and e.text.startswith("event mode "):
            new = e.text.split(" ")[2]
            if new != mode:
                if mode in _MODES:
                    modes.append((mode, since, e.t))
                mode, since = new, e.t
    if mode in _MODES:
        modes.append((mode, since, sc.end))
    alarms = [(a, b) for m, a, b in modes if m == "alarm"]

    # The level, except while the lamp flashed for an alarm (drawn as a band).
    xs, ys = [dt(sc.start)], [0.0]
    for e in result.entries:
        if e.kind != "level":
            continue
        v = float(e.text)
        if any(a <= e.t < b for a, b in alarms):
            v = float("nan")
        if dt(e.t) == xs[-1]:
            ys[-1] = v  # a zero-length state (the lit instant of a boot): not drawn
            continue
        xs.append(dt(e.t))
        ys.append(v)
    xs.append(dt(sc.end))
    ys.append(ys[-1])

    fig, ax = plt.subplots(figsize=(12, 5.4), dpi=100)
    handles: list[object] = []
    (line,) = ax.step(xs, ys, where="post", color=_LEVEL, linewidth=2, label="lamp level")
    ax.fill_between(xs, ys, step="post", color=_LEVEL, alpha=0.15, linewidth=0)
    handles.append(line)
    for a, b in alarms:
        ax.fill_between(
            [dt(a), dt(at_least(a, b))],
            20,
            100,
            color=_ALARM,
            alpha=0.25,
            hatch="////",
            edgecolor=_ALARM,
            linewidth=0,
        )
    if alarms:
        handles.append(
            Patch(
                facecolor=_ALARM,
                alpha=0.35,
                hatch="////",
                edgecolor=_ALARM,
                label="alarm: lamp flashing 20-100 %",
            )
        )

    # Sunrise and sunset of each date in range.
    lat, lon = sc.config["site"]["lat"], sc.config["site"]["lon"]
    day0 = tz.to_local(sc.start) // 86400
    for day in range(day0 - 1, tz.to_local(sc.end) // 86400 + 2):
        y, m, d = civil.civil_from_days(day)
        _, rise, set_, _, _ = sun.solar_day(tz, y, m, d, lat, lon)
        for t, label in ((rise, "sunrise"), (set_, "sunset")):
            if t is not None and sc.start <= t <= sc.end:
                ax.axvline(dt(t), color=_SUN, linestyle=":", linewidth=1)
                ax.text(dt(t), 101, label, color=_SUN, fontsize=8, ha="center", va="bottom")

    # Power cuts (full height: the lamp is dark) and Wi-Fi outages (a strip
    # under the level, so the level stays readable through them).
    cuts, outages, faults, marks = [], [], [], []
    off = wifi_off = fault_on = None
    for e in result.entries:
        if e.kind == "power" and e.text == "mains cut":
            off = e.t
        elif e.kind == "power" and e.text == "mains back" and off is not None:
            cuts.append((off, e.t))
            off = None
        elif e.kind == "world" and e.text == "Wi-Fi down":
            wifi_off = e.t
        elif e.kind == "world" and e.text == "Wi-Fi up" and wifi_off is not None:
            outages.append((wifi_off, e.t))
            wifi_off = None
        elif e.kind == "world" and e.text == "RTC battery dead":
            marks.append((e.t, "RTC battery dead"))
        elif e.kind == "reset" and e.text not in ("power on",):
            marks.append((e.t, "reset: " + e.text))
        elif e.kind == "console" and e.text.startswith("event boot no valid time"):
            marks.append((e.t, "boot without a valid time"))
        elif e.kind == "console" and e.text.startswith("event clock ntp"):
            marks.append((e.t, "NTP sets the clock"))
        elif (
            e.kind == "console"
            and e.text.split(" ")[1:2]
            and e.text.split(" ")[1]
            in (
                "lamp_failure",
                "lamp_on_unexpected",
                "relay_failure",
            )
        ):
            fault_on = (e.t, e.text.split(" ")[1])
            ax.plot([dt(e.t)], [-3], marker="v", color=_ALARM, markersize=9, clip_on=False)
            marks.append((e.t, e.text.split(" ")[1].replace("_", " ") + " raised"))
        elif e.kind == "console" and e.text.split(" ")[1:2] and e.text.split(" ")[1].endswith("_cleared"):
            name = e.text.split(" ")[1][: -len("_cleared")]
            ax.plot([dt(e.t)], [-3], marker="^", color="#1d8a5a", markersize=9, clip_on=False)
            marks.append((e.t, name.replace("_", " ") + " cleared"))
            if fault_on is not None:
                faults.append((fault_on[0], e.t, fault_on[1]))
                fault_on = None
    if off is not None:
        cuts.append((off, sc.end))
    if wifi_off is not None:
        outages.append((wifi_off, sc.end))
    if fault_on is not None:
        faults.append((fault_on[0], sc.end, fault_on[1]))
    for a, b in cuts:
        ax.axvspan(dt(a), dt(at_least(a, b)), color=_POWER, alpha=0.55, linewidth=0)
        lo, hi = civil.split(tz.to_local(a))[3:5], civil.split(tz.to_local(b))[3:5]
        ax.text(
            dt(at_least(a, b)),
            50,
            f" power off {lo[0]:02d}:{lo[1]:02d}-{hi[0]:02d}:{hi[1]:02d}",
            color=_POWER,
            fontsize=8,
            rotation=90,
            va="center",
            ha="left",
        )
    if cuts:
        handles.append(Patch(color=_POWER, alpha=0.55, label="power cut: lamp dark"))
    for a, b in outages:
        ax.fill_between([dt(a), dt(b)], -11, -6, color=_WIFI, alpha=0.8, linewidth=0)
        ax.text(dt(a), -8.5, " Wi-Fi down", color="white", fontsize=7, va="center", ha="left")
    if outages:
        handles.append(Patch(color=_WIFI, alpha=0.8, label="Wi-Fi down"))
    for a, b, _ in faults:
        ax.fill_between(
            [dt(a), dt(b)], 0, 100, facecolor="none", edgecolor=_ALARM, hatch="xx", linewidth=0, alpha=0.45
        )
    if faults:
        handles.append(Patch(facecolor="none", hatch="xx", edgecolor=_ALARM, label="lamp fault open"))
    # Why the lamp decided as it did: its mode, a ribbon above the level.
    for k, (m, a, b) in enumerate(modes):
        ax.fill_between([dt(a), dt(at_least(a, b))], 106, 112, color=_MODES[m], linewidth=0)
        # A short mode's name goes before it, so that the next one's does not cover it.
        short = k + 1 < len(modes) and modes[k + 1][1] - b < span // 20
        x, ha, name = (
            (dt(a), "right", _MODE_NAMES[m] + " ") if short else (dt(a), "left", " " + _MODE_NAMES[m])
        )
        ax.text(x, 113, name, color=_MODES[m], fontsize=8, va="bottom", ha=ha)
    for m in dict.fromkeys(m for m, _, _ in modes):
        if m != "alarm":
            handles.append(Patch(color=_MODES[m], label=f"mode: {_MODE_NAMES[m]}"))
    for k, (t, text) in enumerate(sorted(marks)):
        ax.axvline(dt(t), color="#222222", linewidth=0.8, linestyle="--")
        ax.text(
            dt(t),
            92 - 14 * (k % 3),
            " " + text,
            fontsize=8,
            color="#222222",
            ha="left",
            va="top",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )

    ax.set_ylim(-13, 120)
    ax.set_yticks([0, 20, 40, 60, 80, 100])
    ax.set_ylabel("lamp level, %")
    where = sc.config.get("site", {}).get("tz", "")
    ax.set_xlabel(f"local time in the park ({where}, {_utc_offset(tz, sc.start)})")
    ax.set_title(sc.name or str(sc.path.name), fontsize=11)
    if span <= 3 * 86400:
        ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.set_xlim(dt(sc.start), dt(sc.end))
    # Under the plot: a legend inside it hid the data behind it.
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize=8, frameon=False
    )
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
