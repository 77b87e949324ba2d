"""Updating the MicroPython image through esp32.Partition on the virtual ESP32
(sim/vesp32/esp32.py) with firmware/lib/fwimage.py: written, booted on trial,
rolled back unless confirmed, refused when bad, safe from a power cut in the
middle; the same story in CPython and in the real MicroPython interpreter."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from sim.appimage import make_app_image

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CONFIG = ROOT / "firmware" / "lamp" / "config.json"

# What a technician sees, step by step (tests/ota_story.py).
EXPECTED = [
    "boots: v1.0",
    "running slot: ota_0",
    "mark valid: accepted",
    "confirm: True",
    "written: v2.0",
    "still runs: v1.0",
    "confirm before the reset: False",
    "next boot: ota_1",
    "bootloader: ota_1 boots on trial",
    "after reset runs: v2.0",
    "bootloader: rollback: ota_1 was not marked valid",
    "after unconfirmed reset runs: v1.0",
    "written again: v2.0",
    "bootloader: ota_1 boots on trial",
    "confirm: True",
    "confirm again: True",
    "confirmed, after reset runs: v2.0",
    "and after another: v2.0",
    "wrong sha256: ImageError: sha256 {v3sha}, not the {zeros} announced",
    "other chip: ImageError: an image for esp32s3; this board is esp32",
    "too big: ImageError: an image of 4194304 bytes does not fit the 1572864 bytes of ota_0",
    "wrong size: ImageError: more than the {v3short} bytes announced",
    "after refusals runs: v2.0",
    "cut: the power went while the image was written",
    "after the cut runs: v2.0",
    "set_boot on the cut image: OSError: -5379 ESP_ERR_OTA_VALIDATE_FAILED",
    "after another reset runs: v2.0",
    "then written whole: v3.0",
    "bootloader: ota_0 boots on trial",
    "runs: v3.0",
    "cut in set_boot, then runs: v3.0",
    "cut in set_boot, then runs: v3.0",
    "erasing the running slot: reset, cause 2",
    "then runs: v3.0",
    "plain table: ImageError: no OTA partition table on this board: flash it with one "
    "(parkctl flash --chip esp32-ota)",
    "plain table, mark valid: OSError: -261 ESP_ERR_NOT_FOUND",
    "plain table, confirm: False",
]


def _images(tmp_path: Path) -> dict[str, tuple[str, int, str]]:
    out = {}
    for name, version, chip in (
        ("v1", "v1.0", "esp32"),
        ("v2", "v2.0", "esp32"),
        ("v3", "v3.0", "esp32"),
        ("s3", "v2.0", "esp32s3"),
    ):
        data = make_app_image(version, chip, size=20000 + len(out) * 1000)
        p = tmp_path / f"{name}.bin"
        p.write_bytes(data)
        out[name] = (str(p), len(data), hashlib.sha256(data).hexdigest())
    return out


def _expected(images) -> list[str]:
    v3 = images["v3"]
    return [line.format(v3sha=v3[2], zeros="00" * 32, v3short=v3[1] - 1) for line in EXPECTED]


def _cpython_board(tmp_path: Path, first: bytes, chip: str = "esp32"):
    """A virtual board of `chip` with the OTA table, `first` in ota_0: (hub, esp32, fwimage, board)."""
    from sim import cpython

    modules = cpython.ModuleSystem(console=lambda line: None)
    hub = modules.load("_hub", as_firmware=False)
    esp32 = modules.load("esp32", as_firmware=False)
    world_mod = modules.load("world", as_firmware=False)
    cfg = json.loads(CONFIG.read_text())
    world = world_mod.World({"start": 0, "end": 10**12, "config": cfg}, lambda *a: None)
    board = hub.Board(world, None, b"\x01\x02\x03\x04\x05\x06", chip)
    world.board = board
    hub.__dict__["board"] = board
    flash = tmp_path / "flash.ota"
    esp32.make_flash(str(flash), chip, first)
    esp32.attach(board, str(flash))
    return hub, esp32, modules.load("fwimage", as_firmware=True), board


def _run_cpython(tmp_path: Path, images) -> list[str]:
    hub, esp32, fwimage, board = _cpython_board(tmp_path, Path(images["v1"][0]).read_bytes())
    sys.path.insert(0, str(HERE))
    try:
        import ota_story
    finally:
        sys.path.remove(str(HERE))
    return ota_story.run(hub, esp32, fwimage, board, images)


_MP_SCRIPT = """
import json, _hub, esp32, world, ota_story
cfg = json.load(open(%(config)r))
w = world.World({"start": 0, "end": 10**12, "config": cfg}, lambda *a: None)
board = _hub.Board(w, None, b"\\x01\\x02\\x03\\x04\\x05\\x06")
w.board = board
_hub.board = board
images = %(images)r
f = open(images["v1"][0], "rb")
esp32.make_flash(%(flash)r, "esp32", f.read())
f.close()
esp32.attach(board, %(flash)r)
import fwimage
for line in ota_story.run(_hub, esp32, fwimage, board, images):
    print(line)
