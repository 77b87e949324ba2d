"""`parkctl vboard`: a virtual ESP32 at a serial port.

The real MicroPython interpreter (unix port) runs the board (sim/vboard_main.py)
behind a pseudo-terminal of its own; this supervisor relays it to a second,
stable one, the board's "USB serial port", which outlives the interpreter. That
is what lets the board reset as a board does: the interpreter ends (Ctrl-D in
the REPL, `machine.reset()`, a watchdog expiry, a soft reset from mpremote's raw
REPL) and the next one starts behind the same port, with the same flash image.

What passes through is the interpreter's own REPL, raw REPL and raw-paste mode,
with three corrections that make it look like an ESP32's port:
- its banner names the virtual board instead of Linux;
- "\\r\\r\\n" (the REPL's "\\r\\n" through the terminal's newline translation)
  becomes "\\r\\n";
- input after a Ctrl-C that interrupts running code is held until the REPL's
  prompt shows: the interpreter empties its terminal's input queue when it
  enters the REPL (tcsetattr TCSAFLUSH), which would eat mpremote's Ctrl-A.
Input is also held while the board boots, until its filesystem is mounted.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from .errors import UserError
from .runtime import ROOT, micropython_binary
from .simcmd import SIM_HEAP

# The simulator's peripherals and world share the interpreter with the firmware,
# as in `parkctl sim`: the kiosk's frame buffer and its virtual panel need 2M.
# The lamp's 1M (simulator's reasons in host/parkctl/simcmd.py) is also what
# the console needs: the simulator's names (qstrs) and the firmware's fill
# MicroPython's name table to 1,260, so the console's first line, which loads
# its commands (diag) and their names, needs the table to grow by one block of
# 14 KB (a pool of 1,280 names, on 64-bit). After an alarm run through to its
# acknowledgement, 512k had no free block that big about half the time
# ("MemoryError ... allocating 1280 bytes": entries, not bytes). A board has
# room for the console's names without growing (`make check-firmware`); the
# firmware's own heap is measured by `make bench`.
HEAP = SIM_HEAP
WDT_MARGIN_S = 1.5  # the board reports feeds at most once a second
# Input is held until the board can take it (its flash mounted, its REPL's
# prompt shown), at most this long: the limit is for a board that never gets
# there, not the usual wait. Released on a timer, input reaches an interpreter
# that drops it: the REPL empties its input queue as it starts, an interpreter
# ending at a Ctrl-D does as it ends, and a second Ctrl-C before the REPL has
# taken the terminal kills the unix port (its SIGINT handler is gone by then).
BOOT_HOLD_S = 10.0
KILL_WAIT_S = 10.0  # for an interpreter to end after SIGKILL
STOP_S = 45.0  # for `parkctl vboard` to stop once asked (its waits are 10 s each)

PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5

# What an ESP32's ROM prints at a reset, before MicroPython starts.
_ROM = {
    PWRON_RESET: "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    SOFT_RESET: "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    WDT_RESET: "rst:0x7 (TG0WDT_SYS_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
}
_ROM_HEAD = b"ets Jul 29 2019 12:21:46\r\n\r\n"
_BANNER = re.compile(rb"; linux \[[^\]\r\n]*\] version")
# The chip each app's board has (the lamp an ESP32, the kiosk an ESP32-S3), as its banner names it.
_PLATFORM = {
    "lamp": b"; park vboard (virtual ESP32) with ESP32",
    "kiosk": b"; park vboard (virtual ESP32-S3) with ESP32S3",
}
_RAW_HEADER = b"raw REPL; CTRL-B to exit\r\n>"
_FRIENDLY = b">>> "
_APPS = ("lamp", "kiosk")


def _measures() -> dict:
    """What a rig reads of the world: the lamp's light and ring LED; the frames the
    kiosk's panel received and its buzzer's beeps, counted over the board's life."""
    return {"level": 0.0, "led": False, "frames": 0, "beeps": 0}


def _sim_path(app: str) -> str:
    paths = [ROOT / "sim", ROOT / "sim" / "vesp32", ROOT / "firmware" / app, ROOT / "firmware" / "lib"]
    return os.pathsep.join(str(p) for p in paths)


