# Commands that prove who sent them (firmware/lib/cmdauth.py, docs/security.md):
# the HMAC, what is refused and why, and the counter kept across a reset.
# CPython, float32, MicroPython.

import os

from cmdauth import TAKEN, Auth, mac, pads
from fwtest import tempdir, write

KEY_HEX = "6b" * 32
KEY = b"k" * 32
TOPIC = "park/g60/lamp/lamp-1/cmd"
NO_KEY = "no command key on this device: provisioning installs one"


def _sign(key, topic, body):
    return body[:-1] + b',"mac":"' + mac(pads(key), topic, body) + b'"}'


def _auth(key_hex=KEY_HEX):
    d = tempdir()
    if key_hex is not None:
        write(d + "/cmd.key", key_hex + "\n")
    return Auth(os, d + "/cmd.key", d + "/cmd.ctr"), d


def test_the_mac_is_hmac_sha256_of_the_topic_a_newline_and_the_data():
    # The expected values come from CPython's hmac module (another implementation):
    # RFC 4231's test case 2, its message split at a newline, and a 64-byte key.
    got = mac(pads(b"Jefe"), "what do ya want", b" for nothing?")
    assert got == b"33b1c695fae549fc9c7e6c6be4eda518a249d2b8d9b4fd7abcdc5e13057092ba"
    got = mac(pads(b"\xaa" * 64), "park/x", b"y" * 200)
    assert got == b"a3d4ec0746457664c1f6a83a90578718b6f40622440bb2b6d8c61066009b3561"


def test_a_signed_command_is_accepted_once_and_its_counter_survives_a_reset():
    auth, d = _auth()
    body = b'{"id": "c-1", "cmd": "status", "ctr": 5}'
    got, why = auth.signed(TOPIC, _sign(KEY, TOPIC, body))
    assert why is None and got == body
    assert auth.fresh(5) is None
    # The same counter again (a replay), or an older one, is refused.
    assert auth.fresh(5).startswith("replayed or stale") and auth.fresh(4).startswith("replayed or stale")
    assert auth.refused == 2
    # After a reset the last counter is read back from flash.
    again = Auth(os, d + "/cmd.key", d + "/cmd.ctr")
    assert again.last == 5 and again.fresh(5).startswith("replayed or stale") and again.fresh(6) is None
    for bad in (None, "7", 0, -1, True, 7.5):
        assert again.fresh(bad) == '"ctr" must be a whole number above 0'


def test_commands_taken_and_sent_again_after_a_cut_are_let_through():
    # Campaign 7, trial 92: a resolve took its counter, the power went before its
    # effect and reply were on flash, and the broker's resend was refused as a
    # replay: the resolve was lost. Campaign 20, trial 30: two commands taken in
    # one pass, cut before their replies were logged, the first sent again was
    # refused (counter 3, last accepted 4). A command taken lately passes with its
    # own counter and id (after a reset too); with another id, or a counter of
    # its own not taken, it does not.
    auth, d = _auth()
    assert auth.fresh(3, "c-3") is None and auth.fresh(4, "c-4") is None
    again = Auth(os, d + "/cmd.key", d + "/cmd.ctr")
    assert again.last == 4
    assert again.fresh(3, "c-3") is None and again.fresh(4, "c-4") is None and again.refused == 0
    assert again.fresh(4, "c-x").startswith("replayed or stale")
    assert again.fresh(2, "c-3").startswith("replayed or stale")
    assert again.fresh(4).startswith("replayed or stale")  # no id: nothing to match
    # An id with a newline in it is kept whole (JSON allows it in a string).
    assert again.fresh(5, "c\n5") is None
    assert Auth(os, d + "/cmd.key", d + "/cmd.ctr").fresh(5, "c\n5") is None
    # Only the last TAKEN are kept: an older one is a replay again.
    for n in range(6, 6 + TAKEN):
        assert again.fresh(n, "c-%d" % n) is None
    assert again.fresh(5, "c\n5").startswith("replayed or stale")
    assert again.fresh(6, "c-6") is None  # the oldest of the last TAKEN
    # A counter kept by the earlier version (the number alone) is read as the last.
    write(d + "/cmd.ctr", "41")
    old = Auth(os, d + "/cmd.key", d + "/cmd.ctr")
    assert old.last == 41 and old.fresh(41, "c-41").startswith("replayed or stale")


def test_what_is_refused_and_why():
    auth, _ = _auth()
    body = b'{"id": "c-1", "cmd": "resolve", "alarm": "a-1-1", "ctr": 9}'
    good = _sign(KEY, TOPIC, body)
    cases = (
        (body, "no authenticator"),  # none at all
        (good[:-3] + b'"}', "no authenticator"),  # cut short
        (good[:-4] + b'zz"}', "bad authenticator"),  # not hex
        (good[:-66] + good[-66:-2].upper() + b'"}', "bad authenticator"),  # the same digits, upper case
        (good.replace(b"a-1-1", b"a-1-2"), "bad authenticator"),  # one field changed
        (_sign(b"x" * 32, TOPIC, body), "bad authenticator"),  # another key
        (_sign(KEY, "park/g60/lamp/lamp-2/cmd", body), "bad authenticator"),  # another device's topic
        (good.replace(b", ", b",  ", 1), "bad authenticator"),  # the same JSON, other bytes
        (b"", "no authenticator"),
        (b"\xff" * 80, "no authenticator"),
    )
    for payload, why in cases:
        got, reason = auth.signed(TOPIC, payload)
        assert got is None and reason == why, (payload, reason)
    assert auth.refused == len(cases) and auth.why == cases[-1][1]


def test_the_key_file():
    for key_hex in (None, "not hex", "6b" * 4, "6b" * 65):  # none, not hex, too short, too long
        auth, _ = _auth(key_hex)
        body = b'{"id": "c-1", "cmd": "status", "ctr": 5}'
        assert auth.signed(TOPIC, _sign(KEY, TOPIC, body)) == (None, NO_KEY)
        assert auth.seal(TOPIC, "{}") == "{}"  # a device without a key signs nothing
    auth, _ = _auth()
    sealed = auth.seal("park/g60/lamp/lamp-1/state", '{"a": 1}')
    assert (
        sealed == '{"a": 1,"mac":"%s"}' % mac(pads(KEY), "park/g60/lamp/lamp-1/state", b'{"a": 1}').decode()
    )
