"""The park's control centre inside a simulation (CPython): a paho-mqtt client
on the same broker as the simulated lamps. It records what arrives (alarms,
replies, online/offline) on the timeline, drops duplicate events by id as the
real centre does, and sends the scenario's commands (`at 22:05 centre ack`).

Its network is real and the clock virtual: before the world moves the clock on
after any traffic, settle() reads until it has every message the lamps have
published to it so far (the virtual sockets count them) and a marker of its own,
so that what the lamps published is on the timeline at the moment it happened,
on every run alike."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

SYNC_TOPIC = "park/_sim/sync"
SETTLE_TIMEOUT_S = 5.0


class Centre:
    def __init__(self, host: str, port: int, log, device: str | None = None):
        """log(kind, text): a timeline entry at the world's time. device: hear
        only that lamp (a fleet, `parkctl sim --lamps`, gives each lamp a centre
        of its own on the one broker, so each lamp's scenario plays out as for
        one lamp), not every device on the broker."""
        self.log = log
        self.device = device
        self.seen: set[str] = set()  # event ids
        self.duplicates = 0
        self.alarms: dict[str, dict[str, Any]] = {}  # alarm id -> {"device", "base", "state", ...}
        self.checkins: list[dict[str, Any]] = []  # the kiosks' check-in events, once each
        self.bases: list[str] = []  # each lamp's topic prefix, in the order they came online
        self.received = 0  # messages from the lamps (not the broker's wills)
        self.wills = 0  # "offline" from the broker, for lamps gone without a goodbye
        self._sync_n = 0
        self._synced = 0
        self._cmd_n = 0
        # Its own id: two simulations on one broker must not take over each other.
        name = f"park-sim-centre-{os.getpid()}" + (f"-{device}" if device else "")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        # Its own marker topic too: another centre's marker is not ours.
        self.sync_topic = f"{SYNC_TOPIC}/{name}"
        self.client.on_message = self._message
        self.client.connect(host, port, keepalive=600)
        self._subscribe()
        self.settle()

    def _subscribe(self) -> None:
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # no Nagle delays on the host's loopback
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        who = self.device or "+"
        for app in ("lamp", "kiosk"):
            self.client.subscribe(
                [(f"park/+/{app}/{who}/{kind}", 1) for kind in ("event", "reply", "status")]
            )
        self.client.subscribe(self.sync_topic, 0)

    def close(self) -> None:
        self.client.disconnect()

    def reconnect(self) -> None:
        """After the broker was restarted (it forgot our subscriptions): the
        counts settle() waits on start again, as the world's do."""
        self.received = self.wills = 0
        self.client.reconnect()
        self._subscribe()
        self.settle()

    # --- what arrives --------------------------------------------------------

    def _message(self, client, userdata, msg) -> None:
        if msg.topic == self.sync_topic:
            self._synced = int(msg.payload)
            return
        parts = msg.topic.split("/")
        base, kind = "/".join(parts[:4]), parts[4]
        text = msg.payload.decode("utf-8", "replace")
        if kind != "status" or text == "online":
            self.received += 1
        elif text == "offline":
            self.wills += 1
        if kind == "status":
            if base not in self.bases:
                self.bases.append(base)
            self.log("centre", f"{parts[3]} {text}")
            return
        try:
            body = json.loads(text)
        except ValueError:
            self.log("centre", f"unreadable message on {msg.topic}: {text[:80]}")
            return
        if kind == "reply":
            how = "ok" if body.get("ok") else "refused: " + str(body.get("reason"))
            if body.get("ok") and "result" in body:
                how += " " + json.dumps(body["result"], sort_keys=True)
            self.log("centre", f"reply to {body.get('cmd')} {body.get('id')}: {how}")
            return
        eid = body.get("id")
        if eid in self.seen:
            self.duplicates += 1
            return
        self.seen.add(eid)
        etype = body.get("type", "")
        if etype == "checkin":
            self.checkins.append(body)
            self.log("centre", f"checkin {eid} person {body.get('person')} ts {body.get('ts')}")
        elif etype in ("roster", "roster_refused", "checkins_expired"):
            self.log("centre", f"{etype} from {body.get('device')}: {body.get('detail')}")
        elif etype.startswith("alarm_"):
            aid = body.get("alarm", eid)
            if etype == "alarm_raised":
                self.alarms[aid] = {"device": body.get("device"), "base": base, "state": "raised"}
            elif aid in self.alarms:
                self.alarms[aid]["state"] = etype[len("alarm_") :]
            test = " (test)" if body.get("test") else ""
            self.log("centre", f"{etype} {aid}{test}")

    # --- keeping in step with the virtual clock --------------------------------

    def settle(self, published: int = 0, wills: int = 0) -> None:
        """Read until the lamps' `published` messages and the broker's `wills`
        (both counted by the virtual sockets) and a marker of our own are here."""
        self._sync_n += 1
        self.client.publish(self.sync_topic, str(self._sync_n), 0)
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline and (
            self._synced != self._sync_n or self.received < published or self.wills < wills
        ):
            self.client.loop(0.05)

    # --- commands ------------------------------------------------------------

    def command(self, cmd: str, message: dict | None = None) -> bool:
        """Send `cmd` (ack, resolve) for the newest open alarm; or to the first
        lamp, garbage (not JSON) or `message` (cmd "send", a command of the
        scenario's, given an id if it has none). False if there is nothing to
        send it to."""
        if cmd == "publish":
            assert message is not None
            self.client.publish(
                message["topic"], message["payload"].encode(), 1, retain=message.get("retain", False)
            )
            self.log("centre", f"publishes on {message['topic']} ({len(message['payload'])} bytes)")
            return True
        if cmd in ("garbage", "send"):
            if not self.bases:
                self.log("centre", f"no lamp to send {cmd} to")
                return False
            if cmd == "garbage":
                payload = b"\xff{garbage"
                self.log("centre", f"sends garbage to {self.bases[0]}/cmd")
            else:
                self._cmd_n += 1
                msg = dict(message or {})
                msg.setdefault("id", f"centre-{self._cmd_n}")
                payload = json.dumps(msg).encode()
                self.log("centre", f"sends {msg.get('cmd')} {msg['id']}")
            self.client.publish(self.bases[0] + "/cmd", payload, 1)
            return True
        want = {"ack": ("raised", "delivered"), "resolve": ("raised", "delivered", "acknowledged")}[cmd]
        for aid in reversed(list(self.alarms)):
            a = self.alarms[aid]
            if a["state"] in want:
                self._cmd_n += 1
                cid = f"centre-{self._cmd_n}"
                payload = json.dumps({"id": cid, "cmd": cmd, "alarm": aid})
                self.client.publish(a["base"] + "/cmd", payload, 1)
                self.log("centre", f"sends {cmd} {cid} for {aid}")
                return True
        self.log("centre", f"no open alarm to {cmd}")
        return False


