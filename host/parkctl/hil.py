"""The hardware-in-the-loop harness: a pytest plugin (docs/hil.md).

The same tests (tests/hil/) run against the virtual board (`--board vboard`,
the default: for each test a fresh virtual board of the test's app, flashed
with the session's build of it; `vboard:lamp` or `vboard:kiosk`: that app's
tests only) or a real ESP32 (`--board /dev/ttyUSB0 --hil-app lamp`: the app is
deployed to it first).
A test module is for the lamp unless it overrides the `hil_app` fixture. Tests
only speak to three fixtures:

- `board`: the serial connection: `expect(pattern, timeout)` on what the board
  prints (as pytest-embedded's `dut.expect`), `console(command)` for the
  diagnostics console, `deploy()`, `reboot()`;
- `rig`: stimulate and measure (the lamp's `press`, `chatter`, `level`, `led`,
  `power_cut`; the kiosk's `face`, `face_line`, `frames`, `beeps`), through the
  wiring the rig file declares; a test needing wiring the rig lacks is skipped
  with the reason;
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

from .build import APPS
from .diag import console_reply
from .runtime import ROOT

LOG_TAIL_LINES = 40
MQTT_USER = "hil"
MQTT_PASSWORD = "hil-password"  # Mosquitto here takes any: the lamp needs some (no anonymous)
WRITE_TIMEOUT_S = 10.0
# The bench's master command key (never a park's): each board gets the key derived
# from it for its device id, as provisioning gives one, and the tests' centre signs
# with it (centre_login()).
HIL_COMMAND_KEY = bytes.fromhex("4b1c" * 16)


def centre_login() -> Any:
    """The centre's tools' login on the bench: the test broker takes anyone; the
    commands are signed with the bench's key."""
    from .centrecmd import Login

    return Login(command_key=HIL_COMMAND_KEY)


def _key_file(device: str) -> dict[str, bytes]:
    from sim.cmdsign import KEY_FILE, derive_key

    return {KEY_FILE: derive_key(HIL_COMMAND_KEY, device).hex().encode()}


# A virtual board has every wire a rig file can declare: its world is the rig.
VIRTUAL_WIRING = ("button", "level", "led", "power", "face", "display", "buzzer")
# What a bench cannot read of a real kiosk (its face module's line it can drive:
# [wiring.face], a USB-serial adapter in the module's place).
KIOSK_UNREADABLE = ("display", "buzzer")
KIOSK_UNWIRED = (
    "a real kiosk's panel and buzzer cannot be read from the bench: nothing on the rig "
    "watches the SPI bus or the buzzer's pin; run these on --board vboard:kiosk"
)


def face_frame(person: str | None, score: float, live: bool, crc: bool, damaged: bool = False) -> bytes:
    """One line as the face module sends it (docs/face-module.md): CRC-16/CCITT-FALSE,
    computed here by binascii, not by the firmware's own code."""
    import binascii

    msg: dict[str, Any] = {"type": "face", "score": score, "live": 1 if live else 0}
    if person is not None:
        msg["id"] = person
    body = json.dumps(msg).encode()
    if crc or damaged:
        body += b"*%04X" % (binascii.crc_hqx(body, 0xFFFF) ^ (0x5A5A if damaged else 0))
    return body + b"\r\n"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("hil", "hardware in the loop (docs/hil.md)")
    g.addoption(
        "--board",
        default="vboard",
        help="vboard (the default: a virtual board of each test's app), vboard:APP (that app's "
        "tests only) or a serial port of a real board",
    )
    g.addoption(
        "--hil-app",
        default="lamp",
        choices=APPS,
        help="the app to deploy to the real board at --board (its tests only; default lamp)",
    )
    g.addoption("--rig", default=None, help="the rig file (TOML) of a real board: what is wired to what")
    g.addoption("--hil-logs", default=str(ROOT / "build" / "hil"), help="folder for each test's serial log")


