"""`parkctl build` and `parkctl flash`: the board's filesystem, its littlefs image (read
back by littlefs-python and by the real MicroPython interpreter), the factory image
and the esptool command lines. No board here: flashing is checked up to esptool."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from parkctl import build, flash
from parkctl.errors import UserError
from parkctl.runtime import micropython_binary
from test_cli_sun import parkctl

from sim import cpython

ROOT = Path(__file__).resolve().parents[1]
LAMP = ROOT / "firmware" / "lamp"
LIB = ROOT / "firmware" / "lib"
CONFIG = LAMP / "config.json"


@pytest.fixture(scope="module")
def esp32(tmp_path_factory) -> build.Build:
    return build.build("lamp", tmp_path_factory.mktemp("esp32"), chip="esp32")


@pytest.fixture(scope="module")
def vboard(tmp_path_factory) -> build.Build:
    return build.build("lamp", tmp_path_factory.mktemp("vboard"), chip="vboard")


def tree(root: Path) -> dict[str, bytes]:
    return {"/" + p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_boot_and_main_stay_source_the_rest_is_mpy(esp32):
    files = tree(esp32.fs_dir)
    assert files["/boot.py"] == (LAMP / "boot.py").read_bytes()
    assert files["/main.py"] == (LAMP / "main.py").read_bytes()
    assert files["/config.json"] == CONFIG.read_bytes()
    app = {p.stem for p in LAMP.glob("*.py")} - {"boot", "main"}
    lib = {p.stem for p in LIB.glob("*.py")}
    assert {p[1:-4] for p in files if p.count("/") == 1 and p.endswith(".mpy")} == app
    assert {p[5:-4] for p in files if p.startswith("/lib/")} == lib
    assert not [p for p in files if p.endswith(".py") and p not in ("/boot.py", "/main.py")]
    for path, data in files.items():
        if path.endswith(".mpy"):
            assert data[:2] == b"M\x06", path
            # The firmware has no native code: portable bytecode, whatever -march said.
            assert build.mpy_arch(data) is None, path


def test_manifest_lists_every_file_with_its_sha256(esp32):
    files = tree(esp32.fs_dir)
    manifest = json.loads(files.pop("/manifest.json"))
    assert manifest == esp32.manifest
    assert set(manifest) == {"app", "chip", "version", "files", "hash"}
    assert (manifest["app"], manifest["chip"]) == ("lamp", "esp32")
    assert manifest["version"] and manifest["version"] != "unknown"  # git describe of this repo
    assert manifest["files"] == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    lines = "".join(f"{manifest['files'][p]}  {p}\n" for p in sorted(files))
    assert manifest["hash"] == hashlib.sha256(lines.encode()).hexdigest()


def test_same_sources_give_the_same_hash_and_the_same_image(esp32, tmp_path):
    again = build.build("lamp", tmp_path, chip="esp32")
    assert again.manifest["hash"] == esp32.manifest["hash"]
    assert again.image.read_bytes() == esp32.image.read_bytes()


def test_image_has_the_vfs_partitions_geometry_and_mounts_back(esp32):
    assert esp32.image.stat().st_size == 0x200000  # the vfs partition of a 4 MiB ESP32
    fs = cpython.LittleFsVfs(esp32.image)  # the simulator's littlefs: 32/32/32, 4 KiB blocks
    try:
        back = {}
        for top, _dirs, names in fs.fs.walk("/"):
            for name in names:
                path = top.rstrip("/") + "/" + name
                with fs.fs.open(path, "rb") as f:
                    back[path] = f.read()
    finally:
        fs.close()
    assert back == tree(esp32.fs_dir)


MOUNT = """\
import binascii, hashlib, json, sys, vfs
from blockdev import FileBlockDevice
vfs.mount(vfs.VfsLfs2(FileBlockDevice(sys.argv[1]), readsize=32, progsize=32, lookahead=32), "/flash")
m = json.load(open("/flash/manifest.json"))
lines = []
for p in sorted(m["files"]):
    with open("/flash" + p, "rb") as f:
        h = binascii.hexlify(hashlib.sha256(f.read()).digest()).decode()
    lines.append(h + "  " + p + "\\n")
    print(json.dumps({"path": p, "ok": h == m["files"][p]}))
