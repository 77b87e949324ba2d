"""`parkctl diag`: the lamp's diagnostics console over its USB serial port.

The firmware reads command lines on its serial console while it runs and answers
each with one JSON line ({"console": name, "ok": ..., "data"/"error": ...}),
among the event lines it prints anyway (docs/diagnostics.md). This side sends a
line and waits for that answer; it never interrupts the firmware (no Ctrl-C),
so the lamp keeps its light.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import serial

from .errors import UserError

# Every device's (firmware/lib/diagbase.py), the lamp's and the kiosk's: the board
# refuses, naming its own, a command its app does not have.
COMMANDS = ("status", "log", "time", "config", "reboot", "help", "selftest", "alarm", "face", "purge")
LINE_MAX = 4096  # firmware/lib/console.py's limit


class Port:
    """A board's serial port, opened without resetting the board."""

    def __init__(self, path: str, baud: int = 115200) -> None:
        if not os.path.exists(path):
            raise UserError(f"no serial port {path}: is the board plugged in (or the virtual board running)?")
        s = serial.Serial()
        s.port = path
        s.baudrate = baud
        s.timeout = 0.05
        s.write_timeout = 5.0  # a board that stops reading: an error, not a hang
        s.exclusive = True
        # DTR and RTS low: on an ESP32 DevKit they drive EN and GPIO0 (reset, boot mode).
        s.dtr = False
        s.rts = False
        try:
            s.open()
        except serial.SerialException as e:
            text = str(e)
            if "lock" in text.lower() or "busy" in text.lower() or "Resource temporarily" in text:
                raise UserError(
                    f"serial port {path} is busy: another program (mpremote, a terminal) has it"
                ) from None
            if "Permission denied" in text:
                raise UserError(
                    f"no permission to open {path}: add yourself to the dialout group, log in again"
                ) from None
            raise UserError(f"cannot open {path}: {text}") from None
        self.s = s
        self.path = path

    def close(self) -> None:
        self.s.close()

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, line: str, timeout: float = 5.0) -> dict[str, Any]:
        """Sends one command line; the firmware's JSON reply to it."""
        data = line.encode()
        name = line.split()[0] if line.split() else ""
        if len(data) > LINE_MAX:
            raise UserError(f"the command is {len(data)} bytes; the console takes at most {LINE_MAX}")
        s = self.s
        s.reset_input_buffer()
        # A line end first ends whatever a previous client left half-typed.
        try:
            s.write(b"\r\n" + data + b"\r\n")
            s.flush()
        except serial.SerialTimeoutException:
            raise UserError(f"the board at {self.path} takes no input: it is hung") from None
        seen = bytearray()
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.read(4096)
            if not chunk:
                continue
            seen += chunk
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                reply = console_reply(raw)
                if reply is not None and reply["console"] == name:
                    return reply
            if buf.endswith(b">>> ") or buf.endswith(b"raw REPL; CTRL-B to exit\r\n>"):
                raise UserError(
                    f"the board at {self.path} is at the MicroPython REPL, not running the park "
                    "firmware (main.py stopped or was interrupted): reset it (mpremote reset)"
                )
        if not seen:
            raise UserError(
                f"no answer from {self.path} in {timeout:g} s: no MicroPython board there, or it is hung"
            )
        raise UserError(
            f"no answer from the park firmware at {self.path} in {timeout:g} s "
            f"(the board said {bytes(seen[-80:])!r}): is the park firmware installed?"
        )


def console_reply(raw: bytes) -> dict[str, Any] | None:
    """The firmware console's answer in one line of the board's output, or None."""
    raw = raw.strip()
    if not raw.startswith(b"{"):
        return None
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    if isinstance(msg, dict) and "console" in msg and "ok" in msg:
        return msg
    return None


def command_line(command: str, args: list[str]) -> str:
    """The console line for `parkctl diag COMMAND ARGS`: a configuration file named
    after `config set|validate` is sent as one line of JSON."""
    if command == "config" and len(args) == 2 and args[0] in ("set", "validate"):
        try:
            with open(args[1], encoding="utf-8") as f:
                obj = json.load(f)
        except OSError as e:
            raise UserError(f"cannot read {args[1]}: {e.strerror}") from None
        except ValueError as e:
            raise UserError(f"{args[1]} is not JSON: {e}") from None
        return f"config {args[0]} " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return " ".join([command, *args])


def run(port: str, command: str, args: list[str], timeout: float) -> dict[str, Any]:
    with Port(port) as p:
        return p.ask(command_line(command, args), timeout)
