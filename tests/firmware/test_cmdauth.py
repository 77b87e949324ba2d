# Commands that prove who sent them (firmware/lib/cmdauth.py, docs/security.md):
# the HMAC, what is refused and why, and the counter kept across a reset.
# CPython, float32, MicroPython.

import binascii
import os

from cmdauth import BAD_MAC, NO_KEY, NO_MAC, STALE, Auth, hmac_sha256, read_key
from fwtest import tempdir, write

KEY = b"k" * 32
TOPIC = "park/g60/lamp/lamp-1/cmd"


def _sign(key, topic, body):
    mac = binascii.hexlify(hmac_sha256(key, topic.encode() + b"\n" + body))
    return body[:-1] + b',"mac":"' + mac + b'"}'


def _auth(key=KEY):
    d = tempdir()
    return Auth(os, key, d + "/cmd.ctr"), d


def test_hmac_is_rfc_4231s():
    # RFC 4231, test cases 2 and 6 (a key longer than the block).
    got = hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert binascii.hexlify(got) == b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    got = hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert binascii.hexlify(got) == b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_a_signed_command_is_accepted_once_and_its_counter_survives_a_reset():
    auth, d = _auth()
    body = b'{"id": "c-1", "cmd": "status", "ctr": 5}'
    got, why = auth.signed(TOPIC, _sign(KEY, TOPIC, body))
    assert why is None and got == body
    assert auth.fresh(5) is None
    # The same counter again (a replay), or an older one, is refused.
    assert auth.fresh(5).startswith(STALE) and auth.fresh(4).startswith(STALE)
    assert auth.refused == 2
    # After a reset the last counter is read back from flash.
    again = Auth(os, KEY, d + "/cmd.ctr")
    assert again.last == 5 and again.fresh(5).startswith(STALE) and again.fresh(6) is None
    for bad in (None, "7", 0, -1, True, 7.5):
        assert again.fresh(bad) == '"ctr" must be a whole number above 0'


def test_what_is_refused_and_why():
    auth, _ = _auth()
    body = b'{"id": "c-1", "cmd": "resolve", "alarm": "a-1-1", "ctr": 9}'
    good = _sign(KEY, TOPIC, body)
    cases = (
        (body, NO_MAC),  # no authenticator at all
        (good[:-3] + b'"}', NO_MAC),  # cut short
        (good[:-4] + b'zz"}', BAD_MAC),  # not hex
        (good[:-66] + good[-66:-2].upper() + b'"}', BAD_MAC),  # the same digits, upper case
        (good.replace(b"a-1-1", b"a-1-2"), BAD_MAC),  # one field changed
        (_sign(b"x" * 32, TOPIC, body), BAD_MAC),  # another key
        (_sign(KEY, "park/g60/lamp/lamp-2/cmd", body), BAD_MAC),  # another device's topic
        (good.replace(b", ", b",  ", 1), BAD_MAC),  # the same JSON, other bytes
        (b"", NO_MAC),
        (b"\xff" * 80, NO_MAC),
    )
    for payload, why in cases:
        got, reason = auth.signed(TOPIC, payload)
        assert got is None and reason == why, (payload, reason)
    assert auth.refused == len(cases) and auth.why == cases[-1][1]
    none, _ = _auth(None)
    assert none.signed(TOPIC, good) == (None, NO_KEY)


def test_the_key_file():
    d = tempdir()
    write(d + "/k", "6b" * 32 + "\n")
    assert read_key(d + "/k") == KEY
    write(d + "/k", "not hex")
    assert read_key(d + "/k") is None
    write(d + "/k", "6b" * 4)  # too short to be a key
    assert read_key(d + "/k") is None
    assert read_key(d + "/none") is None