def board_problem(target: str, rig: str | None = None) -> str | None:
    """What is wrong with `--board` (and `--rig`) before any test starts, in one line:
    a real board's port that is not there would otherwise fail every test's set-up."""
    if target == "vboard":
        return None
    if target.startswith("vboard:"):
        app = target.split(":", 1)[1]
        if app not in APPS:
            return f"--board {target}: no such app; choose vboard:{' or vboard:'.join(APPS)}"
        return None
    from .diag import serial_port_problem

    problem = serial_port_problem(target) if "://" not in target else None
    if problem:
        return f"--board {target}: {problem} (--board vboard: the virtual board)"
    if rig is not None:
        try:
            with open(rig, "rb") as f:
                tomllib.load(f)
        except OSError as e:
            return f"--rig {rig}: cannot read it ({e.strerror or e})"
        except tomllib.TOMLDecodeError as e:
            return f"--rig {rig}: not a TOML file ({e})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    target = config.getoption("--board", None)
    if target is not None:
        problem = board_problem(str(target), config.getoption("--rig", None))
        if problem:
            raise pytest.UsageError(problem)


class Board:
    """The board under test, at its serial port: reads everything it prints in a
    thread, into the test's log file, and answers `expect` from it."""

    def __init__(self, port: str, log: Path, app: str = "lamp") -> None:
        self.port = port
        self.app = app
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
        s.write_timeout = WRITE_TIMEOUT_S  # a board that stops reading: an error, not a hang
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

    def deploy(self, app: str | None = None, root: Path | None = None) -> Any:
        """parkctl deploy of `app` (the board's own by default); the port is handed
        to it meanwhile."""
        from .deploy import deploy

        self.close()
        try:
            return deploy(self.port, app or self.app, root=root)
        finally:
            self._open()

    def deploy_edited(self, module: str, folder: Path) -> Any:
        """parkctl deploy of a copy of this repository's firmware, made in `folder`,
        in which `module` (a file of the board's app) has gained a line: a firmware
        engineer's edit and deploy."""
        import shutil

        from .build import FIRMWARE

        fw = folder / "firmware"
        shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
        with open(fw / self.app / module, "a") as f:
            f.write("\nHIL_ROUND_TRIP = 1\n")
        return self.deploy(root=fw)


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

    def face(self, person: str | None, score: float = 0.95, live: bool = True) -> None:
        """Someone in front of the kiosk's face module: `person` recognised (an id),
        or None for a face it does not know; live=False: a photo held up."""
        raise NotImplementedError

    def face_line(self, what: str, person: str = "0000") -> None:
        """A damaged frame on the face module's line: "garbage" (not a frame at
        all) or "badcrc" (the module saw `person`; the frame's checksum is wrong)."""
        raise NotImplementedError

    def frames(self) -> int:
        """Frames the kiosk's display has received since the rig started counting."""
        raise NotImplementedError

    def beeps(self) -> int:
        """Beeps of the kiosk's buzzer since the rig started counting."""
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

    def face(self, person: str | None, score: float = 0.95, live: bool = True) -> None:
        ev: dict[str, Any] = {"do": "face", "score": score, "live": 1 if live else 0}
        if person is None:
            ev["what"] = "unknown"
        else:
            ev.update(what="person", id=person)
        self.vb.stimulate(ev)

    def face_line(self, what: str, person: str = "0000") -> None:
        if what not in ("garbage", "badcrc"):
            raise ValueError(f"face_line: {what!r} is neither garbage nor badcrc")
        self.vb.stimulate({"do": "face", "what": what, "id": person, "score": 0.95, "live": 1})

    def frames(self) -> int:
        return int(self.vb.world["frames"])

    def beeps(self) -> int:
        return int(self.vb.world["beeps"])


