# Commands that prove who sent them (docs/security.md).
#
# A command from the centre is its JSON object with a counter and an
# authenticator as its last two members, written without spaces:
#     {"id": "c-1", "cmd": "ack", "alarm": "...", "ctr": 1797855180123,"mac":"<64 hex>"}
# mac is HMAC-SHA256, with the device's own key, of the topic, a newline and
# the payload with its `,"mac":"..."` cut out (so the bytes signed are exactly
# the bytes received: no JSON re-encoding, which differs between runtimes).
# ctr only goes up: a command whose counter is not above the last one accepted
# (kept on flash, written before the command acts) is a replay or stale.
# The key is the device's alone (provisioning derives it from the park's
# master key and the device id, and writes it to the board as hex text).
# What the device publishes (events, replies, state) carries its authenticator
# the same way (seal), so the centre can tell it from a forgery.

import binascii
import hashlib

_HEAD = b',"mac":"'
_TAIL_LEN = 74  # len(_HEAD) + 64 hex digits + len('"}')

KEY_FILE = "/cmd.key"  # the device's key, hex text (written by provisioning)
COUNTER_FILE = "/cmd.ctr"  # the last counter accepted
NO_KEY = "no command key on this device: provisioning installs one"
NO_MAC = "no authenticator"
BAD_MAC = "bad authenticator"
STALE = "replayed or stale"


def _pads(key):
    """HMAC's inner and outer padded keys, made once per key."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _mac(pads, parts):
    inner = hashlib.sha256(pads[0])
    for part in parts:
        inner.update(part)
    outer = hashlib.sha256(pads[1])
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha256(key, msg):
    return _mac(_pads(key), (msg,))


def read_key(path):
    """The key in the file at `path` (hex text), or None if there is none or it is not hex."""
    try:
        with open(path) as f:
            text = f.read().strip()
        key = binascii.unhexlify(text)
    except (OSError, ValueError):
        return None
    return key if len(key) >= 16 else None


class Auth:
    """Checks commands; keeps the last counter accepted on flash at `path`."""

    def __init__(self, os_module, key, path):
        self.os = os_module
        self.key = key
        self._pads = None if key is None else _pads(key)
        self.path = path
        self.last = 0
        self.refused = 0  # commands refused here (any reason below)
        self.why = None  # the reason of the last refusal
        try:
            with open(path) as f:
                self.last = int(f.read().strip() or "0")
        except (OSError, ValueError):
            # No file: nothing accepted yet. An unreadable one (a torn write can
            # only leave the old file or the new, littlefs renames atomically).
            self.last = 0

    def _refuse(self, why):
        self.refused += 1
        self.why = why
        return why

    def signed(self, topic, payload):
        """(the signed bytes, None) when payload carries this device's authenticator
        for `topic`; (None, why) when it does not."""
        if self.key is None:
            return None, self._refuse(NO_KEY)
        n = len(payload)
        if (
            n < _TAIL_LEN + 2
            or payload[n - _TAIL_LEN : n - _TAIL_LEN + 8] != _HEAD
            or payload[n - 2 :] != b'"}'
        ):
            return None, self._refuse(NO_MAC)
        body = payload[: n - _TAIL_LEN] + b"}"
        # The hex text itself is compared (lower case, as the centre writes it): any
        # byte of the payload changed, even a digit's case, is refused.
        want = binascii.hexlify(_mac(self._pads, (topic.encode(), b"\n", body)))
        got = payload[n - _TAIL_LEN + 8 : n - 2]
        diff = 0
        for i in range(64):  # every byte compared, whatever the first difference
            diff |= want[i] ^ got[i]
        if diff:
            return None, self._refuse(BAD_MAC)
        return body, None

    def seal(self, topic, text):
        """What the device publishes on `topic` (text, a JSON object) with its
        authenticator, as a command carries the centre's: the centre can tell the
        device's own from one forged with stolen broker credentials. Unchanged on a
        device without a key."""
        if self._pads is None:
            return text
        mac = _mac(self._pads, (topic.encode(), b"\n", text.encode()))
        return '%s,"mac":"%s"}' % (text[:-1], binascii.hexlify(mac).decode())

    def fresh(self, ctr):
        """None if `ctr` (the command's counter) is above every one accepted before,
        and it is now the last (on flash before the command acts); else why not."""
        if not isinstance(ctr, int) or isinstance(ctr, bool) or ctr <= 0:
            return self._refuse('"ctr" must be a whole number above 0')
        if ctr <= self.last:
            return self._refuse("%s (counter %d, last accepted %d)" % (STALE, ctr, self.last))
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % ctr)
        self.os.rename(tmp, self.path)
        self.last = ctr
        return None


def load(os_module, key_path=KEY_FILE, counter_path=COUNTER_FILE):
    """The device's Auth, from its key file (none: every command is refused)."""
    return Auth(os_module, read_key(key_path), counter_path)
