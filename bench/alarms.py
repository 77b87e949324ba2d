"""Alarm benchmarks for `make bench` (bench/run.py): delivery latency against
Mosquitto, and the lamp firmware's heap over a simulated week in MicroPython."""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from pathlib import Path

from parkctl import simcmd
from parkctl.brokers import Mosquitto
from parkctl.fwcheck import Names, name_table
from parkctl.runtime import micropython_bits

ROOT = Path(__file__).resolve().parents[1]
WIFI_CONFIG = ROOT / "sim" / "scenarios" / "songjiang-wifi.json"


def _cycles(n: int, every_s: int) -> str:
    """n press / acknowledge / resolve cycles from 2026-12-21 18:00 local."""
    import datetime as dt

    t0 = dt.datetime(2026, 12, 21, 18, 0, 0)
    lines = []
    for i in range(n):
        t = t0 + dt.timedelta(seconds=i * every_s)
        for off, what in ((0, "press button for 300ms"), (2, "centre ack"), (4, "centre resolve")):
            lines.append(f"at {(t + dt.timedelta(seconds=off)).strftime('%Y-%m-%d %H:%M:%S')} {what}")
    end = t0 + dt.timedelta(seconds=n * every_s + 60)
    head = (
        f"config {WIFI_CONFIG}\nstart 2026-12-21 17:55\nend {end.strftime('%Y-%m-%d %H:%M')}\nwifi up 17:55\n"
    )
    return head + "\n".join(lines) + f"\nexpect {n} alarms at centre\n"


def bench_alarm_latency(n: int = 1000) -> None:
    """The press on the pole (the world's) -> the lamp and ring LED show it
    (after the debounce pass has journaled the raise: flash first), and the
    press confirmed (the LED lit) -> PUBACK back at the lamp (its
    alarm_delivered), in wall-clock time: the simulated clock does not move
    while the firmware works or the broker owes the lamp an answer, so what is
    measured is the firmware's work, the journal write and the round trip.
    (The simulated flash takes no time: on the ESP32 the raise's write adds
    about a millisecond, docs/journal.md.)"""
    broker = Mosquitto().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scn = Path(tmp) / "alarms.scn"
            scn.write_text(_cycles(n, 10))
            start = time.perf_counter()
            result = simcmd.run(scn, broker=broker.url)
            wall = time.perf_counter() - start
    finally:
        broker.close()
    lat = []  # press confirmed (the LED lit) -> PUBACK
    shown = []  # the press on the pole (the world's) -> the LED lit
    whole = []  # the press on the pole -> PUBACK
    pressed = lit = None
    for e in result.entries:
        if e.kind == "world" and e.text.startswith("button pressed"):
            pressed, lit = e.wall, None
        elif e.kind == "led" and e.text == "on" and lit is None and pressed is not None:
            lit = e.wall
            shown.append((lit - pressed) * 1000)
        elif e.text.startswith("event alarm_delivered ") and lit is not None and pressed is not None:
            lat.append((e.wall - lit) * 1000)
            whole.append((e.wall - pressed) * 1000)
            pressed = lit = None
        elif e.text.startswith("event alarm_resolved"):
            pressed = lit = None
    arrived = sum(1 for e in result.entries if e.kind == "centre" and e.text.startswith("alarm_raised "))
    print(
        f"alarm delivery, {n} presses against Mosquitto on loopback (CPython simulator, {wall:.0f} s wall):"
    )
    print(f"  alarms at the centre            {arrived:6d} of {n}")
    # The press on the pole includes the debounce pass: the simulated 50 ms take no
    # wall time, the firmware's work in both passes does.
    for label, xs, target in (
        ("press -> lamp and LED", shown, 20),
        ("press confirmed -> PUBACK", lat, 50),
        ("press -> PUBACK", whole, 50),
    ):
        if xs:
            xs.sort()
            p50 = statistics.median(xs)
            p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
            print(f"  {label + ' p50':<32}{p50:8.2f} ms")
            print(f"  {label + ' p99':<32}{p99:8.2f} ms   (target < {target})")


# What the lamp keeps loaded (diag and diagbase wait for the first console line;
# lampconfig, the parser, is loaded only to parse).
FIRMWARE_MODULES = (
    "settings configcheck configstore schedule controller output photocell monitor alarm journal "
    "mqtt uplink link netclock timesource button sun posixtz civil ticks topics console apploop"
)


