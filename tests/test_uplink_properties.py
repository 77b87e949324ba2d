"""The centre's commands (firmware/lib/uplink.py) against any message on the
command topic: each gets exactly one reply, and none raises into the MQTT client
(a packet whose handling raised would be read again at every pass, until the
watchdog reset the board)."""

from __future__ import annotations

import itertools
import json
import os
import tempfile

from cmdauth import Auth
from hypothesis import given
from hypothesis import strategies as st
from uplink import CommandError, Uplink

from sim.cmdsign import sign

BASE = "park/g60/lamp/lamp-1"
KEY = b"k" * 32
_ctr = itertools.count(1)
_DIR = tempfile.TemporaryDirectory(prefix="uplink-test-")  # removed when the run ends
_n = itertools.count()


def _uplink(client):
    n = next(_n)
    key_file = f"{_DIR.name}/{n}.key"
    with open(key_file, "w") as f:
        f.write(KEY.hex())
    return Uplink(client, None, BASE, "lamp-1", Auth(os, key_file, f"{_DIR.name}/{n}.ctr"))


def signed(payload: bytes) -> bytes:
    """A JSON object as the centre sends it: with a fresh counter and its authenticator."""
    try:
        msg = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(msg, dict):
        return payload
    return sign(KEY, BASE + "/cmd", json.dumps(dict(msg, ctr=next(_ctr))).encode())


class Client:
    on_puback = on_message = None

    def __init__(self):
        self.events = []  # what it said (log_event on the board: the console)

    def on_event(self, name, detail):
        self.events.append((name, detail))

    def subscribe(self, topic, qos):
        pass


def refuse(msg):
    raise CommandError("refused as asked")


def broken(msg):
    return msg["missing"]  # KeyError: a handler's own fault


HANDLERS = {"ok": lambda msg: None, "result": lambda msg: {"a": 1}, "refuse": refuse, "broken": broken}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
commands = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.just("centre-1"), json_values),
        "cmd": st.one_of(st.sampled_from(sorted(HANDLERS)), st.sampled_from(sorted(HANDLERS)), json_values),
        "missing": json_values,
    },
)
payloads = st.one_of(
    commands.map(lambda m: json.dumps(m).encode()).map(signed),
    commands.map(lambda m: json.dumps(m).encode()),  # unsigned: refused
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
)


@given(st.lists(payloads, min_size=1, max_size=5))
def test_every_command_gets_one_reply_and_none_raises(messages):
    u = _uplink(Client())
    u.handlers = HANDLERS
    sent = []
    u._reply = lambda obj: sent.append(json.loads(json.dumps(obj)))
    for m in messages:
        u._message(BASE + "/cmd", m)  # raises nothing
    assert len(sent) == len(messages) == u.commands
    for reply in sent:
        assert isinstance(reply["ok"], bool)
        assert reply["cmd"] is None or isinstance(reply["cmd"], str)  # a name, known or not
        if not reply["ok"]:
            assert isinstance(reply["reason"], str) and reply["reason"]
    assert u.bad_commands == sum(not r["ok"] for r in sent)
    assert u.failed == sum(r.get("reason", "").startswith("failed: KeyError") for r in sent)


def test_a_handler_that_fails_inside_is_refused_with_its_failure():
    u = _uplink(Client())
    u.handlers = HANDLERS
    sent = []
    u._reply = lambda obj: sent.append(obj)
    u._message(BASE + "/cmd", signed(b'{"id": "c-1", "cmd": "broken"}'))
    assert sent == [{"id": "c-1", "cmd": "broken", "ok": False, "reason": "failed: KeyError: 'missing'"}]
    assert u.failed == u.bad_commands == 1


def test_a_message_whose_handler_fails_is_dropped_and_said():
    client = Client()
    u = _uplink(client)
    u.listen("park/g60/roster", broken)
    u._message("park/g60/roster", b"{}")  # raises nothing
    assert u.failed == 1 and u.commands == 0
    [(name, detail)] = client.events
    assert name == "uplink" and detail.startswith("message on park/g60/roster dropped: TypeError")
