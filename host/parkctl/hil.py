"""The hardware-in-the-loop harness: a pytest plugin (docs/hil.md).

The same tests (tests/hil/) run against the virtual board (`--board vboard:lamp`,
the default: a fresh board flashed with a fresh build) or a real ESP32
(`--board /dev/ttyUSB0`: the app is deployed to it first). Tests only speak to
three fixtures:

- `board`: the serial connection: `expect(pattern, timeout)` on what the board
  prints (as pytest-embedded's `dut.expect`), `console(command)` for the
  diagnostics console, `deploy()`, `reboot()`;
- `rig`: stimulate and measure (`press`, `chatter`, `level`, `led`,
  `power_cut`), through the wiring the rig file declares; a test needing wiring
  the rig lacks is skipped with the reason;
- `broker`: Mosquitto on a free loopback port, the board configured to use it.

Every test's serial output is saved to its own file (`--hil-logs`, default
build/hil/), and its tail is shown when the test fails.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from .diag import console_reply
from .runtime import ROOT

LOG_TAIL_LINES = 40
MQTT_USER = "hil"
MQTT_PASSWORD = "hil-password"  # Mosquitto here takes any: the lamp needs some (no anonymous)
# A virtual board has every wire a rig file can declare: its world is the rig.
VIRTUAL_WIRING = ("button", "level", "led", "power")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("hil", "hardware in the loop (docs/hil.md)")
    g.addoption(
        "--board",
        default="vboard:lamp",
        help="vboard:APP (a virtual board, the default vboard:lamp) or a serial port of a real board",
    )
    g.addoption("--rig", default=None, help="the rig file (TOML) of a real board: what is wired to what")
    g.addoption("--hil-logs", default=str(ROOT / "build" / "hil"), help="folder for each test's serial log")


class Board:
    """The board under test, at its serial port: reads everything it prints in a
    thread, into the test's log file, and answers `expect` from it."""

    def __init__(self, port: str, log: Path) -> None:
        self.port = port
        self.log_path = log
        self._log = open(log, "ab")
        self._seen = bytearray()
        self._pos = 0
        self._cond = threading.Condition()
        self._s: serial.Serial | None = None
        self._reader: threading.Thread | None = None
        self._open()

    def _open(self) -> None:
        s = serial.Serial()
        s.port = self.port
        s.baudrate = 115200
        s.timeout = 0.05
        s.dtr = False  # an ESP32 DevKit's EN and GPIO0: no reset by opening
        s.rts = False
        s.open()
        self._s = s
        self._reader = threading.Thread(target=self._read, args=(s,), daemon=True)
        self._reader.start()

    def _read(self, s: serial.Serial) -> None:
        while s.is_open:
            try:
                data = s.read(4096)
            except (serial.SerialException, OSError, TypeError):
                return
            if data:
                self._log.write(data)
                self._log.flush()
                with self._cond:
                    self._seen += data
                    self._cond.notify_all()

    def close(self) -> None:
        if self._s is not None:
            self._s.close()
        if self._reader is not None:
            self._reader.join(2)
        self._s = None

    def write(self, data: bytes) -> None:
        assert self._s is not None, "the port is closed"
        self._s.write(data)
        self._s.flush()

    def expect(self, pattern: bytes | str, timeout: float = 10.0) -> re.Match[bytes]:
        """The first match of `pattern` in what the board printed since the last
        match; fails after `timeout` seconds, showing what it printed instead."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._seen, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = bytes(self._seen[self._pos :][-500:])
                    raise AssertionError(
                        f"{rx.pattern!r} not seen in {timeout:g} s; the board printed {tail!r}"
                    )
                self._cond.wait(min(left, 0.2))

    def skip_past(self) -> None:
        """Forget what was printed so far: the next expect looks at what comes next."""
        with self._cond:
            self._pos = len(self._seen)

    def console(self, command: str, timeout: float = 15.0) -> dict[str, Any]:
        """One diagnostics command and the firmware's JSON reply ({"ok", "data"|"error"})."""
        self.skip_past()
        self.write(b"\r\n" + command.encode() + b"\r\n")
        name = command.split()[0]
        deadline = time.monotonic() + timeout
        while True:
            # Replies to earlier lines (garbage a test sent) may come first: ours names it.
            m = self.expect(rb'\{[^\r\n]*"console"[^\r\n]*\}\r?\n', max(0.1, deadline - time.monotonic()))
            reply = console_reply(m.group())
            if reply is not None and reply["console"] == name:
                return reply

    def status(self) -> dict[str, Any]:
        reply = self.console("status")
        assert reply["ok"], reply
        return reply["data"]

    def deploy(self, app: str = "lamp", root: Path | None = None) -> Any:
        """parkctl deploy (the port is handed to it meanwhile)."""
        from .deploy import deploy

        self.close()
        try:
            return deploy(self.port, app, root=root)
        finally:
            self._open()


