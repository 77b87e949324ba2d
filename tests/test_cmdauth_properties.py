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

from cmdauth import Auth
from hypothesis import given, settings
from hypothesis import strategies as st
from uplink import Uplink

from sim.cmdsign import derive_key, sign

BASE = "park/g60/lamp/lamp-1"
TOPIC = BASE + "/cmd"
MASTER = b"m" * 32
KEY = derive_key(MASTER, "lamp-1")
_DIR = tempfile.TemporaryDirectory(prefix="cmdauth-test-")
_n = itertools.count()


class Client:
    on_puback = on_message = None

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
    u = Uplink(Client(), None, BASE, "lamp-1", Auth(os, key_file, f"{_DIR.name}/{n}.ctr"))
    u.handlers = {"resolve": ran.append, "override": ran.append, "status": ran.append}
    replies: list[dict] = []
    u._reply = lambda obj: replies.append(obj)
    return u, ran, replies


def _valid(ctr: int, cid: str = "c-1") -> bytes:
    body = json.dumps({"id": cid, "cmd": "resolve", "alarm": "lamp-1-3-17", "ctr": ctr}).encode()
    return sign(KEY, TOPIC, body)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_are_refused(payload):
    u, ran, replies = _device()
    u._message(TOPIC, payload)
    assert ran == [] and [r["ok"] for r in replies] == [False] and u.auth.refused == 1


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
    assert ran == [] and replies[0]["ok"] is False and u.auth.refused == 1


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
        u._message(TOPIC, _valid(ctr, f"c-{i}"))  # the same bytes again: a replay
        accepted = ctr > best
        best = max(best, ctr)
        assert len(ran) == sum(1 for r in replies if r["ok"])
        assert replies[-2]["ok"] is accepted and replies[-1]["ok"] is False
        assert "replayed or stale" in replies[-1]["reason"]
    # Each command that ran had a counter above every one before it.
    assert [r["id"] for r in replies if r["ok"]] == [
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
