"""`parkctl flash`: esptool writes a build's firmware and filesystem image to a board.

The esptool command lines are built by pure functions (tests check the offsets);
esptool itself runs as a subprocess, its progress bars passed through."""

from __future__ import annotations

import codecs
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .build import Chip, esptool_command, esptool_error
from .errors import UserError

# What MicroPython's own instructions use; 921600 works with most USB bridges, 115200 always.
DEFAULT_BAUD = 460800


def flash_args(
    chip: Chip,
    port: str,
    image: Path,
    firmware: Path | None = None,
    baud: int = DEFAULT_BAUD,
    erase: bool = False,
) -> list[str]:
    """esptool's arguments to write the firmware (if given) and the filesystem image.
    esptool 5's write-flash checks each region's MD5 on the chip after writing (it has
    no --verify any more; --trust-flash-content would skip that, and is not used)."""
    if chip.esptool is None:
        raise UserError(f"{chip.name} is not a chip esptool can flash")
    args = ["--chip", chip.esptool, "--port", port, "--baud", str(baud)]
    args += ["--before", "default-reset", "--after", "hard-reset", "write-flash"]
    if erase:
        args.append("--erase-all")
    if firmware is not None:
        args += [f"{chip.bootloader_offset:#x}", str(firmware)]
    args += [f"{chip.vfs_offset:#x}", str(image)]
    return args


def check_port(port: str) -> None:
    """A clear error before esptool tries a serial port that is not there."""
    if "://" in port or re.fullmatch(r"(?i)com\d+", port):
        return  # rfc2217://, socket:// and Windows ports are esptool's to find
    if not os.path.exists(port):
        raise UserError(f"no serial port {port}; is the board plugged in?")


def run_esptool(args: list[str], echo: Callable[[str], None] | None = None, terminal: bool = False) -> str:
    """Runs esptool, passing its output to `echo` as it comes; returns the output. A
    failure is a UserError with esptool's last error line. `terminal`: `echo` reaches
    a terminal, so esptool may redraw its progress bars in place (it draws them with
    rich, which sees a pipe here unless told)."""
    env = dict(os.environ)
    if terminal:
        env.update(FORCE_COLOR="1", TTY_COMPATIBLE="1", COLUMNS=str(shutil.get_terminal_size().columns))
    proc = subprocess.Popen(esptool_command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    chunks = []
    while True:
        chunk = os.read(proc.stdout.fileno(), 4096)
        text = decoder.decode(chunk, final=not chunk)
        chunks.append(text)
        if echo is not None and text:
            echo(text)
        if not chunk:
            break
    proc.stdout.close()
    code = proc.wait()
    output = "".join(chunks)
    if code != 0:
        raise UserError(f"esptool failed: {esptool_error(output)}")
    return output


def pending_on_board(port: str, timeout: float = 3.0) -> tuple[int, str | None] | None:
    """(events not yet delivered, open alarm id or None) as the park firmware on the
    board says, or None when no park firmware answers (a new board, a board in
    its bootloader, another port): flashing replaces the whole filesystem, journal
    included, so a pole in service is asked first."""
    if "://" in port or re.fullmatch(r"(?i)com\d+", port):
        return None
    from .diag import Port

    try:
        with Port(port) as p:
            reply = p.ask("status", timeout)
    except UserError:
        return None
    data = reply.get("data") if reply.get("ok") else None
    if not isinstance(data, dict):
        return None
    alarm = data.get("alarm")
    return int(data.get("pending") or 0), (alarm or {}).get("id") if isinstance(alarm, dict) else None