class Rig:
    """Stimulate and measure through the wiring; a test asks for what it needs."""

    def __init__(self, wiring: dict[str, Any], what: str) -> None:
        self.wiring = wiring
        self.what = what

    def needs(self, *wires: str) -> None:
        missing = [w for w in wires if w not in self.wiring]
        if missing:
            pytest.skip(f"{self.what} has no wiring for {', '.join(missing)}")

    def press(self, ms: int = 300) -> None:
        raise NotImplementedError

    def chatter(self, ms: int) -> None:
        raise NotImplementedError

    def level(self) -> float:
        raise NotImplementedError

    def led(self) -> bool:
        raise NotImplementedError

    def power_cut(self) -> None:
        raise NotImplementedError

    def wait_for(self, what: str, check: Any, timeout: float = 10.0) -> None:
        """Until check() is true, polling the rig's measurement (real time)."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s")
            threading.Event().wait(0.05)


class VirtualRig(Rig):
    """The virtual board's world, acted on and read directly."""

    def __init__(self, vb: Any) -> None:
        super().__init__({w: True for w in VIRTUAL_WIRING}, "the virtual board")
        self.vb = vb

    def press(self, ms: int = 300) -> None:
        self.vb.stimulate({"do": "press", "ms": ms})

    def chatter(self, ms: int) -> None:
        self.vb.stimulate({"do": "noise", "ms": ms})

    def level(self) -> float:
        return float(self.vb.world["level"])

    def led(self) -> bool:
        return bool(self.vb.world["led"])

    def power_cut(self) -> None:
        self.vb.power_cycle()


class WiredRig(Rig):
    """A real board: the rig's pins are the board's own, jumpered as the rig file
    says, driven in the firmware's test mode (console `test ...` commands)."""

    def __init__(self, board: Board, wiring: dict[str, Any], path: str) -> None:
        super().__init__(wiring, f"rig {path}")
        self.board = board

    def _test(self, command: str) -> Any:
        reply = self.board.console("test " + command)
        assert reply["ok"], reply
        return reply.get("data")

    def press(self, ms: int = 300) -> None:
        self._test(f"pulse {self.wiring['button']['out']} {ms}")

    def chatter(self, ms: int) -> None:
        self._test(f"pulse {self.wiring['button']['out']} {ms}")

    def level(self) -> float:
        w = self.wiring["level"]
        counts = self._test(f"adc {w['adc']}")
        return 100.0 * counts / float(w.get("full_scale", 65535))

    def led(self) -> bool:
        return bool(self._test(f"pin {self.wiring['led']['in']}"))

    def power_cut(self) -> None:
        self._test(f"pin {self.wiring['power']['out']} 1")


def _sanitize(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-120:]


@pytest.fixture
def broker() -> Iterator[Any]:
    from .brokers import Mosquitto

    b = Mosquitto().start()
    try:
        yield b
    finally:
        b.close()


def _device_config(app: str, broker_url: str) -> dict[str, Any]:
    with open(ROOT / "firmware" / app / "config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["device"] = "hil-" + app
    cfg["site"] = dict(cfg["site"], id="hil")
    cfg["network"] = {
        "ssid": "hil-bench",
        "key": "hil-wifi",
        "broker": broker_url,
        "user": MQTT_USER,
        "password": MQTT_PASSWORD,
        "keepalive": 10,
    }
    return cfg


@pytest.fixture
def hil_target(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--board"))


@pytest.fixture
def board(request: pytest.FixtureRequest, broker: Any, hil_target: str) -> Iterator[Board]:
    logs = Path(str(request.config.getoption("--hil-logs")))
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / (_sanitize(request.node.nodeid) + ".log")
    log.unlink(missing_ok=True)
    request.node.hil_log = log
    if hil_target.startswith("vboard:"):
        from .build import build, device_files, make_image, read_image
        from .vboard import VirtualBoard

        app = hil_target.split(":", 1)[1]
        with tempfile.TemporaryDirectory() as tmp:
            b = build(app, Path(tmp) / "build", chip="vboard")
            # As `parkctl provision` leaves a board: the app, and its own installed
            # configuration (/lamp.json, outside the app's manifest).
            files = read_image(b.image.read_bytes(), b.chip)
            files.update(device_files(app, json.dumps(_device_config(app, broker.url)).encode()))
            flash = Path(tmp) / "flash.img"
            flash.write_bytes(make_image(files, b.chip)[0])
            with VirtualBoard(app, flash) as vb:
                board = Board(vb.port, log)
                board.vboard = vb  # type: ignore[attr-defined]
                board.manifest = b.manifest  # type: ignore[attr-defined]
                try:
                    yield board
                finally:
                    board.close()
    else:
        from .build import device_files
        from .deploy import deploy

        text = json.dumps(_device_config("lamp", broker.url.replace("127.0.0.1", _host_ip()))).encode()
        done = deploy(hil_target, "lamp", extra=device_files("lamp", text))
        board = Board(hil_target, log)
        board.manifest = {"version": done.version, "hash": done.hash}  # type: ignore[attr-defined]
        try:
            yield board
        finally:
            board.close()


def _host_ip() -> str:
    """This machine's address as a board on the bench network reaches it."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: it picks the route's source address
        return s.getsockname()[0]


@pytest.fixture
def rig(request: pytest.FixtureRequest, board: Board) -> Rig:
    vb = getattr(board, "vboard", None)
    if vb is not None:
        return VirtualRig(vb)
    path = request.config.getoption("--rig")
    if not path:
        return WiredRig(board, {}, "(no rig file: --rig)")
    try:
        with open(path, "rb") as f:
            wiring = tomllib.load(f).get("wiring", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise pytest.UsageError(f"rig file {path}: {e}") from None
    return WiredRig(board, wiring, path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    log = getattr(item, "hil_log", None)
    if log is not None and report.failed and Path(log).exists():
        text = Path(log).read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
        report.sections.append((f"serial log (last {LOG_TAIL_LINES} lines of {log})", tail))
