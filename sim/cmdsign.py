"""The centre's side of authenticated commands (docs/security.md): the device
keys, derived from the park's master key and each device id, and commands
signed as firmware/lib/cmdauth.py checks them. Used by the simulated centre
and by parkctl's centre tools; an independent implementation (CPython's hmac)
of what the firmware checks with its own."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from pathlib import Path
from typing import Any

# The simulator's master key (never a park's): each simulated board gets the key
# derived from it for its device id, as provisioning gives a real board its own,
# and the simulated centre signs with it; parkctl's centre tools do the same
# against a simulation given it as $PARK_COMMAND_KEY.
SIM_MASTER = bytes.fromhex("5a1d0c0ffee5eed5" * 4)
KEY_FILE = "/cmd.key"  # on the board, as hex text
DEFAULT_UID = b"\x24\x0a\xc4\x00\x00\x01"  # a simulated board's chip id (sim/runner.py)


def derive_key(master: bytes, device: str) -> bytes:
    """The device's own key: knowing it tells nothing of another device's."""
    return hmac.new(master, b"park command key\n" + device.encode(), hashlib.sha256).digest()


def device_id(app: str, config: dict, uid: bytes = DEFAULT_UID) -> str:
    """The id a simulated board's firmware takes: its configuration's, or the app's
    prefix and its chip id (firmware/lib/boardbase.py)."""
    return config.get("device") or f"{app}-{uid.hex()}"


def sim_key_file(app: str, config: dict, uid: bytes = DEFAULT_UID) -> dict[str, bytes]:
    """The simulated board's command key file."""
    return {KEY_FILE: derive_key(SIM_MASTER, device_id(app, config, uid)).hex().encode()}


def device_of(topic: str) -> str:
    """The device a command topic park/<site>/<app>/<device>/cmd is for."""
    return topic.split("/")[3]


def parse_master(text: str, where: str) -> bytes:
    """The park's master key from its hex text (32 bytes or more); ValueError names `where`."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"{where}: the command key must be hex digits") from None
    if len(key) < 32:
        raise ValueError(f"{where}: the command key must be at least 32 bytes (64 hex digits)")
    return key


def mac(key: bytes, topic: str, body: bytes) -> str:
    return hmac.new(key, topic.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def sign(key: bytes, topic: str, body: bytes) -> bytes:
    """The payload for `topic`: the JSON object `body` (bytes) with its authenticator."""
    if not body.endswith(b"}"):
        raise ValueError("a command is a JSON object")
    return body[:-1] + b',"mac":"' + mac(key, topic, body).encode() + b'"}'


def verify(key: bytes, topic: str, payload: bytes) -> bytes | None:
    """The JSON object a device published on `topic`, without its authenticator,
    if that is the device's (signed with `key`); None if not (forged, changed, or
    from a device without a key)."""
    tail = 8 + 64 + 2  # ,"mac":" + 64 hex + "}
    if len(payload) < tail + 2 or payload[-tail : -tail + 8] != b',"mac":"' or payload[-2:] != b'"}':
        return None
    body = payload[:-tail] + b"}"
    got = payload[-tail + 8 : -2].decode("ascii", "replace")
    return body if hmac.compare_digest(got, mac(key, topic, body)) else None


class Counter:
    """The commands' counter: milliseconds of the centre's clock, and never the
    same twice in this process (a device accepts only a counter above the last)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1_000_000)
            return self._last


COUNTER = Counter()


def command(key: bytes, topic: str, cmd: dict[str, Any], ctr: int | None = None) -> bytes:
    """A signed command for `topic`: `cmd` with its counter and authenticator."""
    body = json.dumps(dict(cmd, ctr=COUNTER.next() if ctr is None else ctr)).encode()
    return sign(key, topic, body)


def deployed_files(board: dict) -> dict[str, bytes]:
    """The app the scenario says is deployed (`deployed DIR`: its files as on the
    board) and the release key (`release key FILE`, as /release.pub)."""
    files: dict[str, bytes] = {}
    if board.get("deployed"):
        root = Path(board["deployed"])
        for f in sorted(root.rglob("*")):
            if f.is_file():
                files["/" + f.relative_to(root).as_posix()] = f.read_bytes()
    if board.get("release_key"):
        files["/release.pub"] = Path(board["release_key"]).read_bytes()
    return files