class Outside:
    """What a simulated lamp has outside its board: the centre, and the broker
    when the simulation started it (a scenario may kill, hang and restart it).
    The world calls settle(), command() and broker(); in MicroPython, through
    answer() (host/parkctl/simcmd.py)."""

    def __init__(self, broker, host: str, port: int, log, device: str | None = None):
        """broker: an object with `url`, and `start`/`kill`/`freeze` if we own it;
        device: the one lamp the centre hears (Centre)."""
        self.broker_obj = broker
        self.log = log
        self.centre = Centre(host, port, log, device)
        self.state = "up"
        self._lost = False  # the centre's connection died with the broker

    def close(self) -> None:
        if self.state == "up":
            self.centre.close()

    def settle(self, published: int = 0, wills: int = 0) -> None:
        if self.state == "up":  # with the broker gone or hung there is nothing to wait for
            self.centre.settle(published, wills)

    def command(self, cmd: str, message: dict | None = None) -> bool:
        if self.state != "up":
            self.log("centre", f"cannot send {cmd}: the broker is {self.state}")
            return False
        return self.centre.command(cmd, message)

    def broker(self, state: str) -> None:
        """down (killed), hung (stopped: connections stay open, nothing answers), up."""
        b = self.broker_obj
        if state == "down":
            b.kill()
            self._lost = True
            self.log("broker", "killed")
        elif state == "hung":
            b.freeze(True)
            self.log("broker", "hangs: connections stay open, nothing is answered")
        else:
            if self.state == "hung":
                b.freeze(False)
            else:
                b.start()
            self.log("broker", "back")
        self.state = state
        if state == "up" and self._lost:
            self._lost = False
            self.centre.reconnect()

    def answer(self, ask: dict) -> str:
        what = ask["ask"]
        if what == "settle":
            self.settle(ask["published"], ask["wills"])
            return ""
        if what == "command":
            return "1" if self.command(ask["cmd"], ask.get("message")) else "0"
        self.broker(ask["state"])
        return ""
