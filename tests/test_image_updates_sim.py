"""Updates of the MicroPython image over MQTT in the simulator (docs/updates.md,
"The MicroPython image"): a lamp on a board flashed with the OTA partition
table is offered an image release by the simulated centre; the firmware streams
it into the next OTA slot (fwimage.Writer), the bootloader boots it on trial
(sim/vesp32/esp32.py), the app confirms it once healthy, or the bootloader goes
back by itself and the old image's app says so."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from parkctl import release, simcmd
from releases import Releases
from test_alarm_sim import SCENARIOS, WIFI_CONFIG

from sim.appimage import make_app_image

RUNTIMES = ["cpython", "micropython"]
SLOTS = {0: 0x10000, 1: 0x190000}


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Releases:
    r = Releases(tmp_path_factory.mktemp("images"))
    r.make("1.0.0")
    images = r.root / "images"
    images.mkdir()
    for name, version, chip, size, seed in (
        ("v2", "v2.0", "esp32", 40000, 1),
        ("v2b", "v2.0", "esp32", 40000, 2),  # another image of the same version string
        ("v3", "v3.0", "esp32", 40000, 1),
        ("s3", "v2.0", "esp32s3", 40000, 1),
    ):
        (images / f"{name}.bin").write_bytes(make_app_image(version, chip, size=size, seed=seed))
    return r


def _image_release(rel: Releases, name: str, version: str, chip: str = "esp32") -> Path:
    out = rel.root / f"release-image-{name}-{version}"  # (Releases.edited finds it by that name)
    if not out.exists():
        release.sign_image("lamp", chip, version, rel.key, out, rel.root / "images" / f"{name}.bin")
    return out


def _otadata(flash: bytes) -> int:
    """The slot otadata says boots next (the entry in force: ESP-IDF's rule)."""
    best, best_seq = 0, -1
    for i in (0, 1):
        e = flash[0xD000 + i * 4096 : 0xD000 + i * 4096 + 32]
        seq, state, crc = struct.unpack_from("<I", e)[0], e[24:28], struct.unpack_from("<I", e, 28)[0]
        st = struct.unpack("<I", state)[0]
        if (
            seq != 0xFFFFFFFF
            and zlib.crc32(e[:4], 0xFFFFFFFF) == crc
            and st not in (3, 4)
            and seq >= best_seq
        ):
            best, best_seq = (seq - 1) % 2, seq
    return best


def _version_in(flash: bytes, slot: int) -> str:
    at = SLOTS[slot] + 48
    return flash[at : at + 32].split(b"\0", 1)[0].decode("ascii", "replace")


def _run(rel: Releases, tmp_path: Path, lines: str, runtime: str = "cpython", ota: bool = True, end="18:40"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    flash = tmp_path / "flash.ota"
    if ota:
        _flashed(flash)
    scn = tmp_path / "u.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 {end}\nwifi up 18:00\n"
        f"deployed {rel.root / 'release-1.0.0' / 'files'}\nrelease key {rel.public}\n" + lines
    )
    result = simcmd.run(scn, runtime, ota=flash if ota else None)
    assert all(ok for _, ok, _ in result.checks), result.checks
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    return timeline, (flash.read_bytes() if ota else b"")


def _flashed(flash: Path) -> None:
    """A lamp's flash as `parkctl flash --chip esp32-ota` leaves it: otadata erased,
    the v1.0 image in ota_0 (the bootloader boots it and writes otadata)."""
    data = bytearray(b"\xff" * 0x310000)
    v1 = make_app_image("v1.0", "esp32", size=40000)
    data[0x10000 : 0x10000 + len(v1)] = v1
    flash.write_bytes(bytes(data))


def _centre(timeline, prefix):
    return [x for _, k, x in timeline if k == "centre" and x.startswith(prefix)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_image_release_is_streamed_switched_and_confirmed(rel, tmp_path, runtime):
    img = _image_release(rel, "v2", "2.0.0")
    timeline, flash = _run(
        rel, tmp_path, f'at 18:05 centre offers {img}\nat 18:20 centre sends {{"cmd": "status"}}\n', runtime
    )
    assert _centre(timeline, "reply to update")[0].endswith('ok {"state": "fetching"}')
    assert _centre(timeline, "update_installed from")[0].endswith(
        ": 2.0.0 (0 wrong pieces dropped, 0 files fetched again)"
    )
    assert _centre(timeline, "update_done from"), timeline
    assert not _centre(timeline, "update_rolled_back") and not _centre(timeline, "update_refused")
    notes = [x for _, k, x in timeline if x.startswith("bootloader:")]
    assert notes == ["bootloader: ota_1 boots on trial"], notes
    # Confirmed: otadata names ota_1 for good, and the image there is v2.0.
    assert _otadata(flash) == 1 and _version_in(flash, 1) == "v2.0" and _version_in(flash, 0) == "v1.0"
    # The app's own version is untouched: an image release changes the image only.
    status = json.loads(_centre(timeline, "reply to status")[0].split("ok ", 1)[1])
    assert status["app"] == {"version": "1.0.0", "trial": False}


def test_the_image_release_running_is_not_taken_again_and_an_older_one_is_refused(rel, tmp_path):
    v2, v3 = _image_release(rel, "v2", "2.0.0"), _image_release(rel, "v3", "1.5.0")
    timeline, flash = _run(
        rel,
        tmp_path,
        f"at 18:05 centre offers {v2}\nat 18:10 centre offers {v2}\nat 18:15 centre offers {v3}\n",
    )
    replies = _centre(timeline, "reply to update")
    assert replies[1].endswith('ok {"state": "running"}'), replies
    (refused,) = _centre(timeline, "update_refused from")
    assert refused.split(": ", 1)[1].startswith("version: 1.5.0 is not newer than the running 2.0.0"), refused
    assert _otadata(flash) == 1 and _version_in(flash, 1) == "v2.0"


def _rolled_back(timeline, flash, why):
    (back,) = _centre(timeline, "update_rolled_back from")
    assert back.split(": ", 1)[1] == why, back
    assert not _centre(timeline, "update_done")
    notes = [x for _, k, x in timeline if x.startswith("bootloader:")]
    assert notes == ["bootloader: ota_1 boots on trial", "bootloader: rollback: ota_1 was not marked valid"]
    # The old image boots from now on; the new one is still in its slot, never in force.
    assert _otadata(flash) == 0 and _version_in(flash, 0) == "v1.0" and _version_in(flash, 1) == "v2.0"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_image_that_never_reaches_the_centre_is_given_up_and_the_bootloader_goes_back(
    rel, tmp_path, runtime
):
    img = _image_release(rel, "v2", "2.0.0")
    # The Wi-Fi goes as the new image boots: no contact within its trial.
    timeline, flash = _run(
        rel, tmp_path, f"at 18:05 centre offers {img} trial 60\nwifi down 18:05:01 - 18:20\n", runtime
    )
    _rolled_back(
        timeline,
        flash,
        "the new image (v2.0) was not healthy within 60 s on trial: no contact with the centre",
    )


def test_a_reset_before_the_new_image_is_confirmed_makes_the_bootloader_go_back(rel, tmp_path):
    img = _image_release(rel, "v2", "2.0.0")
    timeline, flash = _run(
        rel,
        tmp_path,
        f"at 18:05 centre offers {img}\nwifi down 18:05:01 - 18:20\npower off 18:06 - 18:07\n",
    )
    _rolled_back(
        timeline,
        flash,
        "the new image (v2.0) was not confirmed before a reset: the bootloader went back to v1.0",
    )


def _with_image(rel: Releases, name: str, image: str) -> Path:
    """A copy of the v2 image release whose firmware.bin is `image`'s (what a
    wrong centre would serve): the manifest as signed."""
    src = _image_release(rel, "v2", "2.0.0")
    out = rel.root / f"release-{name}"
    if not out.exists():
        shutil.copytree(src, out)
        data = (rel.root / "images" / f"{image}.bin").read_bytes()
        assert len(data) == (src / "files" / "firmware.bin").stat().st_size
        (out / "files" / "firmware.bin").write_bytes(data)
    return out


def _too_big(m: dict) -> None:
    m["image"]["size"] = 0x180000 + 4096


@pytest.mark.parametrize(
    ("make", "ota", "code", "detail"),
    [
        (lambda r: _image_release(r, "s3", "2.0.0", "esp32s3"), True, "chip", "built for ['esp32s3']"),
        (
            lambda r: _with_image(r, "served-s3", "s3"),
            True,
            "image",
            "an image for esp32s3; this board is esp32",
        ),
        (lambda r: _with_image(r, "served-v2b", "v2b"), True, "sha256", "announced (3 times)"),
        (lambda r: _with_image(r, "served-v3", "v3"), True, "image", "the image says v3.0, its release v2.0"),
        (
            lambda r: r.edited("image-v2-2.0.0", "too-big", _too_big),
            True,
            "image",
            "an image of 1576960 bytes does not fit the 1572864 bytes of ota_1",
        ),
        (
            lambda r: _image_release(r, "v2", "2.0.0"),
            False,
            "image",
            "no OTA partition table on this board",
        ),
    ],
    ids=[
        "for-the-s3",
        "an-s3-image-served",
        "wrong-sha256",
        "another-version-served",
        "too-big-for-the-slot",
        "no-ota-table",
    ],
)
def test_an_image_the_board_must_not_take_is_refused_with_its_reason(rel, tmp_path, make, ota, code, detail):
    folder = make(rel)
    timeline, flash = _run(
        rel,
        tmp_path,
        f'at 18:05 centre offers {folder}\nat 18:10 centre sends {{"cmd": "status"}}\n',
        ota=ota,
    )
    refused = _centre(timeline, "update_refused from")
    assert len(refused) == 1, timeline
    assert refused[0].split(": ", 1)[1].startswith(code + ": ") and detail in refused[0], refused
    assert not _centre(timeline, "update_installed")
    status = json.loads(_centre(timeline, "reply to status")[0].split("ok ", 1)[1])
    assert status["update"]["refused"] == 1 and status["update"]["last"].startswith("refused: " + code)
    assert not [x for _, k, x in timeline if k == "reset" and x != "power on"]
    if ota:
        assert _otadata(flash) == 0 and _version_in(flash, 0) == "v1.0"


# Flash operations from the offer on (a page program or a sector erase each; on
# this lamp about 230 until the new image is confirmed, 170 of them the image's
# ten blocks): the offer's write before its reply (the command lost), the
# manifest, the image's blocks, the marker and otadata's write by set_boot (the
# offer put back, the image fetched again), update_installed's journaling, the
# bootloader's otadata write and the first boot on trial (rolled back).
CUTS = [1, 12, 40, 95, 160, 178, 190, 200, 206, 212, 215]


def _cut(rel: Releases, tmp_path: Path, op: int, runtime: str) -> str:
    img = _image_release(rel, "v2", "2.0.0")
    timeline, flash = _run(
        rel,
        tmp_path,
        f"at 18:05 centre offers {img}\npower cut at flash op {op} after 18:05 - 18:06\n",
        runtime,
    )
    assert [x for _, k, x in timeline if k == "reset" and x == "power on"][1:], "the cut never came"
    # It boots one of the two images whole (the simulation would stop at a board
    # with none), and the one otadata names is the one its report says:
    done, back = _centre(timeline, "update_done from"), _centre(timeline, "update_rolled_back from")
    if done:
        # The transfer, begun again after the cut from offset 0, ended well.
        assert not back and _otadata(flash) == 1 and _version_in(flash, 1) == "v2.0", timeline
        assert _centre(timeline, "update_installed from"), timeline  # said, if only after the reset
    elif back:
        # The cut came while the new image was on trial: a reset before its
        # confirmation, which the bootloader cannot tell from a crash.
        assert back[0].endswith("was not confirmed before a reset: the bootloader went back to v1.0"), back
        assert _otadata(flash) == 0 and _version_in(flash, 0) == "v1.0"
    else:
        # The cut came before the offer was on flash: the command is lost, as
        # every command then (no reply), and the centre offers it again.
        assert not _centre(timeline, "reply to update") and not _centre(timeline, "update_")
        assert _otadata(flash) == 0 and _version_in(flash, 0) == "v1.0"
    again = any(x.startswith("event update image v2.0 not switched to") for _, k, x in timeline)
    return "again" if again else "done" if done else "back" if back else "lost"


@pytest.mark.parametrize(
    ("runtime", "cuts", "kinds"),
    [
        ("cpython", CUTS, {"lost", "done", "again", "back"}),
        ("micropython", [178, 206, 215], {"again", "done", "back"}),
    ],
)
def test_a_power_cut_in_the_image_transfer_or_the_switch_leaves_a_board_that_boots(
    rel, tmp_path, runtime, cuts, kinds
):
    seen = [_cut(rel, tmp_path / str(op), op, runtime) for op in cuts]
    # The cuts landed in each part: before the offer (lost), in the transfer or
    # after set_boot (done), before set_boot was done (fetched again), on trial.
    assert kinds <= set(seen), dict(zip(cuts, seen, strict=True))


def test_the_kiosk_takes_an_image_for_the_s3_in_its_larger_slot(rel, tmp_path):
    # The ESP32-S3's OTA table (ota_1 at 0x280000); the kiosk's app, its release key.
    kiosk = rel.make("2.0.0", app="kiosk")
    image = rel.root / "images" / "k2.bin"
    image.write_bytes(make_app_image("k2.0", "esp32s3", size=300000))
    out = rel.root / "release-image-k2"
    release.sign_image("kiosk", "esp32s3", "2.0.0", rel.key, out, image)
    flash = tmp_path / "flash.ota"
    data = bytearray(b"\xff" * 0x4F0000)
    k1 = make_app_image("k1.0", "esp32s3", size=40000)
    data[0x10000 : 0x10000 + len(k1)] = k1
    flash.write_bytes(bytes(data))
    scn = tmp_path / "k.scn"
    scn.write_text(
        f"app kiosk\nconfig {SCENARIOS / 'kiosk-g60.json'}\n"
        "start 2026-12-21 07:00\nend 2026-12-21 07:20\nwifi up 07:00\n"
        f"deployed {kiosk / 'files'}\nrelease key {rel.public}\nat 07:05 centre offers {out}\n"
    )
    result = simcmd.run(scn, "cpython", ota=flash)
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    assert _centre(timeline, "update_done from"), timeline
    after = flash.read_bytes()
    at = 0x280000 + 48
    assert after[at : at + 4] == b"k2.0"
    assert [x for _, k, x in timeline if x.startswith("bootloader:")] == ["bootloader: ota_1 boots on trial"]