class _Interpreter:
    """An interpreter the spawner (vspawn.py) started: its pid, and its exit code
    once the spawner has told it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None


class _Spawner:
    """The process that forks the board's interpreters (host/parkctl/vspawn.py
    says why). Every wait for it has a deadline: a spawner or an interpreter
    that does not answer is an error, never a hang."""

    ANSWER_S = 10.0

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        script = Path(__file__).with_name("vspawn.py")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(script), str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            close_fds=True,
        )
        theirs.close()
        self.sock = mine
        self._children: dict[int, _Interpreter] = {}
        self._replies: list[dict] = []
        self.gone = False  # the spawner ended: so did the interpreters it started

    def spawn(self, cmd: list[str], env: dict[str, str], tty: int) -> _Interpreter:
        msg = json.dumps({"cmd": cmd, "env": env}).encode()
        try:
            socket.send_fds(self.sock, [msg], [tty])
        except OSError as e:
            raise UserError(f"the virtual board cannot start its interpreter: {e}") from None
        deadline = time.monotonic() + self.ANSWER_S
        while not self._replies:
            left = deadline - time.monotonic()
            if left <= 0 or not self.read(left):
                raise UserError(f"the virtual board's interpreter did not start in {self.ANSWER_S:g} s")
        reply = self._replies.pop(0)
        if "error" in reply:
            raise UserError(f"the virtual board cannot start its interpreter: {reply['error']}")
        child = _Interpreter(reply["pid"])
        self._children[child.pid] = child
        return child

    def read(self, timeout: float = 0.0) -> bool:
        """Takes what the spawner said within `timeout`; False if it said nothing."""
        said = False
        while not self.gone and select.select([self.sock], [], [], timeout)[0]:
            timeout = 0.0
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.gone = True  # its children were killed with it
                for child in self._children.values():
                    child.returncode = -signal.SIGKILL
                self._children.clear()
                return said
            said = True
            msg = json.loads(data)
            if "exit" in msg:
                child = self._children.pop(msg["exit"], None)
                if child is not None:
                    child.returncode = msg["rc"]
            else:
                self._replies.append(msg)
        return said

    def wait(self, child: _Interpreter, timeout: float) -> bool:
        """Until `child` has ended, at most `timeout`; whether it has."""
        deadline = time.monotonic() + timeout
        while child.returncode is None:
            left = deadline - time.monotonic()
            if left <= 0 or self.gone:
                return False
            self.read(min(left, 0.1))
        return True

    def close(self) -> None:
        # The spawner kills the interpreters still running when its socket closes.
        if self.gone and self.sock.fileno() < 0:
            return
        self.gone = True
        self.sock.close()
        try:
            self._proc.wait(self.ANSWER_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(self.ANSWER_S)


def _setsid() -> str:
    found = shutil.which("setsid")
    if not found:
        raise UserError("setsid (util-linux) is not installed: the virtual board needs it")
    return found


class VirtualBoard:
    """One virtual board: its port, its flash image, its interpreter."""

    def __init__(
        self,
        app: str,
        image: Path,
        link: Path | None = None,
        uid: str = "240ac4000001",
        log: Callable[[str], None] | None = None,
    ) -> None:
        if app not in _APPS:
            raise UserError(f"unknown app {app!r}: choose lamp or kiosk")
        if not (ROOT / "firmware" / app).is_dir():
            raise UserError(f"firmware/{app} does not exist yet: no {app} firmware to run")
        if not image.is_file():
            raise UserError(f"no flash image at {image}: build one with `parkctl build {app} --chip vboard`")
        with open(image, "rb") as f:
            head = f.read(8192)
        # The board writes into its flash: a file that is not one (a configuration
        # given by mistake) would be formatted over, and lost.
        if b"littlefs" not in (head[8:16], head[4104:4112]):
            raise UserError(
                f"{image} is not a littlefs flash image (the board would format it): "
                f"make one with `parkctl build {app} --chip vboard`"
            )
        self.app = app
        self.image = image
        self.link = link
        self.uid = uid
        self.log = log or (lambda line: None)
        self.boots = 0
        self.resets: list[int] = []  # the cause of each restart, in order
        self.cuts = 0  # power cuts the world made (cut_at_flash_op)
        self._cut_armed: int | None = None  # cut_at_flash_op's N, until the cut comes
        self.world: dict = _measures()  # as the world last reported it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: _Interpreter | None = None
        self._mb = -1  # the interpreter's terminal (master side)
        self._out_tail = b""
        self._pending_cr = b""
        self._raw = False  # the REPL is in raw mode (mpremote's)
        self._swallow = False  # restarting into the raw REPL: the banner is not shown
        self._held = bytearray()  # client input held back (boot, interrupt)
        self._hold_until = 0.0
        self._holding = False
        self._interrupting = False  # what is held follows a Ctrl-C
        self._interrupt_sent = False  # and that Ctrl-C went to the interpreter running now
        self._state: dict | None = None
        self._cause = PWRON_RESET
        self._wdt_s = 0.0
        self._fed = 0.0
        self._ctl_conn: socket.socket | None = None
        self._ctl_buf = b""
        self.failure: str | None = None  # why the relay stopped, if it did
        # The port: a pseudo-terminal whose slave side this process keeps open, so
        # that it survives clients coming and going.
        self._ma, self._sa = pty.openpty()
        tty.setraw(self._sa)
        os.set_blocking(self._ma, False)
        self.port = os.ttyname(self._sa)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._spawner = _Spawner()
        if link is not None:
            tmp = link.with_name(link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.port)
            tmp.replace(link)

    # --- life ----------------------------------------------------------------

    def start(self) -> VirtualBoard:
        """Powers the board on and relays its port in a thread."""
        self._to_client(_ROM_HEAD + _ROM[PWRON_RESET].encode() + b"\r\n")
        self._spawn("main", PWRON_RESET)
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._to_client(_ROM_HEAD + _ROM[PWRON_RESET].encode() + b"\r\n")
        self._spawn("main", PWRON_RESET)
        self._loop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._kill()
        self._spawner.close()
        for fd in (self._ma, self._sa):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._listener.close()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def power_cycle(self) -> None:
        """Mains off and on: RAM, RTC and everything not on flash are gone."""
        with self._lock:
            self.log("power: mains cut and back")
            self._power_on_again()

    def cut_at_flash_op(self, n: int) -> None:
        """The power goes part-way through the board's n-th flash program or erase
        from now (1: the next), as the simulator's flash model tears it (docs/sim.md,
        "The flash"); it comes back at once. Armed again in each interpreter that
        starts until it comes (mpremote's soft reboot into the raw REPL starts one),
        counting from that interpreter's start."""
        with self._lock:
            self._cut_armed = n
            self._arm_cut()

    def _arm_cut(self) -> None:
        if self._cut_armed is not None and self._ctl_conn is not None:
            event = {"do": "cut_op", "n": self._cut_armed, "until": 0}
            self._ctl_conn.sendall((json.dumps({"world": event}) + "\n").encode())

    def _power_on_again(self) -> None:
        self._kill()
        self._state = None
        self._wdt_s = 0.0
        # The lamp's light and LED go out; what was counted (frames, beeps) stays counted.
        self.world.update(level=0.0, led=False)
        self._to_client(b"\r\n" + _ROM_HEAD + _ROM[PWRON_RESET].encode() + b"\r\n")
        self._spawn("main", PWRON_RESET)

    @property
    def interpreter_pid(self) -> int | None:
        """The process running the firmware now (None between two)."""
        p = self._proc
        return p.pid if p is not None else None

    def stimulate(self, event: dict) -> None:
        """A world event now (sim/world.py's: press, noise, button...), as a rig's
        output pin wired to the board would cause it."""
        with self._lock:
            if self._ctl_conn is None:
                raise RuntimeError("the board is not running (booting or reset): nothing to stimulate")
            self._ctl_conn.sendall((json.dumps({"world": event}) + "\n").encode())

    # --- the interpreter -----------------------------------------------------

    def _spawn(self, mode: str, cause: int) -> None:
        self._cause = cause
        self.resets.append(cause)
        self.boots += 1
        mb, sb = pty.openpty()
        attrs = termios.tcgetattr(sb)
        # The terminal while the firmware runs: bytes as they come (no line editing,
        # no echo), Ctrl-C still an interrupt, "\n" out as "\r\n" as the ESP32 does.
        attrs[0] &= ~(termios.ICRNL | termios.INLCR | termios.IXON)
        attrs[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(sb, termios.TCSANOW, attrs)
        env = dict(
            os.environ,
            MICROPYPATH=_sim_path(self.app),
            VBOARD_APP=self.app,
            VBOARD_IMAGE=str(self.image),
            VBOARD_CTL=str(self._listener.getsockname()[1]),
            VBOARD_MODE=mode,
            VBOARD_UID=self.uid,
            # A cut still to come: armed in this interpreter from its start (it may
            # never wait for the world's events: the raw REPL's does not).
            VBOARD_CUT=str(self._cut_armed or ""),
        )
        state = dict(self._state, cause=cause) if self._state else None
        env["VBOARD_STATE"] = json.dumps(state) if state else ""

        # Its own session, with its pseudo-terminal as its controlling terminal (so
        # that Ctrl-C interrupts it): util-linux's setsid does that between fork
        # and exec. Forked by the spawner, not here (vspawn.py says why).
        cmd = [
            _setsid(),
            "--ctty",
            micropython_binary(),
            *("-X", f"heapsize={HEAP[self.app]}", "-i", "-c", "import vboard_main"),
        ]
        try:
            self._proc = self._spawner.spawn(cmd, env, sb)
        finally:
            os.close(sb)
        os.set_blocking(mb, False)
        self._mb = mb
        self._raw = False
        self._out_tail = b""
        self._swallow = mode == "raw"
        if self._held and self._interrupting and not self._held.startswith(b"\x03"):
            # A client was on its way into the REPL of the interpreter that ended
            # (its Ctrl-C went to that one): this one is interrupted too.
            self._held[:0] = b"\x03"
        self._interrupt_sent = False
        self._holding = True
        self._hold_until = time.monotonic() + BOOT_HOLD_S
        self._ctl_buf = b""
        if self._ctl_conn is not None:
            self._ctl_conn.close()
            self._ctl_conn = None
        self.log(f"boot {self.boots}: {'raw REPL' if mode == 'raw' else 'boot.py, main.py'}")

    def _kill(self) -> None:
        p = self._proc
        self._spawner.read()
        if p is not None and p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            if not self._spawner.wait(p, KILL_WAIT_S):
                self.log(f"the interpreter {p.pid} did not end in {KILL_WAIT_S:g} s after SIGKILL")
        self._proc = None
        if self._mb >= 0:
            with contextlib.suppress(OSError):
                os.close(self._mb)
            self._mb = -1

    def _reset(self, cause: int, soft: bool) -> None:
        """The interpreter is replaced: a soft reboot or a reset of the chip."""
        mode = "raw" if soft and self._raw else "main"
        self._kill()
        if not soft:
            # Only a reset of the chip stops the watchdog. A soft reboot keeps it
            # running, as the ESP32's does (its soft reset leaves the task
            # watchdog that machine.WDT started subscribed): a board left in the
            # REPL or the raw REPL (mpremote's soft reset) resets at its timeout
            # unless something feeds it, and the firmware's loop comes back.
            self._wdt_s = 0.0
        if soft:
            self._to_client(b"MPY: soft reboot\r\n")
        else:
            self._to_client(b"\r\n" + _ROM_HEAD + _ROM[cause].encode() + b"\r\n")
        self._spawn(mode, cause if not soft else self._cause)

    # --- the relay -----------------------------------------------------------

    def _to_client(self, data: bytes) -> None:
        # Nobody reading the port: what does not fit is lost, as on a USB serial line.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._ma, data)

    def _from_board(self, data: bytes) -> None:
        data = self._pending_cr + data
        self._pending_cr = b""
        k = len(data) - len(data.rstrip(b"\r"))
        if k:  # "\r" at the end of a read may be the start of "\r\r\n"
            data, self._pending_cr = data[:-k], data[-k:]
        data = data.replace(b"\r\r\n", b"\r\n")
        data = _BANNER.sub(_PLATFORM[self.app], data)
        tail = (self._out_tail + data)[-64:]
        self._out_tail = tail
        if tail.endswith(_RAW_HEADER):
            self._raw = True
        elif tail.endswith(_FRIENDLY):
            self._raw = False
        if self._swallow:
            if tail.endswith(_FRIENDLY):
                # Up in the friendly REPL: into the raw one, as the soft reset found it.
                self._swallow = False
                self._write_board(b"\x01")
            return
        if self._holding and self._at_prompt():
            self._release()
        self._to_client(data)

    def _at_prompt(self) -> bool:
        t = self._out_tail
        return t.endswith(_FRIENDLY) or (self._raw and t.endswith(b">"))

    def _release(self) -> None:
        self._holding = False
        self._interrupting = False
        held, self._held = bytes(self._held), bytearray()
        if held:
            self._from_client(held)

    def _hold(self, data: bytes) -> None:
        """Input that waits for the board. A Ctrl-C in it means the client started
        over (mpremote asks for the raw REPL again after a try that got no answer
        in time, as a board slowed by a loaded machine gives): what it sent before
        is dropped, as the REPL's Ctrl-C drops a half-typed line. Kept, the board
        answered both tries, and mpremote took the second raw REPL banner for the
        answer to its next command."""
        k = data.rfind(b"\x03")
        if k < 0:
            self._held += data
            return
        self._interrupting = True
        # The interrupt itself still goes to an interpreter that has not had it.
        self._held = bytearray((b"" if self._interrupt_sent else b"\x03") + data[k + 1 :])

    def _from_client(self, data: bytes) -> None:
        if self._holding:
            self._hold(data)
            return
        # After a Ctrl-C that interrupts running code, a Ctrl-B that leaves the raw
        # REPL or a Ctrl-D that soft-resets from the friendly one, the REPL (or the
        # next interpreter) starts afresh: the rest waits for it.
        keys = (b"\x02",) if self._raw else (b"\x04",) if self._at_prompt() else (b"\x03",)
        found = [k for k in (data.find(key) for key in keys) if k >= 0]
        i = min(found) if found else -1
        if i >= 0:
            self._interrupting = self._interrupt_sent = data[i] == 3
            self._write_board(data[: i + 1])
            self._hold(data[i + 1 :])
            self._holding = True
            self._hold_until = time.monotonic() + BOOT_HOLD_S
            return
        self._write_board(data)

    def _write_board(self, data: bytes) -> None:
        if self._mb < 0:
            return
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                n = os.write(self._mb, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                select.select([], [self._mb], [], 0.05)
            except OSError:
                return

    def _control(self, msg: dict) -> None:
        if "log" in msg:
            _, kind, text = msg["log"]
            self.log(f"{kind}: {text}")
            # What a rig measures: the lamp's light and the ring LED, the kiosk's buzzer.
            if kind == "level":
                self.world["level"] = float(text)
            elif kind == "led":
                self.world["led"] = text == "on"
            elif kind == "buzzer":
                self.world["beeps"] += 1
            elif kind == "power" and text == "mains cut":
                # The world cut the power (part-way through a flash operation):
                # the interpreter dies where it is, and the board powers on again.
                self.cuts += 1
                self._cut_armed = None
                self._power_on_again()
                return
        if "frame" in msg:
            self.world["frames"] += 1
            self.log(f"display: frame {msg['frame']} since boot")
        if "state" in msg:
            self._state = msg["state"]
        if "booted" in msg:
            # main.py runs now and reads the console (a Ctrl-C stops it). Without
            # one, what is held waits for the REPL's prompt.
            if self._holding and not self._swallow and msg.get("main", True):
                self._release()
        if "wdt" in msg:
            self._wdt_s = msg["wdt"] / 1000
            self._fed = time.monotonic()
        if "feed" in msg:
            self._fed = time.monotonic()
        if "reset" in msg:
            self.log("reset: " + ("soft reboot" if msg.get("soft") else "machine.reset()"))
            self._reset(msg["reset"], bool(msg.get("soft")))

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    self._pass()
        except Exception as e:
            # The board is dead, as a board whose chip failed. Its port still
            # takes what clients write, so that no client blocks on a full port:
            # they get no answer, and every client's wait has a deadline.
            self.failure = f"{type(e).__name__}: {e}"
            self.log(f"the virtual board stopped: {self.failure}")
            with contextlib.suppress(Exception):
                self._kill()
            while not self._stop.is_set():
                if select.select([self._ma], [], [], 0.1)[0]:
                    with contextlib.suppress(OSError):
                        os.read(self._ma, 65536)

    def _pass(self) -> None:
        fds: list = [self._ma, self._listener]
        if not self._spawner.gone:
            fds.append(self._spawner.sock)
        if self._mb >= 0:
            fds.append(self._mb)
        if self._ctl_conn is not None:
            fds.append(self._ctl_conn)
        ready, _, _ = select.select(fds, [], [], 0.05)
        now = time.monotonic()
        if self._mb in ready:
            try:
                data = os.read(self._mb, 4096)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""  # EIO: the interpreter has gone
            if data:
                self._from_board(data)
        elif self._pending_cr:
            self._from_board(b"")
            if self._pending_cr:
                self._to_client(self._pending_cr)
                self._pending_cr = b""
        if self._ma in ready:
            with contextlib.suppress(BlockingIOError, OSError):
                data = os.read(self._ma, 4096)
                if data:
                    self._from_client(data)
        if self._listener in ready:
            conn, _ = self._listener.accept()
            if self._ctl_conn is not None:
                self._ctl_conn.close()
            self._ctl_conn = conn
        if self._ctl_conn is not None and self._ctl_conn in ready:
            try:
                chunk = self._ctl_conn.recv(65536)
            except OSError:
                chunk = b""  # the interpreter died mid-line: it is seen ending below
            if not chunk:
                self._ctl_conn.close()
                self._ctl_conn = None
            self._ctl_buf += chunk
            while b"\n" in self._ctl_buf:
                line, self._ctl_buf = self._ctl_buf.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    self._control(json.loads(line))
                if self._ctl_conn is None:
                    break  # a reset: the rest was the old interpreter's
        if self._holding and now > self._hold_until and not self._swallow:
            self._release()
        if self._wdt_s and now - self._fed > self._wdt_s + WDT_MARGIN_S:
            self.log("reset: watchdog (the loop stopped feeding it)")
            self._reset(WDT_RESET, soft=False)
            return
        self._spawner.read()
        p = self._proc
        if p is not None and p.returncode is not None and self._mb >= 0:
            # Drain what it said last, then it is a soft reboot (Ctrl-D, sys.exit).
            with contextlib.suppress(OSError):
                while True:
                    data = os.read(self._mb, 4096)
                    if not data:
                        break
                    self._from_board(data)
            self.log(f"the interpreter ended ({p.returncode}): soft reboot")
            self._reset(SOFT_RESET, soft=True)


def default_image(app: str) -> Path:
    return ROOT / "build" / f"vboard-{app}" / "flash.img"


def run(app: str, image: Path, link: Path | None, quiet: bool = False) -> int:
    """`parkctl vboard`: runs until Ctrl-C or SIGTERM."""

    def log(line: str) -> None:
        if not quiet:
            print(time.strftime("%H:%M:%S"), line, flush=True)

    board = VirtualBoard(app, image, link, log=log)
    print(f"virtual {app} board at {board.port}" + (f" (link {link})" if link else ""), flush=True)
    print(f"flash image {image}; stop with Ctrl-C", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # A board that stops answering can be asked where it is: SIGUSR1 prints
    # every thread's stack on stderr (docs/vboard.md).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        board.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        # Stopping has a deadline too: a stop that cannot finish prints where
        # it was stuck and ends the process all the same (exit status 1).
        faulthandler.dump_traceback_later(STOP_S, exit=True)
        board.stop()
        faulthandler.cancel_dump_traceback_later()
    return 0
