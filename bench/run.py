"""`make bench`: speed and memory figures, printed.

Runs in the project's venv; the MicroPython figures come from the real unix-port
interpreter with the heap an ESP32 gives (-X heapsize=100k)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "firmware" / "lib"
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(LIB))

from parkctl.runtime import HEAPSIZE, micropython_binary, micropython_env  # noqa: E402

# No wait in a benchmark is for ever: a program (or a board) that stops answering
# fails its benchmark, and the others still run.
RUN_TIMEOUT_S = 600


def _micropython(script: str, *args: str) -> list[str]:
    """bench/SCRIPT in MicroPython at the board's heap, with the firmware as a
    board loads it (.mpy: parkctl.build.deployed_folders) and the firmware
    tests' fake peripherals (compiled the same way, as the firmware tests run)."""
    import tempfile

    from parkctl.build import deployed_folders
    from parkctl.runtime import FIRMWARE_PATHS

    with tempfile.TemporaryDirectory() as tmp:
        helpers = ROOT / "tests" / "firmware"
        path = deployed_folders([*FIRMWARE_PATHS, helpers], Path(tmp), skip=("conftest.py",))
        env = dict(micropython_env(), MICROPYPATH=":".join(str(p) for p in path))
        proc = subprocess.run(
            [micropython_binary(), "-X", f"heapsize={HEAPSIZE}", str(ROOT / "bench" / script), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    if proc.returncode != 0:
        sys.exit(f"bench/{script} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.split()


def bench_sun_micropython() -> None:
    out = _micropython("mp_sun.py")
    per_day_us, allocated, in_use, heap = (int(x) for x in out)
    print(f"sun, one day (dawn, sunrise, sunset, dusk), MicroPython unix, heap {HEAPSIZE}:")
    print(f"  time            {per_day_us / 1000:8.2f} ms per day")
    print(f"  heap allocated  {allocated:8d} bytes per day (garbage, collected afterwards)")
    print(f"  heap in use     {in_use:8d} bytes of {heap} after loading sun, posixtz, civil")


def bench_cmdauth_micropython() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        check_us, fresh_us, seal_us, allocated = (int(x) for x in _micropython("mp_cmdauth.py", folder))
    print(f"a command's authenticator (docs/security.md), MicroPython unix, heap {HEAPSIZE}:")
    print(f"  MAC check       {check_us / 1000:8.3f} ms per command (target < 5 ms)")
    print(f"  counter to flash{fresh_us / 1000:8.3f} ms per command (a file rename here)")
    print(f"  seal an event   {seal_us / 1000:8.3f} ms per message")
    print(f"  heap allocated  {allocated:8d} bytes per check (garbage)")


def bench_sun_cpython() -> None:
    import sun
    from posixtz import TZ

    tz = TZ("CST-8")
    n = 2000
    start = time.perf_counter()
    for day in range(n):
        sun.solar_day(tz, 2026, 1 + day // 31 % 12, 1 + day % 28, 31.03, 121.23)
    per = (time.perf_counter() - start) / n
    print(f"sun, one day, CPython {sys.version.split()[0]}:")
    print(f"  time            {per * 1000:8.3f} ms per day")


def bench_lamp_micropython() -> None:
    config = ROOT / "firmware" / "lamp" / "config.json"
    out = _micropython("mp_lamp.py", str(config))
    idle, sample, nxt, cold, cfg_b, eng_b, ctl_b, mods = (int(x) for x in out)
    print(f"lamp controller, shipped configuration, MicroPython unix, heap {HEAPSIZE}:")
    print(f"  main-loop pass, nothing to do     {idle:6d} us   (target <= 200)")
    print(f"  main-loop pass, sensors sampled   {sample:6d} us   (every 5 min idle, 1 s when needed)")
    print(f"  next change, days cached          {nxt:6d} us   (target <= 2000)")
    print(f"  next change, fresh engine         {cold:6d} us   (at boot: every program day computed)")
    print(f"  heap: configuration               {cfg_b:6d} bytes")
    print(f"  heap: engine with its day cache   {eng_b:6d} bytes")
    print(f"  heap: config + engine             {cfg_b + eng_b:6d} bytes (target < 16384)")
    print(f"  heap: whole controller            {ctl_b:6d} bytes (output, photocell, monitor, events)")
    print(f"  heap: module code (unix, 64-bit)  {mods:6d} bytes (less as .mpy on the ESP32)")


def bench_year_summary() -> None:
    """`parkctl schedule --year 2026 --summary` of the shipped configuration, the
    engine's work in each interpreter (CPython in this process, MicroPython as a
    program with its interpreter's start)."""
    from parkctl.runtime import call_lines

    text = (ROOT / "firmware" / "lamp" / "config.json").read_text()
    print("schedule --year 2026 --summary, shipped configuration:")
    for runtime, target in (("cpython", 2.0), ("micropython", 20.0)):
        start = time.perf_counter()
        call_lines("lamp_year", ["2026", "100", "0"], runtime, stdin=text)
        print(f"  {runtime:<12} {time.perf_counter() - start:6.2f} s wall   (target {target:.0f} s)")


def bench_sun_accuracy() -> None:
    """Not speed, but a figure worth printing: the float32 sun against skyfield/DE421."""
    import warnings

    warnings.filterwarnings("ignore", "The file finals2000A.all has expired")
    sys.path.insert(0, str(ROOT / "tests"))
    import test_sun_accuracy as acc

    print("sun accuracy, float32 build vs skyfield/DE421, every day of 2026 (worst error):")
    for lats, target in ((acc.LATITUDES_60S, 60), (acc.LATITUDES_10MIN, 600)):
        worst = 0
        for lat in lats:
            err, _ = acc._compare(lat, (lat * 7.3) % 360.0 - 180.0, target)
            worst = max(worst, err)
        span = f"{min(abs(x) for x in lats):.0f}..{max(abs(x) for x in lats):.0f} deg"
        print(f"  {len(lats):2d} latitudes, {span:<12} {worst:5d} s   (target {target} s)")


def bench_build() -> None:
    """`parkctl build lamp` as a user runs it (the installed command, to a fresh folder),
    and the build itself, in this process; median of five."""
    import statistics
    import tempfile

    from parkctl import build

    parkctl = str(Path(sys.executable).parent / "parkctl")
    cli, inproc = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(5):
            start = time.perf_counter()
            subprocess.run(
                [parkctl, "build", "lamp", "--out", f"{tmp}/cli{i}", "--json"],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=RUN_TIMEOUT_S,
            )
            cli.append(time.perf_counter() - start)
            start = time.perf_counter()
            b = build.build("lamp", Path(tmp) / f"api{i}")
            inproc.append(time.perf_counter() - start)
    files = len(b.manifest["files"]) + 1
    print(f"parkctl build lamp (esp32: {files} files, mpy-cross, 2 MiB littlefs image checked), median of 5:")
    print(f"  command         {statistics.median(cli):6.2f} s wall   (interpreter start included)")
    print(f"  build()         {statistics.median(inproc):6.2f} s wall")


def bench_deploy() -> None:
    """parkctl deploy of the lamp to the virtual board (real mpremote transport over
    its pseudo-terminal): the whole app to a board with an empty flash, then one
    changed module; median of three each."""
    import shutil
    import statistics
    import tempfile

    from parkctl import build
    from parkctl.deploy import deploy
    from parkctl.vboard import VirtualBoard

    root = Path(__file__).resolve().parents[1]
    full, one, sizes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        fw = Path(tmp) / "firmware"
        shutil.copytree(root / "firmware", fw, ignore=shutil.ignore_patterns("__pycache__"))
        chip = build.get_chip("vboard")
        blank, _ = build.make_image({}, chip)
        for i in range(3):
            flash = Path(tmp) / f"flash{i}.img"
            flash.write_bytes(blank)
            with VirtualBoard("lamp", flash) as vb:
                done = deploy(vb.port, "lamp", root=fw)
                full.append(done.seconds)
                sizes.append(len(done.copied))
                with open(fw / "lamp" / "monitor.py", "a") as f:
                    f.write(f"\nBENCH_{i} = {i}\n")
                done = deploy(vb.port, "lamp", root=fw)
                one.append(done.seconds)
                assert done.copied == ["/monitor.mpy"], done.copied
    print("parkctl deploy lamp to the virtual board (mpremote transport over its pty), median of 3:")
    print(f"  full, empty flash      {statistics.median(full):6.2f} s   ({sizes[0]} files copied)")
    print(f"  one module changed     {statistics.median(one):6.2f} s   (1 file copied)")


def bench_sim_year() -> None:
    from parkctl import simcmd

    scenario = ROOT / "bench" / "sim_year.scn"
    print("simulator, one lamp, one year (bench/sim_year.scn), no network:")
    for runtime, target in (("cpython", 2.0), ("micropython", 10.0)):
        start = time.perf_counter()
        result = simcmd.run(scenario, runtime)
        wall = time.perf_counter() - start
        span = result.scenario.end - result.scenario.start
        sleeps = result.entries[-1].text
        print(
            f"  {runtime:<12} {wall:6.1f} s wall  {span / wall:12,.0f} simulated s per s"
            f"   (target {target:.0f} s; {sleeps})"
        )


def bench_fleet() -> None:
    from parkctl import simcmd

    from sim import fleet

    scenario = ROOT / "bench" / "fleet_night.scn"
    lamps = 1000
    jobs = fleet.jobs_for(lamps)
    start = time.perf_counter()
    results = simcmd.run_fleet(scenario, lamps, jobs=jobs)
    wall = time.perf_counter() - start
    span = results[0].scenario.end - results[0].scenario.start
    print(f"simulator, {lamps} lamps in {jobs} processes, one night (bench/fleet_night.scn), no network:")
    rate = span * lamps / wall
    print(f"  cpython      {wall:6.1f} s wall  {rate:12,.0f} simulated lamp-s per s   (target 30 s)")


def bench_fleet_broker(lamps: int = 1000) -> None:
    from parkctl import simcmd
    from parkctl.brokers import Mosquitto

    from sim import fleet

    scenario = ROOT / "bench" / "fleet_night_wifi.scn"
    jobs = fleet.jobs_for(lamps)
    broker = Mosquitto().start()
    try:
        start = time.perf_counter()
        results = simcmd.run_fleet(scenario, lamps, broker=broker.url, jobs=jobs)
        wall = time.perf_counter() - start
    finally:
        broker.close()
    up = sum(1 for r in results if any(e.text == "event mqtt up" for e in r.entries))
    where = "one night against Mosquitto (bench/fleet_night_wifi.scn)"
    print(f"simulator, {lamps} lamps in {jobs} processes, {where}:")
    print(f"  cpython      {wall:6.1f} s wall   {up} lamps connected   (target 60 s)")


def bench_power_cut_campaign(trials: int = 100) -> None:
    from parkctl import campaign

    print(f"power-cut campaign (parkctl campaign power-cuts), {trials} trials per runtime, one per core:")
    for runtime, per_hour in (("cpython", 10000), ("micropython", 1000)):
        n = trials if runtime == "cpython" else trials // 5
        s = campaign.run(n, runtime, seed=1)
        failing = sum(1 for o in s.failed)
        print(
            f"  {runtime:<12} {s.per_minute:8.0f} trials a minute on {s.jobs} processes"
            f"   (target {per_hour / 60:.0f}: {per_hour} in an hour); {failing} of {n} trials failed"
        )


def main() -> int:
    """Every benchmark, in turn; one that fails is reported and the rest still run
    (their figures are not lost to it). Non-zero exit if any failed."""
    import traceback

    import alarms
    import kiosk
    import updates

    failed = []
    for bench in (
        bench_build,
        bench_deploy,
        bench_sun_micropython,
        bench_cmdauth_micropython,
        updates.bench_release_check,
        updates.bench_update_over_the_link,
        bench_lamp_micropython,
        bench_year_summary,
        bench_sun_cpython,
        bench_sun_accuracy,
        bench_sim_year,
        bench_fleet,
        alarms.bench_alarm_latency,
        alarms.bench_heap_week,
        bench_fleet_broker,
        bench_power_cut_campaign,
        kiosk.bench_glyphs_and_heap,
        kiosk.bench_face_to_welcome,
        kiosk.bench_heap_morning,
    ):
        try:
            bench()
        except (Exception, SystemExit):  # reported, and the others still run
            failed.append(bench.__name__)
            print(f"{bench.__name__} FAILED:", flush=True)
            traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
    if failed:
        print(f"make bench: {len(failed)} failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