"""


def _run_micropython(tmp_path: Path, images) -> list[str]:
    from parkctl.runtime import micropython_binary

    script = _MP_SCRIPT % {"config": str(CONFIG), "images": images, "flash": str(tmp_path / "flash.ota")}
    path = ":".join(
        str(p)
        for p in (
            ROOT / "sim" / "vesp32",
            ROOT / "sim",
            ROOT / "firmware" / "lamp",
            ROOT / "firmware" / "lib",
            HERE,
        )
    )
    env = dict(os.environ, MICROPYPATH=path)
    out = subprocess.run(
        [micropython_binary(), "-X", "heapsize=1M", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_an_image_update_boots_on_trial_rolls_back_and_survives_a_cut(tmp_path, runtime):
    images = _images(tmp_path)
    run = _run_cpython if runtime == "cpython" else _run_micropython
    assert run(tmp_path, images) == _expected(images)


def _otadata_entry(seq: int, state: int) -> bytes:
    """ESP-IDF's esp_ota_select_entry_t, written here from its definition (not by
    the simulator): ota_seq, seq_label[20], ota_state, crc = CRC-32 of ota_seq
    (esp_rom_crc32_le from 0xFFFFFFFF: seq 1 gives 0x4743989a, as on a board)."""
    head = struct.pack("<I", seq)
    return head + b"\xff" * 20 + struct.pack("<II", state, zlib.crc32(head, 0xFFFFFFFF))


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_lamp_that_never_confirms_its_new_image_is_rolled_back_at_its_next_reset(tmp_path, runtime):
    """A board flashed with the OTA table whose otadata names a new image in ota_1
    (as set_boot leaves it): the scenario's lamp boots it on trial, and the
    power cut resets it before the firmware confirmed it (today's lamp never
    does): the bootloader goes back to ota_0, and otadata says so."""
    from parkctl import simcmd

    assert zlib.crc32(struct.pack("<I", 1), 0xFFFFFFFF) == 0x4743989A
    flash = tmp_path / "flash.ota"
    data = bytearray(b"\xff" * 0x310000)
    v1, v2 = make_app_image("v1.0"), make_app_image("v2.0")
    data[0x10000 : 0x10000 + len(v1)] = v1
    data[0x190000 : 0x190000 + len(v2)] = v2
    data[0xD000:0xD020] = _otadata_entry(2, 0)  # seq 2: ota_1, ESP_OTA_IMG_NEW
    flash.write_bytes(bytes(data))
    scn = tmp_path / "cut.scn"
    scn.write_text(
        f"config {ROOT / 'sim' / 'scenarios' / 'berlin.json'}\n"
        "start 2026-12-21 17:00\nend 2026-12-21 17:30\npower off 17:10 - 17:12\n"
    )
    result = simcmd.run(scn, runtime, ota=flash)
    notes = [e.text for e in result.entries if e.text.startswith("bootloader:")]
    assert notes == ["bootloader: ota_1 boots on trial", "bootloader: rollback: ota_1 was not marked valid"]
    after = flash.read_bytes()
    assert after[0xD000:0xD020] == _otadata_entry(2, 4)  # ESP_OTA_IMG_ABORTED
    assert after[0xE000:0xE020] == b"\xff" * 32  # the other sector untouched: ota_0 boots
    assert after[0x10000 : 0x10000 + len(v1)] == v1 and after[0x190000 : 0x190000 + len(v2)] == v2


def test_the_kiosk_board_updates_in_its_own_larger_slots_and_refuses_a_lamp_image(tmp_path):
    """The ESP32-S3's OTA table (partitions-8MiBplus-ota.csv): ota_1 at 0x280000,
    2.4375 MiB; an ESP32 image (chip id 0) is refused by the writer and by set_boot."""
    hub, esp32, fwimage, board = _cpython_board(tmp_path, make_app_image("k1.0", "esp32s3"), "esp32s3")
    nxt = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    assert nxt.info() == (0, 0x11, 0x280000, 0x270000, "ota_1", False)
    assert [p.info()[4] for p in esp32.Partition.find(esp32.Partition.TYPE_DATA)] == [
        "nvs",
        "otadata",
        "phy_init",
        "vfs",
    ]
    lamp = make_app_image("v2.0", "esp32")
    w = fwimage.Writer(len(lamp), hashlib.sha256(lamp).hexdigest())
    with pytest.raises(fwimage.ImageError, match="an image for esp32; this board is esp32s3"):
        w.write(lamp)
    nxt.writeblocks(0, lamp[:4096])  # written around the writer: set_boot still refuses
    with pytest.raises(OSError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        nxt.set_boot()
    kiosk = make_app_image("k2.0", "esp32s3", size=300000)
    w = fwimage.Writer(len(kiosk), hashlib.sha256(kiosk).hexdigest())
    for i in range(0, len(kiosk), 777):
        w.write(kiosk[i : i + 777])
    assert w.finish() == "k2.0" and fwimage.version() == "k1.0"
    board.reset(hub.SOFT_RESET)
    assert fwimage.version() == "k2.0" and esp32.Partition(esp32.Partition.RUNNING).info()[4] == "ota_1"
    # A cut in the middle of confirming it (the erase of otadata's sector in force):
    # the older sector is in force again, and the previous image boots, as on a board.
    board.world.cuts_armed.append([1, board.world.now_us + 10**6])
    with pytest.raises(hub.PowerLoss):
        fwimage.confirm()
    board.world.set_power(True)
    board.power_on()
    assert fwimage.version() == "k1.0"
