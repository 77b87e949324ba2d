"""The check-in kiosk's figures for `make bench`: face frame to welcome screen in
the simulator's real-time mode, one glyph looked up and drawn, and the kiosk's
heap outside its frame buffer (MicroPython, unix port)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from alarms import board_pools, names_charged  # noqa: E402
from parkctl import simcmd  # noqa: E402
from parkctl.brokers import Mosquitto  # noqa: E402
from parkctl.runtime import micropython_binary, micropython_bits  # noqa: E402

FRAME_BUFFER = 240 * 320 * 2
ROSTER = ROOT / "sim" / "scenarios" / "g60-roster.json"


def _pct(values: list[int], p: int) -> int:
    v = sorted(values)
    return v[min(len(v) - 1, len(v) * p // 100)]


def bench_face_to_welcome() -> None:
    broker = Mosquitto().start()
    try:
        print("kiosk, face frame on the UART -> welcome screen on the panel, real time x10, 40 people:")
        for runtime in ("micropython", "cpython"):
            r = simcmd.run(ROOT / "bench" / "kiosk_realtime.scn", runtime, realtime=10, broker=broker.url)
            lat = [int(e.text.split()[3]) for e in r.entries if e.kind == "latency"]
            if not lat:
                print(f"  {runtime:<12} no frames timed")
                continue
            print(
                f"  {runtime:<12} p50 {_pct(lat, 50) / 1000:6.1f} ms  p99 {_pct(lat, 99) / 1000:6.1f} ms"
                f"  max {max(lat) / 1000:6.1f} ms  ({len(lat)} faces; target < 100 ms)"
            )
    finally:
        broker.close()


def bench_glyphs_and_heap() -> None:
    from parkctl.font import make_font

    from sim.scenario import roster_update

    with tempfile.TemporaryDirectory() as tmp:
        font = Path(tmp) / "font16.bin"
        font.write_bytes(make_font())
        update = Path(tmp) / "roster.txt"
        update.write_bytes(roster_update(ROSTER))
        names = Path(tmp) / "names.txt"
        names.write_text("\n".join(p[1] for p in json.loads(ROSTER.read_text())["people"]))
        env = {"MICROPYPATH": f"{ROOT / 'firmware' / 'lib'}:{ROOT / 'firmware' / 'kiosk'}"}
        proc = subprocess.run(
            [
                micropython_binary(),
                "-X",
                "heapsize=2M",
                str(ROOT / "bench" / "mp_kiosk.py"),
                str(font),
                str(update),
                str(names),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0:
        sys.exit(f"bench/mp_kiosk.py failed:\n{proc.stdout}{proc.stderr}")
    glyph, p99, char, welcome, modules, state = (int(x) for x in proc.stdout.split())
    print("kiosk glyphs and screens, MicroPython unix (font read from a file, 130 KB never loaded):")
    print(f"  one glyph looked up and read     {glyph:6d} us   p99 {p99} us")
    print(f"  one glyph looked up and drawn    {char:6d} us   (target < 2000)")
    print(f"  the welcome screen drawn         {welcome:6d} us")
    print(f"  heap: kiosk modules              {modules:6d} bytes")
    print(f"  heap: roster (240, on flash), font, check-ins, face module  {state:6d} bytes")


def bench_heap_morning() -> None:
    """The kiosk's live heap over kiosk-morning, its code imported from source and
    then from a ROMFS image (run in place, as frozen code is: bench/alarms.py)."""
    from parkctl.build import romfs_image

    where = f"MicroPython unix {micropython_bits()}-bit, Wi-Fi, MQTT, journal"
    print(f"kiosk firmware heap over kiosk-morning ({where}):")
    with tempfile.TemporaryDirectory() as tmp:
        rom = Path(tmp) / "kiosk.romfs"
        rom.write_bytes(romfs_image("kiosk"))
        for romfs in (None, rom):
            peak = _peak_morning(romfs)
            if peak is None:
                print("kiosk heap: no heap probe came back")
                return
            if romfs is None:
                code = _module_code_bytes()
                data = peak - FRAME_BUFFER - code
                print(f"  code imported from source: peak live heap {peak:7d} bytes")
                print(f"    the frame buffer        {FRAME_BUFFER:7d} bytes")
                print(f"    module code             {code:7d} bytes (what boot loads, main.py too)")
                print(f"    the rest, data          {data:7d} bytes")
            else:
                print(f"  code on a ROMFS:           peak live heap {peak:7d} bytes")
                print(f"    outside the frame buffer {peak - FRAME_BUFFER:7d} bytes (target < 65536)")


def _peak_morning(romfs: Path | None) -> int | None:
    broker = Mosquitto().start()
    try:
        r = simcmd.run(
            ROOT / "sim" / "scenarios" / "kiosk-morning.scn",
            "micropython",
            broker=broker.url,
            heap_probe=True,
            romfs=romfs,
        )
    finally:
        broker.close()
    probes = [e.text.split() for e in r.entries if e.kind == "heap"]
    if len(probes) < 2:
        return None
    # The simulator and its panel, before the firmware's first boot; the
    # firmware's names counted as on a board (bench/alarms.py, names_charged).
    base = int(probes[0][1]) + names_charged(r.entries) - board_pools("kiosk").pool_bytes
    return max(int(p[2]) for p in probes[1:]) - base


# What the kiosk loads at boot (diag and diagbase wait for the first console line).
MODULES = (
    "apploop checkin civil configcheck configstore console facemodule font journal "
    "kioskconfig link mqtt netclock posixtz roster screens st7789 ticks timesource topics uplink "
    "boardbase board"
)
# What the simulator loads before the firmware (in the heap probe's base): not counted.
VIRTUAL = "machine select io micropython network time os socket framebuf"


def _module_code_bytes() -> int:
    """Heap the modules the kiosk loads at boot take, main.py's code
    included (compiled without its last line, main(), which would run it)."""
    main = ROOT / "firmware" / "kiosk" / "main.py"
    code = (
        f"import {', '.join(VIRTUAL.split())}\nimport gc\ngc.collect()\na = gc.mem_alloc()\n"
        f"import {', '.join(MODULES.split())}\n"
        f"with open({str(main)!r}) as f:\n"
        "    exec(compile(f.read().replace('\\nmain()\\n', '\\n'), 'main.py', 'exec'), {})\n"
        "gc.collect()\nprint(gc.mem_alloc() - a)\n"
    )
    paths = [ROOT / "sim", ROOT / "sim" / "vesp32", ROOT / "firmware" / "kiosk", ROOT / "firmware" / "lib"]
    env = {"MICROPYPATH": ":".join(str(p) for p in paths)}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "code_heap.py"  # a file: this build crashes on long -c arguments
        script.write_text(code)
        proc = subprocess.run(
            [micropython_binary(), "-X", "heapsize=2M", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0:
        sys.exit(f"kiosk module code: {proc.stdout}{proc.stderr}")
    return int(proc.stdout.split()[-1])


if __name__ == "__main__":
    bench_glyphs_and_heap()
    bench_face_to_welcome()
    bench_heap_morning()