whole = binascii.hexlify(hashlib.sha256("".join(lines).encode()).digest()).decode()
print(json.dumps({"hash": whole == m["hash"], "version": m["version"]}))
if len(sys.argv) > 2:
    sys.path.insert(0, "/flash/lib")
    import civil
    print(json.dumps({"module": civil.__file__, "days": civil.days_from_civil(2026, 12, 21)}))
"""


def micropython(script: Path, *args: str) -> list[dict]:
    proc = subprocess.run(
        [micropython_binary(), str(script), *args],
        env={"MICROPYPATH": str(ROOT / "sim")},  # only the block device: no firmware on the path
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("which", ["esp32", "vboard"])
def test_image_mounts_in_micropython_which_checks_the_manifest(which, request, tmp_path):
    b: build.Build = request.getfixturevalue(which)
    script = tmp_path / "mount.py"
    script.write_text(MOUNT)
    image = tmp_path / "flash.img"
    image.write_bytes(b.image.read_bytes())
    *files, whole = micropython(script, str(image))
    assert len(files) == len(b.manifest["files"]) and all(f["ok"] for f in files)
    assert whole == {"hash": True, "version": b.manifest["version"]}


def test_a_module_from_the_vboard_image_runs_in_micropython(vboard, tmp_path):
    import civil

    script = tmp_path / "mount.py"
    script.write_text(MOUNT)
    image = tmp_path / "flash.img"
    image.write_bytes(vboard.image.read_bytes())
    ran = micropython(script, str(image), "import")[-1]
    assert ran == {"module": "/flash/lib/civil.mpy", "days": civil.days_from_civil(2026, 12, 21)}


def app_tree(root: Path, modules: dict[str, str], app: str = "lamp") -> Path:
    """A firmware folder of its own: <app>/ with boot.py, main.py and `modules`, and lib/."""
    (root / app).mkdir(parents=True)
    (root / "lib").mkdir()
    (root / app / "boot.py").write_text("")
    (root / app / "main.py").write_text("import fast\n")
    for name, text in modules.items():
        (root / name).write_text(text)
    return root


NATIVE = "import micropython\n\n\n@micropython.native\ndef f(x):\n    return x + 1\n"


def test_native_code_is_compiled_for_the_chip(tmp_path):
    root = app_tree(tmp_path / "firmware", {"lamp/fast.py": NATIVE})
    b = build.build("lamp", tmp_path / "out", chip="esp32", root=root)
    data = (b.fs_dir / "fast.mpy").read_bytes()
    assert build.mpy_arch(data) == "xtensawin"
    assert b.manifest["version"] == "unknown"  # not in a git repository
    # Which is why the virtual board gets portable bytecode: the unix port refuses it.
    (tmp_path / "fast.mpy").write_bytes(data)
    proc = subprocess.run(
        [micropython_binary(), "-c", "import fast"],
        cwd=tmp_path,
        env={"MICROPYPATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert "incompatible .mpy arch" in proc.stdout
    with pytest.raises(UserError, match=r"fast\.py:4: SyntaxError: invalid arch"):
        build.build("lamp", tmp_path / "out", chip="vboard", root=root)


def test_a_syntax_error_names_file_and_line(tmp_path):
    root = app_tree(tmp_path / "firmware", {"lib/broken.py": "x = 1\ny = (\n"})
    with pytest.raises(UserError, match=r"lib/broken\.py:3: SyntaxError: invalid syntax"):
        build.build("lamp", tmp_path / "out", root=root)


def test_the_kiosk_builds_with_its_font_and_refuses_a_bad_device_configuration(tmp_path):
    b = build.build("kiosk", tmp_path / "out", chip="esp32s3")
    files = b.manifest["files"]
    for name in ("/boot.py", "/main.py", "/board.mpy", "/st7789.mpy", "/font16.bin", "/lib/journal.mpy"):
        assert name in files, name
    assert b.image.stat().st_size == 0x600000  # the vfs partition of an 8 MiB ESP32-S3
    bad = tmp_path / "gate.json"
    bad.write_text(json.dumps({"site": {"tz": "CST-8"}, "checkin": {"threshold": 2}}))
    proc = parkctl("build", "kiosk", "--out", str(tmp_path / "k"), "--device-config", str(bad))
    assert proc.returncode == 2
    assert "checkin.threshold: 2 is outside 0.0..1.0" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bare" / "kiosk").mkdir(parents=True)
    with pytest.raises(UserError, match=r"kiosk has no main\.py: not an app"):
        build.build("kiosk", tmp_path / "out2", root=tmp_path / "bare")


def test_device_config_is_installed_outside_the_apps_manifest(tmp_path):
    mine = json.loads(CONFIG.read_text())
    mine["site"]["name"] = "pole 17"
    path = tmp_path / "pole17.json"
    path.write_text(json.dumps(mine))
    b = build.build("lamp", tmp_path / "out", device_config=path)
    # As the lamp keeps an installed configuration (and its last good copy) ...
    assert (b.fs_dir / "lamp.json").read_bytes() == path.read_bytes()
    assert (b.fs_dir / "lamp.json.good").read_bytes() == path.read_bytes()
    # ... beside the app's own default, which stays; the manifest is the app's only,
    # so a later deploy of a new build keeps the board's configuration.
    assert (b.fs_dir / "config.json").read_bytes() == CONFIG.read_bytes()
    assert "/lamp.json" not in b.manifest["files"]
    assert b.manifest == build.build("lamp", tmp_path / "plain").manifest


def test_a_bad_device_config_is_refused_naming_the_field(tmp_path):
    bad = json.loads(CONFIG.read_text())
    bad["site"]["lat"] = 95
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    proc = parkctl("build", "lamp", "--out", str(tmp_path / "out"), "--device-config", str(path))
    assert proc.returncode == 2
    assert "site.lat: 95 is outside -90..90" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def partition(label: str, kind: int, subtype: int, offset: int, size: int) -> bytes:
    return (
        b"\xaa\x50"
        + bytes([kind, subtype])
        + struct.pack("<II", offset, size)
        + label.encode().ljust(20, b"\0")
    )


# MicroPython's partitions-4MiBplus.csv: the filesystem follows the factory app at 0x200000.
GENERIC = [
    ("nvs", 1, 2, 0x9000, 0x6000),
    ("phy_init", 1, 1, 0xF000, 0x1000),
    ("factory", 0, 0, 0x10000, 0x1F0000),
]


def fake_firmware(chip: build.Chip, table=GENERIC, app_bytes: int = 0x20000) -> bytes:
    """A MicroPython .bin as micropython.org ships it: bootloader, partition table at
    0x8000, app at 0x10000; offsets in the file count from the bootloader's."""
    assert chip.image_chip_id is not None
    head = bytearray(b"\x11" * (0x8000 - chip.bootloader_offset))
    head[:4] = b"\xe9\x03\x02\x20"
    struct.pack_into("<H", head, 12, chip.image_chip_id)
    parts = b"".join(partition(*p) for p in table)
    parts += b"\xff" * (0x10000 - 0x8000 - len(parts))
    return bytes(head) + parts + bytes(range(256)) * (app_bytes // 256)


@pytest.mark.parametrize("chip,bootloader", [("esp32", 0x1000), ("esp32s3", 0x0)])
def test_factory_image_holds_firmware_and_filesystem_at_their_offsets(chip, bootloader, tmp_path):
    fw = fake_firmware(build.CHIPS[chip])
    (tmp_path / "fw.bin").write_bytes(fw)
    proc = parkctl(
        "build",
        "lamp",
        "--chip",
        chip,
        "--out",
        str(tmp_path / "out"),
        "--firmware",
        str(tmp_path / "fw.bin"),
    )
    assert proc.returncode == 0, proc.stderr
    factory = (tmp_path / "out" / "factory.bin").read_bytes()
    image = (tmp_path / "out" / "fs.img").read_bytes()
    assert len(factory) == build.CHIPS[chip].flash_size  # flashed at 0x0, up to the end of flash
    assert factory[:bootloader] == b"\xff" * bootloader
    assert factory[bootloader : bootloader + len(fw)] == fw
    assert set(factory[bootloader + len(fw) : 0x200000]) == {0xFF}
    assert factory[0x200000:] == image
    assert "factory" in proc.stdout and "0x200000" in proc.stdout


def test_firmware_that_does_not_fit_the_chip_or_the_layout_is_refused(tmp_path):
    esp32, s3 = build.CHIPS["esp32"], build.CHIPS["esp32s3"]
    cases = {
        "s3.bin": (fake_firmware(s3), "this firmware is for esp32s3, not esp32"),
        "big.bin": (fake_firmware(esp32, app_bytes=0x200000), "do not fit before the filesystem at 0x200000"),
        "app.bin": (b"\xe9" + bytes(0x2000), "use the whole firmware .bin"),
        "elf.bin": (b"\x7fELF" + bytes(100), "not an ESP firmware image"),
        "ota.bin": (
            fake_firmware(
                esp32, [("ota_0", 0, 0x10, 0x10000, 0x180000), ("ota_1", 0, 0x11, 0x190000, 0x180000)]
            ),
            "puts the filesystem at 0x310000",
        ),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError, match=message):
            build.build("lamp", tmp_path / "out", firmware=tmp_path / name)
    # MicroPython before 1.26 names the partition: the same place is fine.
    old = fake_firmware(esp32, [*GENERIC, ("vfs", 1, 0x81, 0x200000, 0x200000)])
    (tmp_path / "old.bin").write_bytes(old)
    assert build.build("lamp", tmp_path / "out", firmware=tmp_path / "old.bin").factory is not None
    proc = parkctl("build", "lamp", "--chip", "vboard", "--firmware", str(tmp_path / "old.bin"))
    assert proc.returncode == 2 and "--firmware is for a real chip" in proc.stderr


# MicroPython's partitions-4MiB-ota.csv (ESP32_GENERIC's OTA variant): the filesystem follows ota_1.
OTA = [
    ("nvs", 1, 2, 0x9000, 0x4000),
    ("otadata", 1, 0, 0xD000, 0x2000),
    ("phy_init", 1, 1, 0xF000, 0x1000),
    ("ota_0", 0, 0x10, 0x10000, 0x180000),
    ("ota_1", 0, 0x11, 0x190000, 0x180000),
]


def test_the_ota_layout_puts_the_filesystem_after_the_second_slot(tmp_path):
    ota = build.CHIPS["esp32-ota"]
    (tmp_path / "ota.bin").write_bytes(fake_firmware(ota, OTA))
    (tmp_path / "plain.bin").write_bytes(fake_firmware(ota))
    proc = parkctl(
        "build",
        "lamp",
        "--chip",
        "esp32-ota",
        "--out",
        str(tmp_path / "out"),
        "--firmware",
        str(tmp_path / "ota.bin"),
    )
    assert proc.returncode == 0, proc.stderr
    factory = (tmp_path / "out" / "factory.bin").read_bytes()
    image = (tmp_path / "out" / "fs.img").read_bytes()
    assert len(image) == 0xF0000 and factory[0x310000:] == image and len(factory) == 4 * 1024 * 1024
    assert set(factory[0x1000 + len(fake_firmware(ota, OTA)) : 0x310000]) == {0xFF}
    assert "0x310000" in proc.stdout
    # Each layout refuses the other's firmware, and says which chip to build for.
    with pytest.raises(UserError, match=r"at 0x200000 .*partitions-4MiB-ota.csv\): build with --chip esp32$"):
        build.build("lamp", tmp_path / "o2", chip="esp32-ota", firmware=tmp_path / "plain.bin")
    with pytest.raises(
        UserError, match=r"at 0x310000 .*partitions-4MiBplus.csv\): build with --chip esp32-ota$"
    ):
        build.build("lamp", tmp_path / "o3", chip="esp32", firmware=tmp_path / "ota.bin")
    args = flash.flash_args(ota, "/dev/ttyUSB0", tmp_path / "out" / "fs.img", tmp_path / "ota.bin")
    assert args[-4:] == ["0x1000", str(tmp_path / "ota.bin"), "0x310000", str(tmp_path / "out" / "fs.img")]


def test_chip_table_agrees_with_esptool():
    from esptool.targets import CHIP_DEFS

    for chip in build.CHIPS.values():
        if chip.esptool is not None:
            assert chip.bootloader_offset == CHIP_DEFS[chip.esptool].BOOTLOADER_FLASH_OFFSET
            assert chip.image_chip_id == CHIP_DEFS[chip.esptool].IMAGE_CHIP_ID
        assert chip.vfs_offset + chip.vfs_size == chip.flash_size
        assert chip.vfs_size % build.BLOCK_SIZE == 0


def test_esptool_command_lines():
    esp32, s3 = build.CHIPS["esp32"], build.CHIPS["esp32s3"]
    img, fw = Path("fs.img"), Path("fw.bin")
    assert flash.flash_args(esp32, "/dev/ttyUSB0", img, fw) == [
        "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800",
        "--before", "default-reset", "--after", "hard-reset",
        "write-flash", "0x1000", "fw.bin", "0x200000", "fs.img",
    ]  # fmt: skip
    args = flash.flash_args(s3, "/dev/ttyACM0", img, fw, baud=921600, erase=True)
    assert args[args.index("write-flash") :] == [
        "write-flash",
        "--erase-all",
        "0x0",
        "fw.bin",
        "0x200000",
        "fs.img",
    ]
    assert args[args.index("--baud") + 1] == "921600"
    args = flash.flash_args(esp32, "/dev/ttyUSB0", img)  # an update: the filesystem only
    assert args[args.index("write-flash") :] == ["write-flash", "0x200000", "fs.img"]
    assert build.merge_args(s3, fw, img, Path("f.bin")) == [
        "--chip", "esp32s3", "merge-bin", "--output", "f.bin", "0x0", "fw.bin", "0x200000", "fs.img",
    ]  # fmt: skip
    assert build.esptool_command(["version"]) == [sys.executable, "-m", "esptool", "version"]
    with pytest.raises(UserError):
        flash.flash_args(build.CHIPS["vboard"], "/dev/ttyUSB0", img)


def test_flash_without_the_board_plugged_in(tmp_path):
    proc = parkctl("flash", "--port", "/dev/ttyNOSUCH7", "lamp", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "parkctl flash: error: no serial port /dev/ttyNOSUCH7; is the board plugged in?"
    )
    assert not (tmp_path / "out").exists()  # nothing built, esptool never ran
    proc = parkctl("flash", "--port", "/dev/null", "lamp", "--erase", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--erase wipes MicroPython too: give --firmware" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_flash_passes_on_esptools_error(tmp_path):
    not_a_port = tmp_path / "ttyFAKE"
    not_a_port.write_text("")
    proc = parkctl("flash", "--port", str(not_a_port), "lamp", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("parkctl flash: error: esptool failed: ") and f"Could not open {not_a_port}" in last
    )
    assert "Traceback" not in proc.stderr


def test_build_json_summary(tmp_path):
    proc = parkctl("build", "lamp", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["image"] == str(tmp_path / "fs.img") and info["factory"] is None
    assert info["vfs_offset"] == 0x200000 and 0 < info["used_bytes"] < info["vfs_size"]
    by_path = {f["path"]: f for f in info["files"]}
    assert by_path["/main.py"]["kind"] == "source" and by_path["/lib/sun.mpy"]["kind"] == "mpy"
    manifest = json.loads((tmp_path / "fs" / "manifest.json").read_text())
    assert info["hash"] == manifest["hash"] and by_path["/manifest.json"]["sha256"] is None
