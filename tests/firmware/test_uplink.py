# The centre's commands through the uplink and the real MQTT client, against a
# scripted broker: every command answered once, never run twice, no reply
# stuck at the head of the queue, a full queue pushing back (issue 20, finding
# 5). CPython, float32, MicroPython.

import gc
import json
import os

from fakebroker import Broker, packets
from fwtest import MICROPYTHON, tempdir
from mqtt import Client
from uplink import LOG_EACH, REPLIES_KEPT, CommandError, ReplyLog, Uplink

BASE = "park/g60/lamp/lamp-1"


class NoEvents:
    """A journal with nothing to deliver."""

    pending = ()


class Rig:
    """An uplink on a real MQTT client, and the broker's side (fakebroker.py)."""

    def __init__(self, log_dir=None, broker=None, max_inflight=20):
        self.broker = broker or Broker(BASE + "/cmd", max_inflight)
        self.runs = {}  # command id -> how many times a handler ran it
        self.log_dir = log_dir
        self.now = 0
        self.boot()

    def boot(self):
        """Power on (RAM is new; the flash and the broker are what they were)."""
        self.client = self.up = None
        gc.collect()
        self.client = Client(self.broker.opener, "lamp-1", 60)
        log = None if self.log_dir is None else ReplyLog(os, self.log_dir + "/replies")
        self.up = Uplink(self.client, NoEvents(), BASE, "lamp-1", log=log)
        self.up.handlers = {
            "act": self._act,
            "big": self._big,
            "refuse": self._refuse,
            "status": self._status,
        }

    def _act(self, msg):
        self.runs[msg["id"]] = self.runs.get(msg["id"], 0) + 1
        return {"n": self.runs[msg["id"]]}

    def _big(self, msg):
        self.runs[msg["id"]] = self.runs.get(msg["id"], 0) + 1
        return {"blob": "x" * 3000}

    def _refuse(self, msg):
        raise CommandError("because " * 400)

    def _status(self, msg):
        return {"state": "fine"}

    def send(self, payload):
        self.broker.command(payload)

    def step(self, n=1):
        """n passes, as the app makes them: the client reads and writes, the
        uplink sends; the broker answers in between."""
        for _ in range(n):
            self.now += 10
            self.client.step(self.now)
            self.up.step(self.now)
            self.client.send()
            self.broker.pump()

    @property
    def replies(self):
        return self.replies_from(0)

    def replies_from(self, k):
        """The replies published, from the k-th on."""
        return [json.loads(p) for p in self.broker.replies(BASE + "/reply")[k:]]


def test_a_deeply_nested_command_is_refused_with_a_reply():
    r = Rig()
    # As deep as a packet allows: RecursionError in CPython; MicroPython's parser
    # may read it. Either way, one reply each (it used to be dropped, no reply).
    deep = b"[" * 1000 + b"]" * 1000
    r.send(deep)
    r.step(4)
    r.send(b'{"id": "c-2", "cmd": "act", "x": ' + deep[20:-20] + b"}")
    deep = None
    r.step(4)
    assert len(r.replies) == 2 and not r.broker.unacked and not r.broker.queue
    first, second = r.replies
    assert first["ok"] is False and first["id"] is None
    assert first["reason"] == "not a JSON object" or first["reason"].startswith(
        "cannot be read: nested too deeply ("
    )
    assert second == {"id": "c-2", "cmd": "act", "ok": True, "result": {"n": 1}} or (
        second["id"] is None and second["reason"].startswith("cannot be read: nested too deeply (")
    )
    assert r.up.commands == 2 and r.up.failed == 0


def test_a_command_nested_deeper_than_any_parser_reads_is_refused():
    # (A broker that allows bigger packets.) CPython's parser raises RecursionError;
    # MicroPython's grows a stack of its own, and raises MemoryError when the heap
    # has no room for it, else finds the end (ValueError). A reply either way.
    u = Uplink(Client(Broker(BASE + "/cmd").opener, "lamp-1"), NoEvents(), BASE, "lamp-1")
    u._message(BASE + "/cmd", b"[" * 3000)
    assert u.commands == u.bad_commands == 1 and u.failed == 0
    [(key, text, _)] = u._replies
    reply = json.loads(text)
    assert key is None and reply["ok"] is False and reply["id"] is None
    assert reply["reason"].startswith("cannot be read: nested too deeply (") or (
        MICROPYTHON and reply["reason"] == "not JSON"
    )


def test_a_reply_too_big_is_replaced_and_the_next_ones_go_out():
    r = Rig()
    r.send(b'{"id": "c-1", "cmd": "big"}')
    r.send(b'{"id": "c-2", "cmd": "refuse"}')
    r.send(b'{"id": "c-3", "cmd": "act"}')
    r.step(4)
    assert [x["id"] for x in r.replies] == ["c-1", "c-2", "c-3"]
    big, refused, done = r.replies
    # Done, but what it gave cannot go: said, in a reply that fits.
    assert big["ok"] is True and "result" not in big
    assert big["error"].startswith("the reply (") and "is too big to send (at most " in big["error"]
    assert big["error"].endswith("its result is left out")
    # Refused with a reason too long: as much of the reason as fits.
    assert refused["ok"] is False and refused["error"].endswith("its reason is cut short")
    assert refused["reason"].startswith("because because") and refused["reason"].endswith("...")
    assert 900 < len(json.dumps(refused)) <= r.up._room
    assert done == {"id": "c-3", "cmd": "act", "ok": True, "result": {"n": 1}}
    assert r.up.oversized == 2 and r.client.malformed == 0