def _module_code_bytes() -> int:
    """Heap the firmware's modules (all but board and main) take once imported."""
    import subprocess

    from parkctl.runtime import micropython_binary, micropython_env

    code = (
        "import gc\ngc.collect()\na = gc.mem_alloc()\n"
        f"import {', '.join(FIRMWARE_MODULES.split())}\n"
        "gc.collect()\nprint(gc.mem_alloc() - a)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "code_heap.py"  # a file: this build crashes on long -c arguments
        script.write_text(code)
        proc = subprocess.run(
            [micropython_binary(), "-X", "heapsize=400k", str(script)],
            env=micropython_env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    return int(proc.stdout.split()[-1])


def bench_heap_week() -> None:
    """The lamp firmware with Wi-Fi, MQTT and the journal, a week in the
    MicroPython simulator: its live heap after gc.collect(), sampled while idle.
    Twice: the code imported from source (compiled into the heap, as from .mpy
    files on the littlefs), and from a ROMFS image (bytecode run in place, as
    frozen code is: what stays is the firmware's data and its function and class
    objects). Every night the power is cut: each day is a boot of its own."""
    from parkctl.build import romfs_image

    days = 7
    where = f"MicroPython unix {micropython_bits()}-bit, Wi-Fi, MQTT, journal"
    print(f"lamp firmware heap over {days} simulated days ({where}), target < 48 KB:")
    names = board_pools("lamp")
    print(
        f"  (its names as on a board: {names.names} in {names.pools} pools, {names.pool_bytes} bytes;"
        " docs/testing.md)"
    )
    print(f"  {'code':<24} {'day':>4} {'peak live':>10} {'median live':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        rom = Path(tmp) / "lamp.romfs"
        rom.write_bytes(romfs_image("lamp"))
        for label, romfs in (("imported from source", None), ("on a ROMFS", rom)):
            per_day = _heap_week(days, romfs)
            if not per_day:
                print(f"  {label}: no heap probe came back")
                continue
            for day, peak, median in per_day:
                print(f"  {label if day == 1 else '':<24} {day:4d} {peak:10d} {median:12d}")
            peak = max(p for _, p, _ in per_day)
            line = f"  peak {peak} bytes"
            if romfs is None:
                code = _module_code_bytes()
                line += (
                    f", of which module code {code} bytes (all but board and main), the rest {peak - code}"
                )
            print(line)
            if len(per_day) >= 3:
                # Day 1 is the afternoon and night of the first power-on (an empty
                # journal): growth is measured from the first whole day on.
                growth = per_day[-1][2] - per_day[1][2]
                print(
                    f"  growth of the median, day 2 -> day {per_day[-1][0]}: {growth:+d} bytes (target: none)"
                )


def names_charged(entries) -> int:
    """Bytes of name-table pools a run allocated after the heap probe's base.

    The simulator's names and the firmware's share MicroPython's name table (its
    qstr pools, which grow by doubling, one block each), so whether the firmware
    is charged a pool, and how big, depends on how many names the simulator left:
    up to 14 KB either way. sim/mp_main.py prints the table at the base, after
    the boot and at the end; the figures then count, in place of what the run
    allocated, the pools the app's boot makes on a board (board_pools)."""
    t = [Names(e.text) for e in entries if e.kind == "names"]
    if len(t) < 3:
        raise RuntimeError("the run printed no name table (sim/mp_main.py, names())")
    if t[1].pools != t[-1].pools:
        raise RuntimeError("the name table grew after the boot: samples before it would be miscounted")
    return t[-1].pool_bytes - t[0].pool_bytes


@functools.cache
def board_pools(app: str) -> Names:
    """The name table the app's boot leaves on a board (parkctl.fwcheck.name_table)."""
    return name_table(app)[0]


def _heap_week(days: int, romfs: Path | None) -> list[tuple[int, int, int]]:
    """(day, peak, median) of the firmware's live heap over `days` simulated days.

    The power is cut every night at 02:00 for five minutes. Each day is a run of
    its own, from power-on to the cut, in a new interpreter that boots from the
    flash the day before left: a board's RAM is gone after a power cut, while in
    one interpreter a stale word on the C stack (its garbage collector scans the
    stack conservatively) can keep objects of the boot before alive."""
    board = board_pools("lamp").pool_bytes
    broker = Mosquitto().start()
    out: list[tuple[int, int, int]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            flash = Path(tmp) / "flash.img"
            for d in range(days):
                day = f"2026-12-{21 + d}"
                on = f"{day} 12:00" if d == 0 else f"{day} 02:05"  # the first power-on, or the night's
                lines = [
                    f"config {WIFI_CONFIG}",
                    f"start {on}",
                    f"end 2026-12-{22 + d} 02:00",
                    f"wifi up {on}",
                    f"at {day} 22:03 press button for 300ms",
                    f"wifi down {day} 23:00 - {day} 23:20",
                    f"at {day} 23:10 press button for 1s",
                ]
                scn = Path(tmp) / "day.scn"
                scn.write_text("\n".join(lines) + "\n")
                result = simcmd.run(
                    scn,
                    "micropython",
                    broker=broker.url,
                    heap_probe=True,
                    romfs=romfs,
                    flash=flash,
                    from_flash=flash if d else None,
                )
                probes = [e.text.split() for e in result.entries if e.kind == "heap"]
                if len(probes) < 2:
                    return []
                # The simulator alone (and the ROMFS image), before the boot; the
                # firmware's names counted as on a board (names_charged).
                base = int(probes[0][1]) + names_charged(result.entries) - board
                peak = max(int(p[2]) for p in probes[1:]) - base
                median = int(probes[1][3]) - base  # a run is shorter than a day: one entry
                out.append((d + 1, peak, median))
    finally:
        broker.close()
    return out
