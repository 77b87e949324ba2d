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
#
# Small on purpose: it is loaded at boot and stays (every name and object here
# costs heap on the board for good).

import binascii
import hashlib
import json

# Commands whose reply may not be logged yet: those a pass takes (the uplink's
# REPLIES_KEPT waiting and 8 in the MQTT client's flight) and more.
TAKEN = 16

_TAIL = 74  # len(',"mac":"') + 64 hex digits + len('"}')


def pads(key):
    """HMAC's inner and outer padded keys (a key of at most 64 bytes)."""
    key = key + bytes(64 - len(key))
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def mac(pads, topic, data):
    """HMAC-SHA256 of topic, a newline and data, as hex."""
    h = hashlib.sha256(pads[0])
    h.update(topic.encode())
    h.update(b"\n")
    h.update(data)
    outer = hashlib.sha256(pads[1])
    outer.update(h.digest())
    return binascii.hexlify(outer.digest())


def _tag(cid):
    # A command id as the counter file keeps it: a small int, the same in every
    # runtime and boot (hash() is not, in CPython). Matched with its counter.
    return binascii.crc32(cid.encode()) & 0x3FFFFFFF


class Auth:
    """Checks commands against the key in the file `key_path` (hex; none, or not
    a key: every command is refused); keeps the last counter accepted on flash
    at `path`."""

    def __init__(self, os_module, key_path, path):
        self.os = os_module
        self.path = path
        self.pads = None
        self.last = 0
        self.refused = 0  # commands refused here (any reason)
        self.why = None  # the reason of the last refusal
        try:
            with open(key_path) as f:
                key = binascii.unhexlify(f.read().strip())
            if 16 <= len(key) <= 64:
                self.pads = pads(key)
        except (OSError, ValueError):
            pass  # no key: an unprovisioned device
        # Counter and _tag(id) of each of the last TAKEN commands accepted, one
        # after the other: one of them sent again (its reply never logged: a cut
        # came first) is let through (fresh). Small ints, no strings: little heap.
        self.taken = []
        try:
            with open(path) as f:
                kept = json.loads(f.read())
            if isinstance(kept, int):
                self.last = kept  # as an earlier version kept it: a counter alone
            else:
                self.last, self.taken = kept
        except (OSError, ValueError, TypeError):
            pass  # nothing accepted yet (littlefs renames atomically: never half a file)

    def _no(self, why):
        self.refused += 1
        self.why = why
        return why

    def signed(self, topic, payload):
        """(the signed bytes, None) when payload carries this device's authenticator
        for `topic`; (None, why) when it does not."""
        if self.pads is None:
            return None, self._no("no command key on this device: provisioning installs one")
        n = len(payload) - _TAIL
        if n < 2 or payload[n : n + 8] != b',"mac":"' or payload[-2:] != b'"}':
            return None, self._no("no authenticator")
        body = payload[:n] + b"}"
        # The hex text itself is compared (lower case, as the centre writes it): any
        # byte of the payload changed, even a digit's case, is refused.
        want = mac(self.pads, topic, body)
        diff = 0
        for i in range(64):  # every byte compared, whatever the first difference
            diff |= want[i] ^ payload[n + 8 + i]
        if diff:
            return None, self._no("bad authenticator")
        return body, None

    def seal(self, topic, text):
        """What the device publishes on `topic` (text, a JSON object) with its
        authenticator, as a command carries the centre's: the centre can tell the
        device's own from one forged with stolen broker credentials. Unchanged on a
        device without a key."""
        if self.pads is None:
            return text
        return '%s,"mac":"%s"}' % (text[:-1], mac(self.pads, topic, text.encode()).decode())

    def fresh(self, ctr, cid=None):
        """None if `ctr` (the command's counter) is above every one accepted before,
        and it is now the last (on flash, with the command's id `cid`, before the
        command acts); else why not. A command taken lately, sent again with its
        own counter and id, is let through: the broker sends a command again when
        a cut came before its reply was logged (the replies of a pass are logged
        at its end), and then it may not have acted at all. Once its reply is
        logged, cmdreply answers it from the log and never asks here."""
        if not isinstance(ctr, int) or isinstance(ctr, bool) or ctr <= 0:
            return self._no('"ctr" must be a whole number above 0')
        t = self.taken
        tag = None if cid is None else _tag(cid)
        for i in range(0, len(t) if tag is not None else 0, 2):
            if t[i] == ctr and t[i + 1] == tag:
                return None
        if ctr <= self.last:
            return self._no("replayed or stale (counter %d, last accepted %d)" % (ctr, self.last))
        taken = t[2 - 2 * TAKEN :] + [ctr, tag]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps([ctr, taken]))
        self.os.rename(tmp, self.path)
        self.last = ctr
        self.taken = taken
        return None
