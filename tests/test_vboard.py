"""The virtual board at its serial port: mpremote unmodified, the REPL's control
keys, resets, the watchdog, and the flash image it keeps."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import littlefs
import pytest
from parkctl.vboard import VirtualBoard
from serialline import Line

from sim.cpython import BLOCK_SIZE, LFS_IO

ROOT = Path(__file__).resolve().parents[1]
MPREMOTE = str(Path(sys.executable).parent / "mpremote")
# What the lamp prints once its loop runs (and the schedule has set a level).
RUNNING = rb"event level \d+"


def lamp_image(path: Path) -> Path:
    """The lamp app as `parkctl build lamp --chip vboard` makes it."""
    from parkctl.build import build

    b = build("lamp", path.parent / "build", chip="vboard")
    path.write_bytes(b.image.read_bytes())
    return path


def _fs(image: Path) -> littlefs.LittleFS:
    data = image.read_bytes()
    fs = littlefs.LittleFS(
        block_size=BLOCK_SIZE,
        block_count=len(data) // BLOCK_SIZE,
        read_size=LFS_IO,
        prog_size=LFS_IO,
        lookahead_size=LFS_IO,
        mount=False,
    )
    fs.context.buffer[:] = data
    fs.mount()
    return fs


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return lamp_image(tmp_path / "flash.img")


@pytest.fixture
def powered(image: Path) -> Iterator[tuple[VirtualBoard, Line]]:
    """A board and a line to its port, opened before the power comes: opening a
    port empties what waits in it (pyserial), and on a loaded machine the board
    had printed its boot (the lines a test waits for) before a line opened after
    it did."""
    b = VirtualBoard("lamp", image)
    ln = Line(b.port)
    try:
        b.start()
        yield b, ln
    finally:
        ln.close()
        b.stop()


@pytest.fixture
def board(powered: tuple[VirtualBoard, Line]) -> VirtualBoard:
    return powered[0]


@pytest.fixture
def line(powered: tuple[VirtualBoard, Line]) -> Line:
    return powered[1]


def mpremote(port: str, *args: str) -> str:
    r = subprocess.run(
        [MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, f"mpremote {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def test_mpremote_works_unmodified_and_what_it_writes_stays_on_the_flash(
    board: VirtualBoard, image: Path, tmp_path: Path
) -> None:
    listing = mpremote(board.port, "fs", "ls")
    for name in ("boot.py", "main.py", "config.json", "lib/"):
        assert name in listing
    src = tmp_path / "note.txt"
    src.write_text("written by mpremote\n")
    out = mpremote(
        board.port,
        "fs",
        "cp",
        str(src),
        ":note.txt",
        "+",
        "exec",
        "import os; print('button.mpy' in os.listdir('/lib'))",
        "+",
        "fs",
        "cat",
        "note.txt",
    )
    assert "written by mpremote" in out
    assert "True" in out  # exec ran on the board, over its own flash
    script = tmp_path / "hello.py"
    script.write_text("import machine\nprint('hello from', machine.unique_id().hex())\n")
    assert "hello from 240ac4000001" in mpremote(board.port, "run", str(script))
    mpremote(board.port, "soft-reset")
    board.stop()
    # The image file holds what the board wrote: littlefs-python reads it back ...
    fs = _fs(image)  # kept: its files must not outlive it (littlefs-python)
    with fs.open("note.txt", "r") as f:
        assert f.read() == "written by mpremote\n"
    # ... and so does the next board started on it.
    with VirtualBoard("lamp", image) as again:
        assert "written by mpremote" in mpremote(again.port, "fs", "cat", "note.txt")


def test_the_interpreter_comes_from_a_process_without_the_clients_ports(board: VirtualBoard) -> None:
    """A child forked from the process where a client has the port open holds a
    copy of the client's locked descriptor until it execs: a client (a test,
    `make bench`) that closed the port as the board soft-reset, and opened it
    again, found it busy. The interpreters are forked by a process that has
    neither the port nor a pseudo-terminal's master open."""
    import os

    from parkctl.diag import Port

    with Port(board.port) as p:
        assert p.ask("status", timeout=60)["ok"]
        pid = board.interpreter_pid
    assert pid is not None
    with open(f"/proc/{pid}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
    assert parent != os.getpid()
    held = [os.readlink(f"/proc/{parent}/fd/{fd}") for fd in os.listdir(f"/proc/{parent}/fd")]
    assert board.port not in held and "/dev/ptmx" not in held, held


def test_ctrl_c_interrupts_main_into_the_repl_and_ctrl_d_runs_it_again(line: Line) -> None:
    line.expect(RUNNING)
    line.write(b"\x03")
    line.expect(rb"KeyboardInterrupt")
    line.expect(rb"MicroPython .*; park vboard \(virtual ESP32\) with ESP32\r\n")
    line.expect(rb">>> $")
    line.write(b"print(6 * 7)\r")
    line.expect(rb"\r\n42\r\n>>> ")
    line.write(b"\x04")
    line.expect(rb"MPY: soft reboot\r\n")
    line.expect(RUNNING)
    assert b"\r\r\n" not in line.seen


def test_a_line_typed_during_a_slow_soft_reset_reaches_the_next_firmware(line: Line) -> None:
    """What a client sends after the Ctrl-D that soft-resets the board waits for
    the next firmware, however long the old interpreter takes to end (under
    load it took seconds): given to the old one, it was lost, and the console's
    answer never came."""
    line.expect(RUNNING)
    line.write(b"\x03")
    line.expect(rb">>> $")
    # As an interpreter starved of CPU: three seconds of work as it ends.
    line.write(b'import sys, time; exec("def slow():\\n t = time.ticks_ms()\\n while time.ticks_diff(')
    line.write(b'time.ticks_ms(), t) < 3000: pass"); sys.atexit(slow)\r')
    line.expect(rb">>> $")
    line.write(b"\x04")
    line.write(b"\r\nstatus\r\n")  # as `parkctl diag status` sends it, at once
    line.expect(rb"MPY: soft reboot\r\n")
    reply = line.expect(rb'\{"ok": true, "console": "status".*\}\r\n', timeout=30)
    assert json.loads(reply.group())["data"]["boot"] == 2


def test_a_client_that_asks_for_the_raw_repl_again_gets_one_answer(line: Line) -> None:
    """mpremote asks again (Ctrl-C, Ctrl-A) when a try got no answer in time, as
    on a loaded machine; the board, still on its way to the prompt, answers the
    last request only: a second raw REPL banner was taken by mpremote as the
    answer to its next command ("unexpected read during raw paste")."""
    line.expect(RUNNING)
    line.write(b"\r\x03\r\x01" + b"\r\x03\r\x01")  # the second try before the board answered
    banner = line.expect(rb"raw REPL; CTRL-B to exit\r\n>")
    line.write(b"print(6 * 7)\x04")
    answer = line.expect(rb"OK42\r\n\x04\x04>")
    assert b"raw REPL" not in line.seen[banner.end() : answer.start()]


def test_the_running_lamp_has_neither_its_config_parser_nor_its_console_commands_loaded(line: Line) -> None:
    """Loaded when needed (a configuration to parse, a line on the console), not
    kept on the heap while the lamp runs (docs/lamp-config.md, docs/diagnostics.md);
    the boot's count is dropped once the boot is healthy ("Safe mode"), and so is
    what only the parse or the boot needs (settings.PARSER, configload, journalload)."""
    line.expect(RUNNING)
    line.write(b"\x03")
    line.expect(rb">>> $")
    # The level is said before the loop's first pass, and a Ctrl-C on a loaded
    # machine can come before that pass: the boot's count is then still loaded,
    # rightly (not healthy yet: its count on flash says so). Any other module is not.
    line.write(
        b"import sys; print([m for m in ('lampconfig','configcheck','topics','chips','tzparse',"
        b"'configload','journalload','diag','diagbase','settings','bootcount') if m in sys.modules], "
        b"sys.modules['bootcount'].read()[0] if 'bootcount' in sys.modules else 0)\r"
    )
    m = line.expect(rb"\r\n(\[[^\]]*\]) (\d+)\r\n>>> ")
    loaded, counted = m.group(1), int(m.group(2))
    if counted:  # interrupted before the first pass: the boot still counted
        assert loaded == b"['settings', 'bootcount']", loaded
    else:
        assert loaded == b"['settings']", loaded


def test_an_error_in_boot_py_leaves_the_board_in_the_repl_without_main(image: Path) -> None:
    # As the ESP32's main.c does: main.py only runs after a boot.py that ran to its end.
    fs = _fs(image)
    with fs.open("boot.py", "w") as f:
        f.write("print('boot.py starts')\nraise OSError(5)\n")
    image.write_bytes(bytes(fs.context.buffer))
    b = VirtualBoard("lamp", image)
    ln = Line(b.port)  # before the power comes (the `powered` fixture says why)
    with b:
        try:
            ln.expect(rb"boot.py starts\r\n")
            ln.expect(rb'File "boot.py", line 2, in <module>\r\nOSError: \[Errno 5\] EIO\r\n')
            ln.expect(rb">>> $")
            ln.write(b"import sys; print('controller' in sys.modules)\r")
            ln.expect(rb"\r\nFalse\r\n>>> ")
            assert not re.search(RUNNING, ln.seen)
        finally:
            ln.close()


def test_machine_reset_reboots_with_the_rom_banner(line: Line, board: VirtualBoard) -> None:
    from parkctl.diag import Port

    line.expect(RUNNING)
    mpremote(board.port, "reset")
    line.expect(rb"rst:0xc \(SW_CPU_RESET\)")
    line.expect(RUNNING)
    line.close()
    with Port(board.port) as p:
        status = p.ask("status")["data"]
    assert status["reset_cause"] == 5  # machine.SOFT_RESET, as the ESP32 reports esp_restart()
    assert status["boot"] == 2


def test_a_board_that_fails_ends_its_clients_waits_with_errors(
    line: Line, board: VirtualBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtual board whose next interpreter cannot start is a dead board: it
    says why, its port still takes what a client writes (a client blocked on a
    full port waited for ever), the client's question gets an error in its time,
    and the board stops when asked."""
    import serial
    from parkctl.diag import Port
    from parkctl.errors import UserError

    line.expect(RUNNING)
    monkeypatch.setenv("PARK_MICROPYTHON", "/nonexistent/micropython")
    line.write(b"\x03")
    line.expect(rb">>> $")
    line.write(b"\x04")  # a soft reset: the next interpreter cannot be started
    line.expect(rb"MPY: soft reboot\r\n")
    line.close()
    with Port(board.port) as p, pytest.raises(UserError, match="no answer"):
        p.ask("status", timeout=2)
    assert board.failure is not None and "PARK_MICROPYTHON" in board.failure
    with serial.Serial(board.port, 115200, timeout=0.05, write_timeout=10) as s:
        s.write(b"x" * 1000000)  # far more than a pseudo-terminal's buffer holds
    board.stop()


def test_a_hung_loop_is_reset_by_the_watchdog(line: Line) -> None:
    line.expect(RUNNING)
    line.write(b"\x03")
    line.expect(rb">>> $")
    line.write(b"import machine; w = machine.WDT(timeout=1000)\r")
    line.expect(rb">>> $")
    line.write(b"while True: pass\r")
    line.expect(rb"rst:0x7 \(TG0WDT_SYS_RESET\)", timeout=60)
    line.expect(RUNNING)


def test_the_watchdog_resets_a_board_left_in_the_raw_repl_after_a_soft_reset(line: Line) -> None:
    """As on the ESP32: a soft reset (mpremote's, into the raw REPL) does not stop
    the watchdog the firmware started; nothing feeds it there, so the board
    resets at its timeout and the lamp's loop runs again (left after `mpremote fs
    ls`, the board stayed in the raw REPL for good)."""
    line.expect(RUNNING)
    line.write(b"\x03")
    line.expect(rb">>> $")
    # The firmware's watchdog, shortened for the test (a new timeout reconfigures it).
    line.write(b"import machine; machine.WDT(timeout=2000)\r")
    line.expect(rb">>> $")
    line.write(b"\x01")
    line.expect(rb"raw REPL; CTRL-B to exit\r\n>")
    line.write(b"\x04")  # mpremote's soft reset
    line.expect(rb"soft reboot\r\n")
    line.expect(rb"raw REPL; CTRL-B to exit\r\n>")
    line.expect(rb"rst:0x7 \(TG0WDT_SYS_RESET\)", timeout=60)
    line.expect(RUNNING)


def test_garbage_on_the_console_gets_errors_and_the_lamp_keeps_its_level(
    line: Line, board: VirtualBoard
) -> None:
    from parkctl.diag import Port

    line.expect(RUNNING)
    line.close()
    with Port(board.port) as p:
        # The board keeps the wall clock's time: set it clear of the schedule's
        # transitions (22:00 in the park, the next at 23:00), so that the level
        # compared below cannot change for the hour of the day the test runs at.
        assert p.ask("time set 2026-12-21T14:00:00Z")["ok"]
        # The lamp takes up the night's level: at once, or after a fade, or with
        # the relay waiting out its minimum interval (60 s) when the board was
        # lit or dark by the wall clock's hour before. Compared once it is still.
        deadline = time.monotonic() + 180
        last = None
        while True:
            before = p.ask("status")["data"]
            settled = (before["relay"] == "closed") == (before["level"] > 0)
            if (
                settled
                and last is not None
                and (last["level"], last["relay"])
                == (
                    before["level"],
                    before["relay"],
                )
            ):
                break
            assert time.monotonic() < deadline, before
            last = before if settled else None
            time.sleep(1)  # the board runs in real time: its relay and fades do too
        garbage = [
            b"\x00\x01\x02\xff\xfe\r\n",  # control bytes and not UTF-8
            b"x" * 5000 + b"\n",  # longer than the console takes
            b"\x1b[A\x1b[B\r\n",  # terminal escapes
            b"status status status " * 3 + b"\xc3\r\n",  # a cut UTF-8 sequence
            b"\x7f\x08\x08config\r\n",  # backspaces at the start, then a command without its action
        ]
        for g in garbage:
            p.s.write(g)
        answers = []
        seen = b""
        while len(answers) < len(garbage):
            seen += p.s.read(4096)
            answers = [json.loads(x) for x in seen.split(b"\n") if x.strip().startswith(b"{")]
            assert len(seen) < 100000
        assert all(not a["ok"] for a in answers)
        errors = sorted(a["error"] for a in answers)
        assert any("longer than 4096" in e for e in errors)
        assert any("not UTF-8" in e for e in errors)
        after = p.ask("status")["data"]
        assert after["level"] == before["level"] and after["relay"] == before["relay"]
        # The virtual board keeps the wall clock's time: lit (relay closed) at night only.
        assert after["relay"] == "closed" or after["level"] == 0
        assert after["console_errors"] >= len(garbage)
        assert p.ask("help")["ok"]


def test_mpremote_repl_interrupts_main_and_talks_to_the_friendly_repl(board: VirtualBoard) -> None:
    """`mpremote repl` from a terminal: Ctrl-C stops main.py, a line is evaluated,
    Ctrl-] leaves mpremote."""
    import os
    import pty
    import select
    import time
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)  # as mpremote sets it, before it gets round to it: Ctrl-C is a byte
    proc = subprocess.Popen(
        [MPREMOTE, "connect", board.port, "repl"], stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    seen = b""

    def until(pattern: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while pattern not in seen:
            assert time.monotonic() < deadline, f"{pattern!r} not in {seen[-300:]!r}"
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 4096)

    try:
        until(b"Connected to MicroPython")
        os.write(master, b"\x03")
        until(b">>> ")
        os.write(master, b"print(6 * 7)\r")
        until(b"42")
        os.write(master, b"\x1d")  # Ctrl-]: mpremote's exit key
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_parkctl_vboard_kiosk_runs_the_kiosk_on_a_virtual_esp32s3(tmp_path: Path) -> None:
    """The kiosk's world (its face module, panel, buzzer) and its 2M heap: the
    console answers, the panel gets its first frame, the banner names the S3."""
    import signal

    from parkctl.build import build

    image = tmp_path / "flash.img"
    image.write_bytes(build("kiosk", tmp_path / "build", chip="vboard").image.read_bytes())
    parkctl = str(Path(sys.executable).parent / "parkctl")
    # Started with SIGINT ignored, as a script's `parkctl vboard ... &` is: Ctrl-C
    # (SIGINT, below) stops it all the same.
    ignoring = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]
    proc = subprocess.Popen(
        [*ignoring, parkctl, "vboard", "kiosk", "--flash", str(image)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        m = None
        while m is None:
            out = proc.stdout.readline()
            assert out, "parkctl vboard kiosk ended before it showed its port"
            m = re.match(r"virtual kiosk board at (\S+)", out)
        line = Line(m.group(1))
        try:
            # Opened as the board boots: its first lines may be gone (opening a port
            # empties it), but a question waits for the firmware.
            line.write(b"\r\nstatus\r\n")
            reply = line.expect(rb'\{"ok": true, "console": "status".*\}', timeout=30)
            status = json.loads(reply.group())["data"]
            assert status["app"] == "kiosk" and status["device"] == "kiosk-240ac4000001"
            line.close()
            # The kiosk's own commands through `parkctl diag`, as a technician runs them.
            port = m.group(1)
            diag = [parkctl, "diag", "--port", port]
            face = subprocess.run([*diag, "face", "--json"], capture_output=True, text=True, timeout=30)
            assert face.returncode == 0, face.stderr
            assert json.loads(face.stdout)["bad_crc"] == 0
            purge = subprocess.run(
                [*diag, "purge", "1003", "--json"], capture_output=True, text=True, timeout=30
            )
            assert json.loads(purge.stdout) == {"person": "1003", "erased": 0}
            wrong = subprocess.run([*diag, "selftest"], capture_output=True, text=True, timeout=30)
            # Refused by the board: exit status 2 (README.md, "Exit status").
            assert wrong.returncode == 2 and "unknown command 'selftest'" in wrong.stderr
            line = Line(port)
            line.write(b"\x03")
            line.expect(rb"MicroPython .*; park vboard \(virtual ESP32-S3\) with ESP32S3\r\n")
        finally:
            line.close()
        proc.send_signal(signal.SIGINT)
        try:
            shown = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            # Where it is stuck, on its stderr (captured with this test's).
            proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            raise AssertionError("parkctl vboard did not stop in 60 s (stacks on stderr)") from None
        assert proc.returncode == 0, "its stop ran out of time (stacks on stderr)"
        assert "display: frame 1 since boot" in shown  # the idle screen, on the virtual panel
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