def test_a_command_sent_again_is_answered_with_its_first_reply_not_run_again():
    d = tempdir()
    r = Rig(d)
    r.send(b'{"id": "c-1", "cmd": "act"}')
    r.send(b'{"id": "c-1", "cmd": "act"}')  # in the same read: its first reply is still queued
    r.step(4)
    r.send(b'{"id": "c-1", "cmd": "act"}')  # later: its first reply is in the log
    r.step(5)
    assert r.runs == {"c-1": 1}
    assert r.replies == [{"id": "c-1", "cmd": "act", "ok": True, "result": {"n": 1}}] * 3
    assert r.up.repeated == 2
    # After a reboot (RAM gone), from the log on flash.
    r.boot()
    r.send(b'{"id": "c-1", "cmd": "act"}')
    r.step(5)
    assert r.runs == {"c-1": 1} and len(r.replies) == 4 and r.replies[3] == r.replies[0]


def test_the_reply_log_keeps_the_last_commands_and_is_bounded():
    d = tempdir()
    r = Rig(d)
    for i in range(3 * LOG_EACH):
        r.send(('{"id": "c-%d", "cmd": "act"}' % i).encode())
        r.step(4)
    assert sorted(os.listdir(d)) == ["replies", "replies.old"]
    assert len(r.up.log.ids) <= 2 * LOG_EACH
    before = len(r.broker.replies(BASE + "/reply"))
    r.boot()
    # The last LOG_EACH at least are remembered across a reboot; the oldest are not.
    for i in range(2 * LOG_EACH, 3 * LOG_EACH):
        r.send(('{"id": "c-%d", "cmd": "act"}' % i).encode())
    r.send(b'{"id": "c-0", "cmd": "act"}')
    r.step(30)
    assert not r.broker.queue and not r.broker.unacked
    assert r.runs == dict(("c-%d" % i, 2 if i == 0 else 1) for i in range(3 * LOG_EACH))
    # (A reply may come twice: QoS 1, sent again after a reconnect; the same each time.)
    later = r.replies_from(before)
    got = set(x["id"] for x in later)
    assert got == set("c-%d" % i for i in [0] + list(range(2 * LOG_EACH, 3 * LOG_EACH))), got
    assert [x["result"]["n"] for x in later if x["id"] == "c-0"][0] == 2
    assert set(x["result"]["n"] for x in later if x["id"] != "c-0") == {1}


def test_a_command_is_acknowledged_only_once_the_broker_has_its_reply():
    d = tempdir()
    r = Rig(d)
    r.step()
    r.send(b'{"id": "c-1", "cmd": "act"}')
    r.broker.pump()
    r.client.step(r.now + 1)  # read: the handler ran, but no PUBACK yet
    r.client.send()
    assert r.runs == {"c-1": 1}
    assert not [p for p in packets(r.broker.sock.sent)[0] if p[0] & 0xF0 == 0x40]
    # The power goes now: the broker sends it again, and it runs again (what it
    # did before the cut never reached the flash, nor was anyone told).
    r.broker.drop()
    r.boot()
    r.step(5)
    assert r.runs == {"c-1": 2} and len(r.replies) == 1 and not r.broker.unacked
    # Now with its reply logged and sent, but the power gone before the broker's
    # PUBACK of it came: the command comes again after the reboot, and is answered
    # from the log, not run again.
    r.send(b'{"id": "c-2", "cmd": "act"}')
    r.step()  # taken
    r.step()  # logged, sent
    assert len(r.replies) == 2 and [m[1] for m in r.broker.unacked] == [b'{"id": "c-2", "cmd": "act"}']
    r.broker.drop()
    r.boot()
    r.step(5)
    assert r.runs == {"c-1": 2, "c-2": 1} and not r.broker.unacked
    assert r.replies[2] == r.replies[1] == {"id": "c-2", "cmd": "act", "ok": True, "result": {"n": 1}}


def test_a_full_reply_queue_pushes_back_and_every_command_is_answered():
    r = Rig(tempdir())
    r.step()
    # A burst: the broker has 20 in flight towards the device, the client room for
    # 8 replies in flight and the queue for REPLIES_KEPT more; the rest stay with
    # the broker, unacknowledged, and come again at the next connect. (Once, the
    # queue dropped all but the last 8 waiting, silently.)
    n = 40
    for i in range(n):
        r.send(('{"id": "c-%d", "cmd": "act"}' % i).encode())
    r.broker.pump()
    r.client.step(r.now + 1)
    assert r.up.commands == REPLIES_KEPT and r.client.refused == 20 - REPLIES_KEPT, (
        r.up.commands,
        r.client.refused,
        gc.mem_free(),
    )
    r.step(100)
    assert not r.broker.queue and not r.broker.unacked
    assert sorted(set(x["id"] for x in r.replies)) == sorted("c-%d" % i for i in range(n))
    assert r.runs == dict(("c-%d" % i, 1) for i in range(n))
    # The counts, in the status command's result.
    r.send(b'{"id": "st", "cmd": "status"}')
    r.step(6)
    [status] = [x for x in r.replies if x["id"] == "st"]
    counts = status["result"]["commands"]
    assert status["result"]["state"] == "fine"
    n += 1
    assert counts["taken"] == n and counts["repeated"] == 0 and counts["dropped"] == 0
    assert counts["pushed_back"] >= n - 8 - REPLIES_KEPT and r.broker.connects > 1
