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

import base64
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .cmdsign import SIM_MASTER, derive_key, device_of, sign, verify

# A stranger's master key: not the park's.
FORGER_MASTER = bytes(32)

SYNC_TOPIC = "park/_tools/sim-sync"  # a topic the centre's account may use (deploy/mosquitto/park.acl)
SETTLE_TIMEOUT_S = 5.0


class Centre:
    def __init__(
        self, host: str, port: int, log, device: str | None = None, login: tuple[str, str] | None = None
    ):
        """log(kind, text): a timeline entry at the world's time. device: hear
        only that lamp (a fleet, `parkctl sim --lamps`, gives each lamp a centre
        of its own on the one broker, so each lamp's scenario plays out as for
        one lamp), not every device on the broker. login: the centre's broker
        account (user, password), for a broker that wants one."""
        self.log = log
        self.device = device
        self.seen: set[str] = set()  # event ids
        self.duplicates = 0
        self.forged = 0  # messages without their device's authenticator, dropped
        self.alarms: dict[str, dict[str, Any]] = {}  # alarm id -> {"device", "base", "state", ...}
        self.checkins: list[dict[str, Any]] = []  # the kiosks' check-in events, once each
        self.bases: list[str] = []  # each lamp's topic prefix, in the order they came online
        self.received = 0  # messages from the lamps (not the broker's wills)
        self.wills = 0  # "offline" from the broker, for lamps gone without a goodbye
        self._sync_n = 0
        self._synced = 0
        self._cmd_n = 0
        self._sent: list[tuple[str, bytes]] = []  # every command sent: topic, payload
        self.releases: dict[str, Path] = {}  # release id -> its folder, for the pieces asked (offer)
        self.pushed = 0  # pieces of a release sent, each on its way to a lamp
        self.damage: dict[str, str] = {}  # release id -> the wrong pieces sent with it
        self._corrupted = False
        # Its own id: two simulations on one broker must not take over each other.
        name = f"park-sim-centre-{os.getpid()}" + (f"-{device}" if device else "")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        # Its own marker topic too: another centre's marker is not ours.
        self.sync_topic = f"{SYNC_TOPIC}/{name}"
        self.client.on_message = self._message
        self._refused: int | None = None
        self._connacked = False
        self.client.on_connect = self._connected
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.connect(host, port, keepalive=600)
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not self._connacked and time.monotonic() < deadline:
            self.client.loop(0.05)
        if self._refused is not None:
            raise PermissionError(
                f"the broker at {host}:{port} refused the centre's login (CONNACK {self._refused}): the "
                "centre's account comes from $PARK_CENTRE_USER and $PARK_CENTRE_PASSWORD (docs/broker.md)"
            )
        self._subscribe()
        self.settle()

    def _connected(self, client, userdata, flags, reason, properties=None) -> None:
        self._connacked = True
        if reason.is_failure:
            self._refused = reason.value

    def _subscribe(self) -> None:
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # no Nagle delays on the host's loopback
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        who = self.device or "+"
        for app in ("lamp", "kiosk"):
            self.client.subscribe(
                [(f"park/+/{app}/{who}/{kind}", 1) for kind in ("event", "reply", "status", "fetch")]
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
        if kind == "fetch":
            self._fetch(base, msg.payload)
            return
        if kind == "status":
            if base not in self.bases:
                self.bases.append(base)
            self.log("centre", f"{parts[3]} {text}")
            return
        # Only what the device itself signed counts (docs/security.md): a message
        # forged with its broker credentials, or changed on the way, is dropped.
        signed = verify(derive_key(SIM_MASTER, parts[3]), msg.topic, msg.payload)
        if signed is None:
            self.forged += 1
            self.log("centre", f"dropped a message on {msg.topic} without the device's authenticator")
            return
        try:
            body = json.loads(signed)
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
        elif etype.startswith("update_"):
            what = body.get("detail") or body.get("version")
            if "bad_chunks" in body:
                n, again = body["bad_chunks"], body.get("refetched")
                what = f"{what} ({n} wrong pieces dropped, {again} files fetched again)"
            self.log("centre", f"{etype} from {body.get('device')}: {what}")
        elif etype == "safe_mode":
            failure = body.get("failure")
            self.log("centre", f"safe_mode from {body.get('device')}: {body.get('detail')}; {failure}")
        elif etype.startswith("alarm_"):
            aid = body.get("alarm", eid)
            if etype == "alarm_raised":
                self.alarms[aid] = {"device": body.get("device"), "base": base, "state": "raised"}
            elif aid in self.alarms:
                self.alarms[aid]["state"] = etype[len("alarm_") :]
            test = " (test)" if body.get("test") else ""
            self.log("centre", f"{etype} {aid}{test}")

    def _fetch(self, base: str, payload: bytes) -> None:
        # A piece of a release this centre offered (docs/updates.md): answered at
        # once with exactly the bytes asked; anything else is not answered.
        try:
            ask = json.loads(payload)
            folder = self.releases[ask["release"]]
            path, offset, length = ask["path"], ask["offset"], ask["length"]
            file = folder / "release.json" if path == "release.json" else folder / "files" / path
            if not (
                isinstance(offset, int) and isinstance(length, int) and 0 < length <= 1024 and offset >= 0
            ):
                raise ValueError("a bad range")
            if folder.resolve() not in file.resolve().parents:
                raise ValueError("outside the release")
            with open(file, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except (ValueError, KeyError, TypeError, OSError) as e:
            self.log("centre", f"fetch not answered: {e}: {payload[:120]!r}")
            return
        rid = ask["release"]
        chunk = {"release": rid, "path": path, "offset": offset, "data": base64.b64encode(data).decode()}
        bad = self._damaged(self.damage.get(rid), chunk, data)
        if bad is not None:  # a wrong piece first: the lamp must not take it
            self.client.publish(base + "/chunk", bad, 0)
            self.pushed += 1
            if self.damage[rid] == "corrupt":
                return  # and only that one: the file's sha256 finds it
        self.client.publish(base + "/chunk", json.dumps(chunk).encode(), 0)
        self.pushed += 1

    def _damaged(self, kind: str | None, chunk: dict, data: bytes) -> bytes | None:
        # What a wrong piece looks like, for `centre offers DIR damaged KIND`.
        if kind is None:
            return None
        if kind == "truncated":
            bad = dict(chunk, data=base64.b64encode(data[:-1]).decode())
        elif kind == "reordered":
            bad = dict(chunk, offset=chunk["offset"] + len(data))
        elif kind == "foreign":
            bad = dict(chunk, release="0" * 64)
        elif kind == "garbage":
            return b"\xff{not a piece"
        elif kind == "corrupt":
            if chunk["path"] != "main.py" or chunk["offset"] != 0 or self._corrupted:
                return None
            self._corrupted = True
            bad = dict(chunk, data=base64.b64encode(bytes([data[0] ^ 1]) + data[1:]).decode())
        else:
            raise ValueError(f"no such damage {kind!r}")
        return json.dumps(bad).encode()

    def offer(self, folder: Path, trial_s: int | None, damage: str | None = None) -> dict:
        """The `update` command for the release in `folder` (as `parkctl release
        sign` writes it); its pieces are served from now on."""
        data = (folder / "release.json").read_bytes()
        rid = hashlib.sha256(data).hexdigest()
        self.releases[rid] = folder
        if damage is not None:
            self.damage[rid] = damage
        msg = {
            "cmd": "update",
            "release": rid,
            "size": len(data),
            "sig": (folder / "release.sig").read_text().strip(),
        }
        if trial_s is not None:
            msg["trial_s"] = trial_s
        return msg

    # --- keeping in step with the virtual clock --------------------------------

    def settle(self, published: int = 0, wills: int = 0) -> int:
        """Read until the lamps' `published` messages and the broker's `wills`
        (both counted by the virtual sockets) and a marker of our own are here.
        Returns the pieces of releases sent meanwhile (answers to the lamps' asks)."""
        pushed = self.pushed
        self._sync_n += 1
        self.client.publish(self.sync_topic, str(self._sync_n), 0)
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline and (
            self._synced != self._sync_n or self.received < published or self.wills < wills
        ):
            self.client.loop(0.05)
        return self.pushed - pushed

    # --- commands ------------------------------------------------------------

    def command(self, cmd: str, message: dict | None = None) -> bool:
        """Send `cmd` (ack, resolve) for the newest open alarm; or to the first
        lamp, garbage (not JSON) or `message` (cmd "send", a command of the
        scenario's, given an id if it has none). A stranger's commands: "forge"
        (`message` signed with another key), "forge_ack", "forge_resolve"; and
        "replay", the Nth command sent again, byte for byte (message {"n": N},
        default the last). False if there is nothing to send it to."""
        if cmd == "publish":
            assert message is not None
            self.client.publish(
                message["topic"], message["payload"].encode(), 1, retain=message.get("retain", False)
            )
            self.log("centre", f"publishes on {message['topic']} ({len(message['payload'])} bytes)")
            return True
        if cmd == "offer":
            assert message is not None
            message = self.offer(Path(message["release"]), message.get("trial_s"), message.get("damage"))
            cmd = "send"
        if cmd in ("garbage", "send", "forge", "replay"):
            if not self.bases:
                self.log("centre", f"no lamp to send {cmd} to")
                return False
            topic = self.bases[0] + "/cmd"
            if cmd == "garbage":
                payload = b"\xff{garbage"
                self.log("centre", f"sends garbage to {topic}")
            elif cmd == "replay":
                n = (message or {}).get("n", len(self._sent))
                if not 1 <= n <= len(self._sent):
                    self.log("centre", f"no command {n} to replay ({len(self._sent)} sent)")
                    return False
                topic, payload = self._sent[n - 1]
                self.log("centre", f"replays command {n} to {topic}")
            else:
                msg = dict(message or {})
                self._cmd_n += 1
                msg.setdefault("id", f"centre-{self._cmd_n}")
                # A stranger's command: right in every way but the key it is signed with.
                payload = self._signed(FORGER_MASTER if cmd == "forge" else SIM_MASTER, topic, msg)
                self.log("centre", f"{'forges' if cmd == 'forge' else 'sends'} {msg.get('cmd')} {msg['id']}")
            self.client.publish(topic, payload, 1)
            return True
        forged = cmd.startswith("forge_")
        cmd = cmd.removeprefix("forge_")
        want = {"ack": ("raised", "delivered"), "resolve": ("raised", "delivered", "acknowledged")}[cmd]
        for aid in reversed(list(self.alarms)):
            a = self.alarms[aid]
            if a["state"] in want:
                self._cmd_n += 1
                cid = f"centre-{self._cmd_n}"
                topic = a["base"] + "/cmd"
                msg = {"id": cid, "cmd": cmd, "alarm": aid}
                payload = self._signed(FORGER_MASTER if forged else SIM_MASTER, topic, msg)
                self.client.publish(topic, payload, 1)
                self.log("centre", f"{'forges' if forged else 'sends'} {cmd} {cid} for {aid}")
                return True
        self.log("centre", f"no open alarm to {cmd}")
        return False

    def _signed(self, master: bytes, topic: str, msg: dict) -> bytes:
        """A command with its counter and authenticator (docs/security.md), with the
        key `master` gives the device. The counter is the centre's own count of
        commands (the simulated boards start with a fresh flash), unless the
        scenario gives one (a stale command)."""
        msg.setdefault("ctr", self._cmd_n)
        payload = sign(derive_key(master, device_of(topic)), topic, json.dumps(msg).encode())
        self._sent.append((topic, payload))
        return payload


class Outside:
    """What a simulated lamp has outside its board: the centre, and the broker
    when the simulation started it (a scenario may kill, hang and restart it).
    The world calls settle(), command() and broker(); in MicroPython, through
    answer() (host/parkctl/simcmd.py)."""

    def __init__(
        self,
        broker,
        host: str,
        port: int,
        log,
        device: str | None = None,
        login: tuple[str, str] | None = None,
    ):
        """broker: an object with `url`, and `start`/`kill`/`freeze` if we own it;
        device: the one lamp the centre hears (Centre); login: the centre's account on it."""
        self.broker_obj = broker
        self.log = log
        self.login = login
        self.centre = Centre(host, port, log, device, login)
        self.state = "up"
        self._lost = False  # the centre's connection died with the broker

    def close(self) -> None:
        if self.state == "up":
            self.centre.close()

    def settle(self, published: int = 0, wills: int = 0) -> int:
        if self.state == "up":  # with the broker gone or hung there is nothing to wait for
            return self.centre.settle(published, wills)
        return 0

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
            # Also after a hang: it may have been killed while it hung (start()
            # leaves a broker that runs as it is).
            b.start()
            self.log("broker", "back")
        self.state = state
        if state == "up" and self._lost:
            self._lost = False
            self.centre.reconnect()

    def answer(self, ask: dict) -> str:
        what = ask["ask"]
        if what == "settle":
            return str(self.settle(ask["published"], ask["wills"]))
        if what == "command":
            return "1" if self.command(ask["cmd"], ask.get("message")) else "0"
        self.broker(ask["state"])
        return ""
