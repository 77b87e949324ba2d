"""The centre's commands (firmware/lib/uplink.py) against any message on the
command topic: each gets exactly one reply, and none raises into the MQTT client
(a packet whose handling raised would be read again at every pass, until the
watchdog reset the board)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from uplink import CommandError, Uplink

BASE = "park/g60/lamp/lamp-1"


class Client:
    on_puback = on_message = None
    qos = 1  # of the message being handled
    connects = 1
    max_packet = 2048

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
    commands.map(lambda m: json.dumps(m).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
)


def sent_by(u):
    """The replies the uplink queued, as the centre reads them."""
    return [json.loads(r[1]) for r in u._replies]


@given(st.lists(payloads, min_size=1, max_size=5))
def test_every_command_gets_one_reply_and_none_raises(messages):
    u = Uplink(Client(), None, BASE, "lamp-1")
    u.handlers = HANDLERS
    for m in messages:
        u._message(BASE + "/cmd", m)  # raises nothing
    sent = sent_by(u)
    assert len(sent) == len(messages) == u.commands
    for reply in sent:
        assert isinstance(reply["ok"], bool)
        assert reply["cmd"] is None or isinstance(reply["cmd"], str)  # a name, known or not
        if not reply["ok"]:
            assert isinstance(reply["reason"], str) and reply["reason"]
    # Counted once each: a command sent again with the same id is answered with
    # its first reply, and not counted (nor run) again.
    seen = set()
    first = []
    for reply in sent:
        if reply["id"] is None or reply["id"] not in seen:
            first.append(reply)
        seen.add(reply["id"])
    assert u.repeated == len(sent) - len(first)
    assert u.bad_commands == sum(not r["ok"] for r in first)
    assert u.failed == sum(r.get("reason", "").startswith("failed: KeyError") for r in first)


def test_a_handler_that_fails_inside_is_refused_with_its_failure():
    u = Uplink(Client(), None, BASE, "lamp-1")
    u.handlers = HANDLERS
    u._message(BASE + "/cmd", b'{"id": "c-1", "cmd": "broken"}')
    refused = {"id": "c-1", "cmd": "broken", "ok": False, "reason": "failed: KeyError: 'missing'"}
    assert sent_by(u) == [refused]
    assert u.failed == u.bad_commands == 1


def test_a_message_whose_handler_fails_is_dropped_and_said():
    client = Client()
    u = Uplink(client, None, BASE, "lamp-1")
    u.listen("park/g60/roster", broken)
    u._message("park/g60/roster", b"{}")  # raises nothing
    assert u.failed == 1 and u.commands == 0
    [(name, detail)] = client.events
    assert name == "uplink" and detail.startswith("message on park/g60/roster dropped: TypeError")


# --- over the real MQTT client and a broker (tests/firmware/fakebroker.py) ----

sys.path.insert(0, str(Path(__file__).parent / "firmware"))
import cmdreply  # noqa: E402
from fakebroker import Broker  # noqa: E402
from mqtt import Client as MqttClient  # noqa: E402
from uplink import LOG_EACH, ReplyLog  # noqa: E402


class NoEvents:
    pending = ()


class Device:
    """A lamp's uplink and MQTT client over `broker`, its reply log in `folder`.
    What a handler did is on flash once the pass that ran it has logged its
    reply (the app's order: the effect is written before the uplink steps);
    a power cut before that loses it, as it loses the PUBACK."""

    def __init__(self, broker: Broker, folder: Path):
        self.broker = broker
        self.folder = folder
        self.done: dict[str, int] = {}  # id -> runs that reached the flash
        self.now = 0
        self.boot()

    def boot(self):
        self.running: list[str] = []  # ids run in this pass, not yet on flash
        self.client = MqttClient(self.broker.opener, "lamp-1", 60)
        log = ReplyLog(os, str(self.folder / "replies"))
        self.up = Uplink(self.client, NoEvents(), BASE, "lamp-1", log=log)
        self.up.handlers = {"act": self._act, "big": self._big, "refuse": self._refuse}

    def _act(self, msg):
        self.running.append(msg["id"])
        return {"run": self.done.get(msg["id"], 0) + 1}

    def _big(self, msg):
        self.running.append(msg["id"])
        return {"blob": "x" * 2100}

    def _refuse(self, msg):
        raise CommandError("no, because " + "x" * 2100)

    def step(self, cut=False):
        self.now += 10
        self.client.step(self.now)
        if cut:  # the power goes before the pass ends
            self.broker.drop()
            self.boot()
            return
        self.up.step(self.now)
        for cid in self.running:
            self.done[cid] = self.done.get(cid, 0) + 1
        self.running = []
        self.client.send()
        self.broker.pump()


ids = st.sampled_from([f"c-{i}" for i in range(LOG_EACH)])  # all within the log's memory
one_command = st.tuples(ids, st.sampled_from(["act", "act", "big", "refuse"]))
actions = st.one_of(
    st.tuples(st.just("burst"), st.lists(one_command, min_size=1, max_size=100)),
    st.tuples(st.just("passes"), st.integers(1, 5)),
    st.tuples(st.just("drop"), st.none()),
    st.tuples(st.just("cut"), st.none()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(actions, min_size=1, max_size=12))
def test_every_command_answered_with_one_reply_none_run_twice_none_stuck(tmp_path_factory, script):
    broker = Broker(BASE + "/cmd")
    dev = Device(broker, tmp_path_factory.mktemp("flash"))
    dev.step()
    sent = set()
    for what, arg in script:
        if what == "burst":
            for cid, cmd in arg:
                broker.command(json.dumps({"id": cid, "cmd": cmd}).encode())
                sent.add(cid)
            broker.pump()
        elif what == "passes":
            for _ in range(arg):
                dev.step()
        elif what == "drop":
            broker.drop()
            dev.step()
        else:
            dev.step(cut=True)
    for _ in range(2000):  # the rest, to the end (bounded)
        if not broker.queue and not broker.unacked and not dev.up._replies and not dev.client.inflight:
            break
        dev.step()
    # Nothing stuck: every command taken and acknowledged, every reply out.
    assert not broker.queue and not broker.unacked and not dev.up._replies and not dev.client.inflight
    replies: dict[str, set[str]] = {}
    for payload in broker.replies(BASE + "/reply"):
        assert len(payload) + len(BASE + "/reply") + 9 <= 2048  # fits in a packet
        r = json.loads(payload)
        replies.setdefault(r["id"], set()).add(payload.decode())
    # Each command answered, always with its first reply; none run twice.
    assert set(replies) == sent
    assert all(len(r) == 1 for r in replies.values()), replies
    assert all(n == 1 for n in dev.done.values()), dev.done
    assert set(dev.done) <= sent
    assert cmdreply._counts(dev.up)["dropped"] == 0
