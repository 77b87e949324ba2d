"""Who may command a device (docs/security.md), as properties over the whole
command path (firmware/lib/uplink.py with cmdauth): any bytes, any JSON and any
mutation of a validly signed command is refused with a reason and counted and
runs nothing; a valid command runs exactly once. Signed by the centre's own
implementation (sim/cmdsign.py, CPython's hmac), checked by the firmware's."""

from __future__ import annotations

import itertools
import json
import os
import tempfile

import cmdreply
from cmdauth import Auth
from hypothesis import given, settings
from hypothesis import strategies as st
from uplink import ReplyLog, Uplink

from sim.cmdsign import derive_key, sign, verify

BASE = "park/g60/lamp/lamp-1"
TOPIC = BASE + "/cmd"
MASTER = b"m" * 32
KEY = derive_key(MASTER, "lamp-1")
_DIR = tempfile.TemporaryDirectory(prefix="cmdauth-test-")
_n = itertools.count()


class Client:
    on_puback = on_message = None
    qos = 1  # of the message being handled
    connects = 1
    max_packet = 2048

    def on_event(self, name, detail):
        pass

    def subscribe(self, topic, qos):
        pass


def _device():
    ran: list[dict] = []
    n = next(_n)
    key_file = f"{_DIR.name}/{n}.key"
    with open(key_file, "w") as f:
        f.write(KEY.hex())
    log = ReplyLog(os, f"{_DIR.name}/{n}.replies")
    u = Uplink(Client(), None, BASE, "lamp-1", log=log, auth=Auth(os, key_file, f"{_DIR.name}/{n}.ctr"))
    u.handlers = {"resolve": ran.append, "override": ran.append, "status": ran.append}
    replies = Replies(u)
    message = u._message

    def taken(topic: str, payload: bytes) -> None:
        message(topic, payload)
        replies._take()

    u._message = taken  # type: ignore[method-assign]
    return u, ran, replies


class Replies(list):
    """What the device answered, each reply's authenticator checked and taken off
    (the queue is emptied as if the client had sent them, so none waits)."""

    def __init__(self, u: Uplink):
        super().__init__()
        self.u = u

    def _take(self) -> None:
        cmdreply.keep(self.u)  # logged first, as the pass does before sending
        for r in self.u._replies:
            body = verify(KEY, BASE + "/reply", r[1])
            assert body is not None, r[1]
            self.append(json.loads(body))
        self.u._replies.clear()


def _valid(ctr: int, cid: str = "c-1") -> bytes:
    body = json.dumps({"id": cid, "cmd": "resolve", "alarm": "lamp-1-3-17", "ctr": ctr}).encode()
    return sign(KEY, TOPIC, body)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_are_refused(payload):
    u, ran, replies = _device()
    u._message(TOPIC, payload)
    assert ran == [] and [r["ok"] for r in replies] == [False] and u.auth is not None and u.auth.refused == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


@given(json_values, st.booleans())
def test_any_json_without_the_devices_authenticator_is_refused(value, with_mac_field):
    if with_mac_field and isinstance(value, dict):
        value["mac"] = "00" * 32  # a field of the right shape, not a valid authenticator
    u, ran, replies = _device()
    u._message(TOPIC, json.dumps(value, separators=(",", ":")).encode())
    assert ran == [] and replies[0]["ok"] is False and u.auth is not None and u.auth.refused == 1


@settings(max_examples=300)
@given(st.data())
def test_a_signed_command_with_any_byte_changed_is_refused(data):
    good = _valid(1000)
    i = data.draw(st.integers(0, len(good) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda b: b != good[i]))
    u, ran, replies = _device()
    u._message(TOPIC, good[:i] + bytes([b]) + good[i + 1 :])
    assert ran == [] and replies[0]["ok"] is False


@given(st.permutations(["id", "cmd", "alarm", "ctr"]))
def test_the_same_fields_in_another_order_are_refused(order):
    fields = {"id": "c-1", "cmd": "resolve", "alarm": "lamp-1-3-17", "ctr": 1000}
    good = _valid(1000)
    body = json.dumps({k: fields[k] for k in order}).encode()
    mac = good[good.rindex(b',"mac"') :]
    u, ran, _ = _device()
    u._message(TOPIC, body[:-1] + mac)
    assert len(ran) == (1 if list(order) == ["id", "cmd", "alarm", "ctr"] else 0)


@given(st.lists(st.integers(1, 50), min_size=1, max_size=12))
def test_a_valid_command_runs_exactly_once_and_old_counters_never(counters):
    u, ran, replies = _device()
    best = 0
    for i, ctr in enumerate(counters):
        u._message(TOPIC, _valid(ctr, f"c-{i}"))
        n = len(ran)
        # The same bytes again (the broker's resend, or a replay): its first reply,
        # and nothing run. Another id with the same counter: refused.
        u._message(TOPIC, _valid(ctr, f"c-{i}"))
        u._message(TOPIC, _valid(ctr, f"again-{i}"))
        accepted = ctr > best
        best = max(best, ctr)
        assert len(ran) == n
        assert replies[-3]["ok"] is accepted and replies[-2] == replies[-3]
        assert replies[-1]["ok"] is False and "replayed or stale" in replies[-1]["reason"]
    # Each command that ran had a counter above every one before it, and ran once.
    assert [m["id"] for m in ran] == [
        f"c-{i}" for i, c in enumerate(counters) if c > max(counters[:i], default=0)
    ]


def test_another_devices_key_and_topic_are_refused():
    u, ran, replies = _device()
    other = derive_key(MASTER, "lamp-2")
    assert other != KEY
    body = json.dumps({"id": "c-1", "cmd": "status", "ctr": 5}).encode()
    u._message(TOPIC, sign(other, TOPIC, body))  # signed with lamp-2's key
    u._message(TOPIC, sign(KEY, "park/g60/lamp/lamp-2/cmd", body))  # meant for lamp-2
    assert ran == [] and [r["reason"] for r in replies] == ["bad authenticator"] * 2
    u._message(TOPIC, sign(KEY, TOPIC, body))
    assert len(ran) == 1 and replies[-1]["ok"]
