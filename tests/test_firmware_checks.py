"""The firmware checks catch what they are there to catch.

`make check-firmware` must fail on firmware that would not run on an ESP32: a
CPython-only import, a module MicroPython lacks, code mpy-cross rejects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def fwcheck(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run the checker on a firmware tree holding one module with `source`,
    configured exactly as the real one (same pyrightconfig.json, same stubs)."""
    fw = tmp_path / "firmware"
    (fw / "lib").mkdir(parents=True)
    shutil.copy(ROOT / "firmware" / "pyrightconfig.json", fw)
    (tmp_path / ".stubs").symlink_to(ROOT / ".stubs")
    (fw / "lib" / "thing.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "parkctl.fwcheck", "--root", str(fw)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_clean_firmware_passes(tmp_path):
    proc = fwcheck(tmp_path, "import time\nimport machine\n\n\ndef f():\n    time.sleep_ms(1)\n")
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("module", ["dataclasses", "datetime", "logging", "functools"])
def test_pyright_rejects_cpython_only_imports(tmp_path, module):
    proc = fwcheck(tmp_path, f"import {module}\n")
    assert proc.returncode == 1
    assert f'Import "{module}" could not be resolved' in proc.stdout


@pytest.mark.parametrize("module", ["enum", "typing", "abc"])
def test_banned_imports_that_the_stubs_would_let_through(tmp_path, module):
    proc = fwcheck(tmp_path, f"from {module} import something\n")
    assert proc.returncode == 1
    assert f"imports {module}, which MicroPython does not have" in proc.stdout


def test_host_packages_are_not_visible_to_firmware(tmp_path):
    # rich is in the venv; the firmware check must not see it.
    proc = fwcheck(tmp_path, "import rich\n")
    assert proc.returncode == 1
    assert 'Import "rich" could not be resolved' in proc.stdout


def test_mpy_cross_rejects_what_micropython_cannot_compile(tmp_path):
    # Valid CPython 3.10+, a syntax error for MicroPython.
    proc = fwcheck(tmp_path, "def f(x):\n    match x:\n        case 1:\n            return 2\n")
    assert proc.returncode == 1
    assert "FAIL mpy-cross" in proc.stdout
    assert "SyntaxError" in proc.stdout


def test_micropython_stub_types_are_enforced(tmp_path):
    proc = fwcheck(tmp_path, "import time\ntime.sleep_ms('soon')\n")
    assert proc.returncode == 1
    assert "pyright" in proc.stdout


def test_a_console_whose_names_outgrow_the_boots_table_is_caught(tmp_path):
    # The lamp as it is, and with 400 more names in its console's commands: the
    # boot's pools cannot take those, so the first console line would need one
    # 9 KB block, late in the board's life.
    from parkctl.fwcheck import check_name_table, name_table

    fw = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware" / "lib", fw / "lib")
    shutil.copytree(ROOT / "firmware" / "lamp", fw / "lamp")
    boot, after = name_table("lamp", fw)
    assert boot.pools == after.pools and 0 < after.names - boot.names <= boot.room
    assert check_name_table(fw) == []

    with (fw / "lamp" / "diag.py").open("a") as f:
        f.write("\n\nclass _Many:\n    " + " = ".join(f"name{i}" for i in range(400)) + " = 0\n")
    [error] = check_name_table(fw)
    assert error.startswith(f"lamp: the boot leaves {boot.names} names in {boot.pools} pools")
    assert f"a pool of {20 * 2**boot.pools} names" in error
