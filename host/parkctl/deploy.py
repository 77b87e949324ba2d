"""`parkctl deploy`: the app onto a running board over its serial port, through
mpremote's transport, copying only what changed.

The board is asked for the sha256 of every file the build has (and of those its
old /manifest.json listed); only files whose hash differs are written, files of
the old build that the new one no longer has are removed, and /manifest.json
goes last, so a deploy cut short never claims the new version. Then a soft
reset starts the new firmware. Data the firmware wrote (its journal, an
installed configuration) is never touched: it is in no manifest.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .build import FIRMWARE, INSTALLED, MANIFEST, check_device_config, device_files, get_chip, staged
from .errors import UserError

# The longest wait for any answer from the board: one that stops answering in
# the middle of a deploy (unplugged, hung) ends it with an error, never a hang.
ANSWER_TIMEOUT_S = 10.0
RAW_REPL_TRIES = 3
RAW_REPL_WAIT_S = 3  # for each try

# Index: sys.implementation._mpy >> 10, as MicroPython documents it.
_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")
_ARCHS += ("xtensa", "xtensawin", "rv32imc", "rv64imc")

# Runs on the board: the hashes of the files asked for (None: no such file), the
# old manifest's file list, the .mpy architecture and the machine's name.
_PROBE = """
import sys, json, hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
try:
    with open('/manifest.json') as f:
        _old = list(json.loads(f.read()).get('files', {}))
except Exception:
    _old = []
_want = %s
print(json.dumps({'mpy': sys.implementation._mpy, 'machine': sys.implementation._machine,
                  'old': _old, 'files': {p: _h(p) for p in _want + _old}}))
"""


@dataclass
class Deployed:
    version: str
    hash: str
    copied: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "hash": self.hash,
            "copied": self.copied,
            "up_to_date": self.up_to_date,
            "removed": self.removed,
            "seconds": round(self.seconds, 2),
        }


def _connect(port: str) -> Any:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport
    from serial import Serial

    from .diag import Port

    Port(port).close()  # the clear errors: no such port, busy, no permission
    try:
        t = SerialTransport(port, baudrate=115200, timeout=ANSWER_TIMEOUT_S)
    except Exception as e:  # mpremote raises several kinds
        raise UserError(f"cannot connect to {port}: {e}") from None
    if isinstance(t.serial, Serial):  # a board that stops reading: an error, not a hang
        t.serial.write_timeout = ANSWER_TIMEOUT_S
    # A board in the middle of a (soft) reboot can miss the Ctrl-C and Ctrl-A that
    # ask for the raw REPL: asked again, as a technician would.
    for attempt in range(RAW_REPL_TRIES):
        try:
            t.enter_raw_repl(soft_reset=False, timeout_overall=RAW_REPL_WAIT_S)
        except TransportError:
            continue
        if attempt:
            # A slow board may yet answer a try given up on, after this one's
            # answer: a second raw REPL banner, which mpremote would read as the
            # answer to the next command. Once it is quiet, asked once more.
            _until_quiet(t.serial)
            try:
                t.enter_raw_repl(soft_reset=False, timeout_overall=RAW_REPL_WAIT_S)
            except TransportError:
                continue
        return t
    t.close()
    raise UserError(f"no MicroPython REPL at {port}: is a MicroPython board there?")


def _until_quiet(port: Any, quiet_s: float = 0.5) -> None:
    """Reads what the board says until it has said nothing for `quiet_s`, at most
    ANSWER_TIMEOUT_S."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    last = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < quiet_s:
        if port.in_waiting:
            port.read(port.in_waiting)
            last = time.monotonic()
        else:
            time.sleep(0.05)


def chip_for(mpy: int, machine: str) -> str:
    """The build target for a board from what it says of itself."""
    idx = mpy >> 10
    arch = _ARCHS[idx] if idx < len(_ARCHS) else None
    if arch == "xtensawin":
        return "esp32s3" if "S3" in machine.upper() else "esp32"
    if arch in ("x64", "x86"):
        return "vboard"  # the unix port: the virtual board
    raise UserError(
        f"the board runs MicroPython on {arch or 'an unknown architecture'} ({machine}): not ours"
    )


