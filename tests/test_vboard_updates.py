"""An update of the whole built lamp app (`.mpy` and all) on the virtual board:
the real MicroPython interpreter, a littlefs image as `parkctl build` makes it,
the real Mosquitto, the simulator's centre (sim/centre.py) offering the release
and serving its pieces (docs/updates.md). A release that crashes at import is
rolled back by the board itself; a power cut in the middle of the transfer's
flash writes is taken up where it stopped."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from parkctl import release
from parkctl.build import build
from parkctl.vboard import VirtualBoard
from releases import Releases
from test_vboard import _fs

from sim.centre import Centre
from sim.cmdsign import SIM_MASTER, derive_key

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "lamp-240ac4000001"  # the virtual board's default chip id
WAIT_S = 240  # every wait for the board has this deadline (it runs on the wall clock)


class Watch:
    """The centre's timeline, with waits that end."""

    def __init__(self, port: int):
        self.lines: list[str] = []
        self.centre = Centre("127.0.0.1", port, lambda kind, text: self.lines.append(text))

    def until(self, what: str, after: int = 0) -> str:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if line.startswith(what):
                    return line
            self.centre.client.loop(0.05)
        raise AssertionError(f"no {what!r} at the centre in {WAIT_S} s: {self.lines[-15:]}")


def _built(tmp_path: Path, name: str, mosquitto_url: str, public: Path, main: str | None = None) -> Path:
    """A build of the lamp for the virtual board (its main.py replaced by `main`),
    with a configuration that reaches the broker, the release key and a command key."""
    firmware = tmp_path / f"firmware-{name}"
    shutil.copytree(ROOT / "firmware", firmware, ignore=shutil.ignore_patterns("__pycache__"))
    if main is not None:
        (firmware / "lamp" / "main.py").write_text(main)
    cfg = json.loads((firmware / "lamp" / "config.json").read_text())
    cfg["network"] = {
        "ssid": "park-iot",
        "key": "k",
        "user": "lamp",
        "password": "p",
        "broker": mosquitto_url,
    }
    (tmp_path / "device.json").write_text(json.dumps(cfg))
    out = tmp_path / f"build-{name}"
    build(
        "lamp", out, chip="vboard", root=firmware, device_config=tmp_path / "device.json", release_key=public
    )
    return out


def _flash(build_dir: Path, tmp_path: Path) -> Path:
    image = tmp_path / "flash.img"
    shutil.copyfile(build_dir / "fs.img", image)
    fs = _fs(image)
    with fs.open("/cmd.key", "w") as f:
        f.write(derive_key(SIM_MASTER, DEVICE).hex())
    fs.unmount()
    image.write_bytes(bytes(fs.context.buffer))
    return image


def _manifest(image: Path, path: str = "/manifest.json") -> dict:
    fs = _fs(image)
    try:
        with fs.open(path, "r") as f:
            return json.loads(f.read())
    finally:
        fs.unmount()


@pytest.fixture
def rel(tmp_path: Path) -> Releases:
    return Releases(tmp_path / "releases")


def test_the_built_app_is_updated_over_mosquitto_and_confirmed(mosquitto, tmp_path, rel):
    old = _built(tmp_path, "old", mosquitto.url, rel.public)
    new = tmp_path / "release-1.1.0"
    release.sign("lamp", "1.1.0", rel.key, new, old)  # the same code, as 1.1.0
    image = _flash(old, tmp_path)
    watch = Watch(mosquitto.port)
    with VirtualBoard("lamp", image):
        watch.until(f"{DEVICE} online")
        n = len(watch.lines)
        watch.centre.command("offer", {"release": str(new)})
        installed = watch.until("update_installed from", n)
        done = watch.until("update_done from", n)
    files = json.loads((new / "release.json").read_bytes())["files"]
    assert installed.endswith(": 1.1.0 (0 wrong pieces dropped, 0 files fetched again)")
    assert "healthy on trial" in done
    assert len(files) > 30  # the whole app went over the link, .mpy and all
    on_board = _manifest(image)
    assert on_board["version"] == "1.1.0"
    assert _manifest(image, "/prev/manifest.json")["version"] == _manifest(old / "fs.img")["version"]


def test_a_built_release_that_crashes_at_import_is_rolled_back_by_the_board(mosquitto, tmp_path, rel):
    old = _built(tmp_path, "old", mosquitto.url, rel.public)
    main = (ROOT / "firmware" / "lamp" / "main.py").read_text()
    broken = main.replace(
        "    import json\n", '    import json\n\n    raise RuntimeError("broken at import")\n', 1
    )
    bad_build = _built(tmp_path, "bad", mosquitto.url, rel.public, main=broken)
    bad = tmp_path / "release-1.2.0"
    release.sign("lamp", "1.2.0", rel.key, bad, bad_build)
    image = _flash(old, tmp_path)
    watch = Watch(mosquitto.port)
    with VirtualBoard("lamp", image):
        watch.until(f"{DEVICE} online")
        n = len(watch.lines)
        watch.centre.command("offer", {"release": str(bad)})
        watch.until("update_installed from", n)
        back = watch.until("update_rolled_back from", n)
    assert "a boot of 1.2.0 failed" in back and "broken at import" in back, back
    assert _manifest(image)["version"] == _manifest(old / "fs.img")["version"]
    assert _manifest(image, "/prev/manifest.json")["version"] == "1.2.0"


def _whole(image: Path) -> str:
    """The version on the board's flash, every file of its manifest there with its sha256."""
    import hashlib

    fs = _fs(image)
    try:
        with fs.open("/manifest.json", "r") as f:
            m = json.loads(f.read())
        for path, digest in m["files"].items():
            with fs.open(path, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == digest, path
        return m["version"]
    finally:
        fs.unmount()


def test_power_cuts_in_the_updates_flash_writes_leave_a_whole_app_and_the_update_done(
    mosquitto, tmp_path, rel
):
    # A sample of the update campaign (parkctl campaign update-cuts) on the real
    # interpreter: a cut at the Nth flash operation from the offer, inside the
    # transfer, the switch or the new app's first boot; the power back at once.
    old = _built(tmp_path, "old", mosquitto.url, rel.public)
    new = tmp_path / "release-1.1.0"
    release.sign("lamp", "1.1.0", rel.key, new, old)
    where = []
    # (An update of this app is about 2,600 flash operations on the virtual
    # board: most of them the transfer's appends, the last hundred or so the
    # switch's renames and the new app's first boot.)
    for n in (3, 600, 1300, 2000, 2300, 2450, 2550, 2620, 2700, 2800, 3000):
        image = _flash(old, tmp_path)
        watch = Watch(mosquitto.port)
        try:
            said: list[str] = []
            with VirtualBoard("lamp", image, log=said.append) as vb:
                watch.until(f"{DEVICE} online")
                k = len(watch.lines)
                vb.cut_at_flash_op(n)
                watch.centre.command("offer", {"release": str(new)})
                watch.until("update_done from", k)
        finally:
            watch.centre.close()
        # The board's own log, in its order: a restart into the new app after the
        # cut means the cut came before the switch (in the transfer); none means
        # it came in the switch (boot.py finished it) or in the new app's first boot.
        cut = next((i for i, x in enumerate(said) if x.startswith("power: mains cut")), None)
        if cut is None:
            where.append("none")
        else:
            before = any(x == "reset: machine.reset()" for x in said[cut:])
            where.append("transfer" if before else "switch or first boot")
        assert _whole(image) == "1.1.0", n
    # The sample spans the transfer and what comes after it (switch, first boot).
    assert "transfer" in where and "switch or first boot" in where, where
