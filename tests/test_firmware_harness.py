"""The three-runtime harness for firmware tests reports what it should.

A firmware test that fails only inside MicroPython must fail its [micropython]
item, pass the others, and show MicroPython's own traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = """
import sys

def test_everywhere():
    assert 1 + 1 == 2

def test_only_cpython_math():
    if sys.implementation.name == "micropython":
        raise RuntimeError("boom inside micropython")

def test_float32_rounding_is_visible():
    import sun
    # 0.1 + 0.2 in float32 differs from float64; the firmware build sees it.
    sd, cd, eqt = sun.position(0, 0.0)
    assert isinstance(eqt, float)

def test_heap_is_limited():
    if sys.implementation.name == "micropython":
        blob = bytearray(200 * 1024)  # more than the 100k heap
        assert blob
"""


def _harness(tmp_path, sample, env=None):
    """Runs the harness on one sample module of firmware tests; pytest's output."""
    tests = tmp_path / "tests"
    fw = tests / "firmware"
    fw.mkdir(parents=True)
    for name in ("conftest.py", "fwtest.py", "_mprun.py"):
        shutil.copy(ROOT / "tests" / "firmware" / name, fw / name)
    for name in ("float32.py",):
        shutil.copy(ROOT / "tests" / name, tests / name)
    (tmp_path / "firmware").symlink_to(ROOT / "firmware")
    (fw / "test_sample.py").write_text(sample)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-o",
            "pythonpath=tests firmware/lib",
            "--rootdir",
            str(tmp_path),
            str(fw),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=env,
    )
    print(proc.stdout)
    return proc


def test_one_test_three_items_and_micropython_tracebacks(tmp_path):
    proc = _harness(tmp_path, SAMPLE)
    out = proc.stdout
    assert proc.returncode == 1, out
    for name in ("test_everywhere", "test_float32_rounding_is_visible"):
        for runtime in ("cpython", "float32", "micropython"):
            assert f"test_sample.py::{name}[{runtime}] PASSED" in out
    assert "test_sample.py::test_only_cpython_math[cpython] PASSED" in out
    assert "test_sample.py::test_only_cpython_math[float32] PASSED" in out
    assert "test_sample.py::test_only_cpython_math[micropython] FAILED" in out
    assert "test_sample.py::test_heap_is_limited[micropython] FAILED" in out
    # MicroPython's own traceback, with its file and line.
    assert "MicroPython (100k heap) traceback:" in out
    assert "RuntimeError: boom inside micropython" in out
    assert 'test_sample.py", line 9, in test_only_cpython_math' in out
    assert "MemoryError" in out
    assert "2 failed, 10 passed" in out


TEMPDIRS = """
import os
from fwtest import tempdir, write

def test_a_folder_of_its_own():
    d = tempdir()
    assert d.startswith(os.getenv("TMPDIR") + "/"), d
    write(d + "/data", "x" * 100)
    os.mkdir(d + "/sub")
    write(d + "/sub/more", "y")
"""


def test_the_firmware_tests_folders_are_gone_after_the_run(tmp_path):
    """fwtest.tempdir() on each runtime: under the run's temporary directory
    ($TMPDIR), and nothing of it left once pytest ends."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = _harness(tmp_path / "run", TEMPDIRS, env=dict(os.environ, TMPDIR=str(scratch)))
    assert proc.returncode == 0, proc.stdout
    assert "3 passed" in proc.stdout
    assert list(scratch.iterdir()) == []
