"""The centre's tools: `parkctl monitor`, `alarms`, `ack`, `resolve`
(docs/protocol.md). paho-mqtt against the park's broker.

What the lamps last said is retained at the broker (status and state), so a
tool that starts now sees every lamp at once; a marker sent to ourselves
through the broker tells when the retained messages have all arrived."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .brokers import parse_url
from .errors import UserError

REPLY_TIMEOUT_S = 10.0
_MARK = "park/_tools/mark/"


class Lamps:
    """The lamps as the broker last heard them: device -> {site, status, state}."""

    def __init__(self, url: str, on_change: Callable[[], None] | None = None):
        host, port = parse_url(url)
        self.url = url
        self.devices: dict[str, dict[str, Any]] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.on_change = on_change
        self._marks: set[str] = set()
        self._cv = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"parkctl-{uuid.uuid4().hex[:12]}")
        self.client.on_message = self._message
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as e:
            raise UserError(f"cannot reach the broker at {url}: {e.strerror or e}") from None
        self.client.subscribe(
            [("park/+/lamp/+/status", 1), ("park/+/lamp/+/state", 1), ("park/+/lamp/+/reply", 1)]
        )
        self.client.loop_start()
        self.sync()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until what the broker had for us (its retained messages) is here."""
        mark = uuid.uuid4().hex
        self.client.subscribe(_MARK + mark, 0)
        self.client.publish(_MARK + mark, b"1", 0)
        with self._cv:
            if not self._cv.wait_for(lambda: mark in self._marks, timeout):
                raise UserError(f"the broker at {self.url} does not answer")

    def _message(self, client, userdata, msg) -> None:
        if msg.topic.startswith(_MARK):
            with self._cv:
                self._marks.add(msg.topic[len(_MARK) :])
                self._cv.notify_all()
            return
        parts = msg.topic.split("/")
        if len(parts) != 5:
            return
        site, device, kind = parts[1], parts[3], parts[4]
        text = msg.payload.decode("utf-8", "replace")
        with self._cv:
            if kind == "reply":
                try:
                    reply = json.loads(text)
                except ValueError:
                    return
                if isinstance(reply, dict) and isinstance(reply.get("id"), str):
                    self.replies[reply["id"]] = reply
            else:
                d = self.devices.setdefault(device, {"site": site, "status": "unknown", "state": {}})
                if kind == "status":
                    d["status"] = text
                elif kind == "state":
                    try:
                        d["state"] = json.loads(text)
                    except ValueError:
                        d["state"] = {"error": "unreadable state"}
            self._cv.notify_all()
        if self.on_change is not None and kind != "reply":
            self.on_change()

    def open_alarms(self) -> list[dict[str, Any]]:
        out = []
        with self._cv:
            for device, d in sorted(self.devices.items()):
                a = d["state"].get("alarm")
                if isinstance(a, dict):
                    out.append(dict(a, device=device, site=d["site"], online=d["status"] == "online"))
        return out

    def command(self, device: str, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a command to a lamp and wait for its reply."""
        with self._cv:
            d = self.devices.get(device)
        if d is None:
            raise UserError(f"no lamp {device!r} at {self.url} (it never published its state)")
        cid = f"parkctl-{uuid.uuid4().hex[:8]}"
        topic = f"park/{d['site']}/lamp/{device}/cmd"
        self.client.publish(topic, json.dumps(dict(cmd, id=cid)), 1)
        with self._cv:
            if not self._cv.wait_for(lambda: cid in self.replies, timeout):
                raise UserError(
                    f"{device} did not reply within {timeout:g} s (status: {d['status']}); the broker "
                    "keeps the command for it and it acts on it when it is back"
                )
            return self.replies[cid]


def alarm_device(alarm_id: str) -> str:
    """An alarm id is DEVICE-BOOT-SEQ."""
    parts = alarm_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise UserError(f"{alarm_id!r} is not an alarm id (DEVICE-BOOT-SEQ, as `parkctl alarms` lists)")
    return parts[0]


def act(url: str, cmd: str, alarm_id: str, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
    device = alarm_device(alarm_id)
    lamps = Lamps(url)
    try:
        return lamps.command(device, {"cmd": cmd, "alarm": alarm_id}, timeout)
    finally:
        lamps.close()


def _when(ts: Any) -> str:
    if not isinstance(ts, int):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def device_rows(lamps: Lamps) -> list[dict[str, Any]]:
    rows = []
    with lamps._cv:
        for device, d in sorted(lamps.devices.items()):
            s = d["state"]
            a = s.get("alarm")
            rows.append(
                {
                    "device": device,
                    "site": d["site"],
                    "status": d["status"],
                    "level": s.get("level"),
                    "mode": s.get("mode"),
                    "alarm": f"{a['id']} {a['state']}" if isinstance(a, dict) else "",
                    "faults": ", ".join(s.get("faults") or []),
                    "pending": s.get("pending"),
                    "ts": _when(s.get("ts")),
                }
            )
    return rows
