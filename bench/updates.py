"""What checking a signed release costs a lamp (docs/updates.md), for `make bench`:
the P-256 signature check's time in MicroPython (unix port), the whole check of a
real lamp release (signature, manifest, every file's sha256 read from the disk in
512-byte chunks), the heap it needs at its peak, and the size of the two modules,
which are on the flash only and loaded for an update alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from parkctl.fwcheck import Names  # noqa: E402
from parkctl.runtime import HEAPSIZE, micropython_binary, micropython_bits, micropython_env  # noqa: E402

SCRIPT = ROOT / "bench" / "mp_release.py"
MODULES = ("p256.py", "release.py", "staging.py")


def _run(path: list[Path], folder: Path, mode: str, heap: str) -> subprocess.CompletedProcess:
    env = dict(micropython_env(), MICROPYPATH=":".join(str(p) for p in path))
    return subprocess.run(
        [micropython_binary(), "-X", f"heapsize={heap}", str(SCRIPT), str(folder), mode],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _least_heap(path: list[Path], folder: Path, mode: str) -> int:
    """The smallest -X heapsize (to 256 bytes) the script runs to its end in."""
    lo, hi = 1024, 100 * 1024
    if _run(path, folder, mode, str(hi)).returncode != 0:
        raise RuntimeError(f"mp_release.py {mode} fails even in {hi} bytes")
    while hi - lo > 256:
        mid = (lo + hi) // 2 // 256 * 256
        ok = _run(path, folder, mode, str(mid))
        if ok.returncode == 0 and ok.stdout.strip().endswith("ok"):
            hi = mid
        else:
            lo = mid
    return hi


def _lamp_names() -> tuple[Names, Names]:
    """The lamp's name table once it has booted and loaded its console, then once
    an update has loaded release, p256 and staging (code from a ROMFS, as fwcheck does)."""
    from parkctl.fwcheck import name_table

    _, console, update = name_table("lamp", then=("release", "staging"))
    return console, update


def bench_release_check() -> None:
    from parkctl import release
    from parkctl.build import CHIPS, build, compile_mpy, deployed_folders
    from parkctl.runtime import FIRMWARE_LIB, FIRMWARE_PATHS

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        keys = release.keygen(t / "keys")
        b = build("lamp", out=t / "build", chip="vboard")
        release.sign("lamp", "1.2.0", Path(keys["private_key"]), t / "rel", build_dir=t / "build")
        shutil.copy(keys["public_key"], t / "rel" / "release.pub")
        path = deployed_folders(FIRMWARE_PATHS, t / "deployed")
        out = _run(path, t / "rel", "time", HEAPSIZE)
        if out.returncode != 0:
            raise RuntimeError(f"bench/mp_release.py failed:\n{out.stdout}{out.stderr}")
        lines = [ln for ln in out.stdout.splitlines() if not ln.startswith(("qstr", "ok"))]
        verify_us, check_us, files_us, code, left = (int(x) for x in lines[0].split())
        before, after = (Names(ln) for ln in out.stdout.splitlines() if ln.startswith("qstr pool:"))
        lamp_boot, lamp_after = _lamp_names()
        peak = _least_heap(path, t / "rel", "check") - _least_heap(path, t / "rel", "none")
        files = len(b.manifest["files"]) + 1
        size = sum(p.stat().st_size for p in (t / "rel" / "files").rglob("*") if p.is_file())
        esp32 = {m: len(compile_mpy(FIRMWARE_LIB / m, "lib/" + m, CHIPS["esp32"])) for m in MODULES}
    bits = micropython_bits()
    print(f"a signed release of the lamp checked (docs/updates.md), MicroPython unix {bits}-bit:")
    print(f"  P-256 signature check   {verify_us / 1000:8.2f} ms (heap {HEAPSIZE})")
    print(f"  manifest: + JSON, rules {check_us / 1000:8.2f} ms")
    print(
        f"  {'each file, sha256':<23} {files_us / 1000:8.2f} ms ({files} files, {size // 1024} KiB read "
        "in 512-byte chunks)"
    )
    print(f"  peak heap of the check  {peak:8d} bytes (least -X heapsize with it, less without it)")
    print(f"  release, p256 in heap   {code:8d} bytes of code while a check runs")
    print(
        f"  left after dropping it  {left:8d} bytes: {after.names - before.names} names the modules brought "
        "stay in MicroPython's name table"
    )
    grew = "a new pool: more heap for good" if lamp_after.pools != lamp_boot.pools else "no new pool"
    print(
        f"  the lamp's name table   {lamp_boot.names:8d} names after its boot and console, "
        f"{lamp_after.names} with the update's, of {lamp_boot.names + lamp_boot.room} in its "
        f"{lamp_boot.pools} pools: {grew}"
    )
    print(
        f"  .mpy on flash (esp32)   {sum(esp32.values()):8d} bytes "
        f"({', '.join(f'{m[:-3]} {n}' for m, n in esp32.items())})"
    )


def bench_update_over_the_link() -> None:
    """A whole lamp app (the virtual board's build, .mpy and all) updated over
    MQTT in real time on the virtual board (the real interpreter, its littlefs
    image, Mosquitto, the simulator's centre serving the pieces), and the lamp's
    live heap while the transfer runs (the MicroPython simulator's heap probe,
    the same release from the same app deployed on its flash)."""
    import json
    import time

    from parkctl import release, simcmd
    from parkctl.brokers import Mosquitto
    from parkctl.build import build
    from parkctl.vboard import VirtualBoard

    from sim.centre import Centre
    from sim.cmdsign import SIM_MASTER, derive_key

    sys.path.insert(0, str(ROOT / "tests"))
    from test_vboard import _fs

    device = "lamp-240ac4000001"
    broker = Mosquitto().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            release.keygen(t / "keys")
            cfg = json.loads((ROOT / "firmware" / "lamp" / "config.json").read_text())
            cfg["network"] = {
                "ssid": "park-iot",
                "key": "k",
                "user": "lamp",
                "password": "p",
                "broker": broker.url,
            }
            (t / "device.json").write_text(json.dumps(cfg))
            b = build(
                "lamp",
                t / "build",
                chip="vboard",
                device_config=t / "device.json",
                release_key=t / "keys" / "release.pub",
            )
            new = t / "release"
            release.sign("lamp", "1.1.0", t / "keys" / "release-key.pem", new, t / "build")
            files = json.loads((new / "release.json").read_bytes())["files"]
            size = sum(e["size"] for e in files)
            image = t / "flash.img"
            shutil.copyfile(b.image, image)
            fs = _fs(image)
            with fs.open("/cmd.key", "w") as f:
                f.write(derive_key(SIM_MASTER, device).hex())
            fs.unmount()
            image.write_bytes(bytes(fs.context.buffer))
            lines: list[tuple[float, str]] = []
            centre = Centre(
                "127.0.0.1", broker.port, lambda kind, text: lines.append((time.monotonic(), text))
            )

            def until(what: str) -> float:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    for at, text in lines:
                        if text.startswith(what):
                            return at
                    centre.client.loop(0.02)
                raise RuntimeError(f"no {what!r} in 300 s")

            with VirtualBoard("lamp", image):
                until(f"{device} online")
                lines.clear()
                t0 = time.monotonic()
                centre.command("offer", {"release": str(new)})
                installed = until("update_installed from") - t0
                done = until("update_done from") - t0
            centre.close()
            print(
                f"update over MQTT, virtual board (real time): {len(files)} files, {size} bytes, "
                f"{-(-size // 1024)}+ pieces; installed (delivered after the restart) in {installed:.1f} s, "
                f"healthy on the new app in {done:.1f} s ({size / 1024 / installed:.0f} KiB/s end to end)"
            )
            # The heap while the transfer runs, in the MicroPython simulator: the
            # app as the board has it (its build on the flash), the same release.
            scn = t / "u.scn"
            wifi = ROOT / "sim" / "scenarios" / "songjiang-wifi.json"
            base = (
                f"config {wifi}\nstart 2026-12-21 18:00\nend 2026-12-21 18:20\nwifi up 18:00\n"
                f"deployed {t / 'build' / 'fs'}\nrelease key {t / 'keys' / 'release.pub'}\n"
            )
            peaks = []
            for offer in ("", f"at 18:05 centre offers {new}\n"):
                scn.write_text(base + offer)
                result = simcmd.run(scn, "micropython", broker=broker.url, heap_probe=True)
                heap = [[int(x) for x in e.text.split()] for e in result.entries if e.kind == "heap"]
                peaks.append(max(h[2] for h in heap[1:]) - heap[0][1])
                if offer:
                    texts = [e.text for e in result.entries]
                    assert any(x.startswith("update_done from") for x in texts), texts[-20:]
            print(
                f"lamp live heap, MicroPython {micropython_bits()}-bit simulator, its build on its flash: "
                f"peak {peaks[0]} B without an update, {peaks[1]} B with the transfer of this release "
                f"(+{peaks[1] - peaks[0]} B; nothing holds a whole file: pieces of 1 KiB)"
            )
    finally:
        broker.stop()