def deploy(
    port: str,
    app: str,
    device_config: Path | None = None,
    chip: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    extra: dict[str, bytes] | None = None,
    remove: list[str] | None = None,
    root: Path | None = None,
) -> Deployed:
    """device_config: the board's own configuration, installed outside the app's
    manifest (build.device_files), as `parkctl provision` does; extra: other files
    written after the app, outside its manifest (never staged on this machine);
    remove: files deleted if there; root: the firmware folder (default: this
    repository's)."""
    t0 = time.monotonic()
    if device_config is not None:  # checked before the board is interrupted
        extra = {**device_files(app, check_device_config(app, device_config)), **(extra or {})}
        remove = [*(remove or []), INSTALLED[app] + ".trial"]
    from mpremote.transport import TransportError, TransportExecError
    from serial import SerialException

    t = _connect(port)
    try:
        # The board says what it is before anything is built for it.
        info = json.loads(t.exec(_PROBE % "[]"))
        target = chip or chip_for(info["mpy"], info["machine"])
        # Staged in memory, not in a build folder: two deploys at once must not
        # copy each other's files.
        staged_files, manifest = staged(app, get_chip(target), root or FIRMWARE)
        files = {p: staged_files[p] for p in manifest["files"]}
        info = json.loads(t.exec(_PROBE % json.dumps([*sorted(files), MANIFEST])))
        have: dict[str, str | None] = info["files"]
        out = Deployed(version=manifest["version"], hash=manifest["hash"])
        todo = [p for p in sorted(files) if have.get(p) != manifest["files"][p]]
        out.up_to_date = [p for p in sorted(files) if p not in todo]
        dirs = sorted({str(Path(p).parent) for p in todo} - {"/"})
        if dirs:
            t.exec(f"import os\nfor d in {dirs!r}:\n  try:\n    os.mkdir(d)\n  except OSError:\n    pass\n")
        total = sum(len(files[p]) for p in todo)
        done = 0
        for p in todo:
            t.fs_writefile(p, files[p])
            done += len(files[p])
            out.copied.append(p)
            if progress:
                progress(p, done, total)
        stale = [p for p in info["old"] if p not in files and p != "/manifest.json"]
        for p in stale:
            if have.get(p) is not None:
                t.fs_rmfile(p)
                out.removed.append(p)
        for p, data in (extra or {}).items():
            t.fs_writefile(p, data)
        for p in remove or []:
            if t.fs_exists(p):
                t.fs_rmfile(p)
        manifest_bytes = staged_files[MANIFEST]
        if have.get(MANIFEST) != hashlib.sha256(manifest_bytes).hexdigest():
            t.fs_writefile(MANIFEST, manifest_bytes)
    except TransportExecError as e:
        said = e.error_output.strip().splitlines()
        raise UserError(f"the board at {port} refused: {said[-1] if said else 'no reason given'}") from None
    except (TransportError, SerialException, struct.error) as e:
        # struct.error: mpremote reading a raw-paste window size that never came.
        raise UserError(
            f"the board at {port} stopped answering during the deploy ({e or 'no answer'}); "
            "the board keeps the version its /manifest.json names"
        ) from None
    finally:
        # Whatever happened (a build error too), the firmware runs again: a soft
        # reset from the friendly REPL runs boot.py and main.py, as after power-on.
        try:
            t.exit_raw_repl()
            t.read_until(1, b">>> ", timeout=2)
            t.serial.write(b"\x04")
            t.serial.flush()
            # Not gone before the board has begun its reboot: on a loaded machine
            # the virtual board took this Ctrl-D after the next deploy's raw REPL
            # had opened, and rebooted under it ("unexpected read during raw
            # paste", a test's third deploy in a row).
            t.read_until(1, b"soft reboot", timeout=ANSWER_TIMEOUT_S)
        except (TransportError, SerialException, OSError):
            pass  # a board that stopped answering: already said
        finally:
            t.close()
    out.seconds = time.monotonic() - t0
    return out