class WiredRig(Rig):
    """A real board: the rig's pins are the board's own, jumpered as the rig file
    says, driven in the firmware's test mode (console `test ...` commands)."""

    def __init__(self, board: Board, wiring: dict[str, Any], path: str) -> None:
        super().__init__(wiring, f"rig {path}")
        self.board = board

    def needs(self, *wires: str) -> None:
        if any(w in KIOSK_UNREADABLE for w in wires):
            pytest.skip(KIOSK_UNWIRED)
        super().needs(*wires)

    def _face_write(self, line: bytes) -> None:
        """A line on the kiosk's face UART, through the adapter wired in the module's place."""
        w = self.wiring["face"]
        with serial.Serial(w["port"], int(w.get("baud", 115200)), timeout=1) as port:
            port.write(line)
            port.flush()

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

    def face(self, person: str | None, score: float = 0.95, live: bool = True) -> None:
        self.needs("face")
        self._face_write(face_frame(person, score, live, bool(self.wiring["face"].get("crc", False))))

    def face_line(self, what: str, person: str = "0000") -> None:
        self.needs("face")
        if what == "garbage":
            self._face_write(b"\x00\xffnot a frame {]\r\n")
        elif what == "badcrc":
            self._face_write(face_frame(person, 0.95, True, True, damaged=True))
        else:
            raise ValueError(f"face_line: {what!r} is neither garbage nor badcrc")

    def frames(self) -> int:
        self.needs("display")
        return 0

    def beeps(self) -> int:
        self.needs("buzzer")
        return 0


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
    """The app's shipped configuration with the test broker and the bench's names
    (device hil-APP at site hil): as `parkctl provision` would install it."""
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
def hil_app() -> str:
    """The app a test is for: the lamp, unless the test's module overrides this fixture."""
    return "lamp"


@pytest.fixture
def hil_target(request: pytest.FixtureRequest, hil_app: str) -> str:
    """vboard:APP or the real board's port; a test for another app than the board's is skipped."""
    target = str(request.config.getoption("--board"))
    if target == "vboard":
        return f"vboard:{hil_app}"
    if target.startswith("vboard:"):
        app = target.split(":", 1)[1]
        if app not in APPS:
            raise pytest.UsageError(
                f"--board {target}: no such app; choose vboard:{' or vboard:'.join(APPS)}"
            )
    else:
        app = str(request.config.getoption("--hil-app"))
    if app != hil_app:
        pytest.skip(f"a test for the {hil_app}; the board under test (--board {target}) is a {app}")
    return target


class _Builds:
    """One build per app for a session's virtual boards: each test still gets a
    flash of its own, written from it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._done: dict[str, Any] = {}

    def get(self, app: str) -> Any:
        from .build import build

        if app not in self._done:
            self._done[app] = build(app, self.folder / app, chip="vboard")
        return self._done[app]


@pytest.fixture(scope="session")
def _hil_builds(tmp_path_factory: pytest.TempPathFactory) -> _Builds:
    return _Builds(tmp_path_factory.mktemp("hil-build"))


@pytest.fixture
def board(
    request: pytest.FixtureRequest, hil_target: str, hil_app: str, broker: Any, _hil_builds: _Builds
) -> Iterator[Board]:
    # hil_target first: a test for another app is skipped before a broker starts.
    logs = Path(str(request.config.getoption("--hil-logs")))
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / (_sanitize(request.node.nodeid) + ".log")
    log.unlink(missing_ok=True)
    request.node.hil_log = log
    if hil_target.startswith("vboard:"):
        from .build import device_files, make_image, read_image
        from .vboard import VirtualBoard

        app = hil_target.split(":", 1)[1]
        with tempfile.TemporaryDirectory() as tmp:
            b = _hil_builds.get(app)
            # As `parkctl provision` leaves a board: the app, and its own installed
            # configuration (/lamp.json, outside the app's manifest).
            files = read_image(b.image.read_bytes(), b.chip)
            files.update(device_files(app, json.dumps(_device_config(app, broker.url)).encode()))
            files.update(_key_file("hil-" + app))
            flash = Path(tmp) / "flash.img"
            flash.write_bytes(make_image(files, b.chip)[0])
            vb = VirtualBoard(app, flash)
            # The port is opened before the power comes: opening it empties what
            # waits in it (pyserial), and on a loaded machine the board had printed
            # its boot, which the tests wait for, before the port was opened.
            board = Board(vb.port, log, app)
            board.vboard = vb  # type: ignore[attr-defined]
            board.manifest = b.manifest  # type: ignore[attr-defined]
            try:
                with vb:
                    yield board
            finally:
                board.close()
    else:
        from .build import device_files
        from .deploy import deploy

        text = json.dumps(_device_config(hil_app, broker.url.replace("127.0.0.1", _host_ip()))).encode()
        extra = dict(device_files(hil_app, text), **_key_file("hil-" + hil_app))
        done = deploy(hil_target, hil_app, extra=extra)
        board = Board(hil_target, log, hil_app)
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
