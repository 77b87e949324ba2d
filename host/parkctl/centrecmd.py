"""The centre's tools: `parkctl monitor`, `alarms`, `ack`, `resolve`
(docs/protocol.md). paho-mqtt against the park's broker.

They log in as the centre (docs/broker.md): the account's user and password
come from the environment ($PARK_CENTRE_USER, $PARK_CENTRE_PASSWORD) or the
provisioning secrets file's [centre] table, never from the command line; an
mqtts:// broker's certificate is checked against --ca FILE ($PARK_BROKER_CA).
Commands are signed with each device's key, derived from the park's master key
($PARK_COMMAND_KEY or the table's command_key; docs/security.md).

What the lamps last said is retained at the broker (status and state), so a
tool that starts now sees every lamp at once; a marker sent to ourselves
through the broker tells when the retained messages have all arrived."""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .errors import UserError

REPLY_TIMEOUT_S = 10.0
_MARK = "park/_tools/mark/"
KINDS = ("lamp", "kiosk")  # the apps whose devices the tools follow


@dataclass
class Login:
    """How the centre's tools reach the broker: its account, and the CA its
    certificate must be signed by (mqtts://)."""

    user: str | None = None
    password: str | None = None
    ca: Path | None = None
    command_key: bytes | None = None  # the park's master key: each device's is derived from it

    @classmethod
    def find(cls, secrets: Path | None = None, ca: Path | None = None) -> Login:
        """The environment, then the secrets file's [centre] table."""
        table: dict[str, Any] = {}
        if secrets is not None:
            from .provision import load_secrets

            table = load_secrets(secrets).get("centre", {})
            if not isinstance(table, dict):
                raise UserError(f"{secrets}: [centre] must be a table")
            for k, v in table.items():
                if k not in ("mqtt_user", "mqtt_password", "command_key"):
                    raise UserError(
                        f"{secrets}: [centre] has an unknown key {k!r} (known: mqtt_user, mqtt_password, "
                        "command_key)"
                    )
                if not isinstance(v, str):
                    raise UserError(f"{secrets}: [centre] {k} must be a string")
        user = os.environ.get("PARK_CENTRE_USER") or table.get("mqtt_user")
        password = os.environ.get("PARK_CENTRE_PASSWORD") or table.get("mqtt_password")
        if user and not password:
            raise UserError(
                f"no password for the broker account {user!r}: give it as $PARK_CENTRE_PASSWORD or in the "
                "secrets file's [centre] table"
            )
        if ca is None and os.environ.get("PARK_BROKER_CA"):
            ca = Path(os.environ["PARK_BROKER_CA"])
        key_text = os.environ.get("PARK_COMMAND_KEY") or table.get("command_key")
        key = None
        if key_text:
            from sim.cmdsign import parse_master

            where = "$PARK_COMMAND_KEY" if os.environ.get("PARK_COMMAND_KEY") else f"{secrets} [centre]"
            try:
                key = parse_master(key_text, where)
            except ValueError as e:
                raise UserError(str(e)) from None
        return cls(user, password, ca, key)


def _endpoint(url: str, login: Login) -> tuple[bool, str, int]:
    """(tls, host, port) of the broker's URL, read by the devices' own parser."""
    from .runtime import import_firmware

    import_firmware()
    from topics import broker_url

    try:
        tls, host, port = broker_url(url)
    except ValueError as e:
        raise UserError(f"broker: {e}") from None
    if tls and login.ca is None:
        raise UserError(
            f"broker {url} is mqtts://: give the CA certificate its certificate is signed by with --ca FILE "
            "or $PARK_BROKER_CA"
        )
    if login.ca is not None and not tls:
        raise UserError(f"--ca is for an mqtts:// broker, not {url}")
    return tls, host, port


# CONNACK refusals, as MQTT 3.1.1 codes and as paho's MQTT 5 reason codes for them.
_REFUSED = {
    4: "the broker refused the user name or password",
    134: "the broker refused the user name or password",
    5: "the broker refused the login (not authorised)",
    135: "the broker refused the login (not authorised)",
}


class Lamps:
    """The lamps (and kiosks) as the broker last heard them: device ->
    {site, kind, status, state}."""

    def __init__(self, url: str, on_change: Callable[[], None] | None = None, login: Login | None = None):
        login = login or Login.find()
        tls, host, port = _endpoint(url, login)
        self.url = url
        self.command_key = login.command_key
        self.devices: dict[str, dict[str, Any]] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.unsigned_replies: set[str] = set()  # ids of replies not signed by their device
        self.on_change = on_change
        self._marks: set[str] = set()
        self._cv = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"parkctl-{uuid.uuid4().hex[:12]}")
        self.client.on_message = self._message
        self._refused: int | None = None
        self.client.on_connect = self._connected
        if login.user:
            self.client.username_pw_set(login.user, login.password)
        if tls:
            assert login.ca is not None
            try:
                ctx = ssl.create_default_context(cafile=str(login.ca))
            except FileNotFoundError:
                raise UserError(f"cannot read the CA certificate {login.ca}") from None
            except (ssl.SSLError, ValueError):
                raise UserError(f"{login.ca}: not a CA certificate (PEM)") from None
            self.client.tls_set_context(ctx)
        try:
            self.client.connect(host, port, keepalive=30)
        except ssl.SSLError as e:
            raise UserError(f"the broker at {url} failed the TLS check: {e.reason or e}") from None
        except OSError as e:
            raise UserError(f"cannot reach the broker at {url}: {e.strerror or e}") from None
        topics = [(f"park/+/{kind}/+/{t}", 1) for kind in KINDS for t in ("status", "state", "reply")]
        self.client.subscribe(topics)
        self.client.loop_start()
        self.sync()

    def _connected(self, client, userdata, flags, reason, properties=None) -> None:
        if reason.is_failure:
            with self._cv:
                self._refused = reason.value
                self._cv.notify_all()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until what the broker had for us (its retained messages) is here."""
        mark = uuid.uuid4().hex
        # QoS 1, as the retained messages: the broker sends at most a few QoS 1
        # messages at a time and lets QoS 0 ones overtake those it holds back, so a
        # QoS 0 marker came while most of a fleet's states were still on their way.
        self.client.subscribe(_MARK + mark, 1)
        self.client.publish(_MARK + mark, b"1", 1)
        with self._cv:
            if not self._cv.wait_for(lambda: mark in self._marks or self._refused is not None, timeout):
                raise UserError(f"the broker at {self.url} does not answer")
            if self._refused is not None:
                why = _REFUSED.get(self._refused, f"the broker refused the connection (code {self._refused})")
                raise UserError(
                    f"{why} at {self.url}: the centre's account comes from $PARK_CENTRE_USER and "
                    "$PARK_CENTRE_PASSWORD or the secrets file's [centre] table (docs/broker.md)"
                )

    def _message(self, client, userdata, msg) -> None:
        if msg.topic.startswith(_MARK):
            with self._cv:
                self._marks.add(msg.topic[len(_MARK) :])
                self._cv.notify_all()
            return
        parts = msg.topic.split("/")
        if len(parts) != 5 or parts[2] not in KINDS:
            return
        site, app, device, kind = parts[1], parts[2], parts[3], parts[4]
        payload = msg.payload
        verified = None  # unknown: no key to check it with
        if self.command_key is not None and kind != "status":
            # What the device signed (docs/security.md); anything else is a forgery
            # or a device without its key.
            from sim.cmdsign import derive_key, verify

            signed = verify(derive_key(self.command_key, device), msg.topic, payload)
            verified = signed is not None
            payload = signed if signed is not None else payload
        text = payload.decode("utf-8", "replace")
        with self._cv:
            if kind == "reply":
                try:
                    reply = json.loads(text)
                except (ValueError, RecursionError):  # nested too deeply: not one either
                    return
                # A reply that is not the device's own is not believed: it could say "ok".
                if isinstance(reply, dict) and isinstance(reply.get("id"), str):
                    if verified is False:
                        self.unsigned_replies.add(reply["id"])
                    else:
                        self.replies[reply["id"]] = reply
            else:
                d = self.devices.setdefault(
                    device, {"site": site, "kind": app, "status": "unknown", "state": {}, "verified": None}
                )
                if kind == "status":
                    d["status"] = text
                elif kind == "state":
                    # Anyone with a device's broker account can publish its state: one
                    # nested too deeply for json killed this thread (every tool then
                    # said "the broker does not answer"), one not an object broke
                    # the tables.
                    try:
                        state = json.loads(text)
                    except (ValueError, RecursionError):
                        state = None
                    d["state"] = state if isinstance(state, dict) else {"error": "unreadable state"}
                    d["verified"] = verified
            self._cv.notify_all()
        if self.on_change is not None and kind != "reply":
            self.on_change()

    def open_alarms(self) -> list[dict[str, Any]]:
        out = []
        with self._cv:
            for device, d in sorted(self.devices.items()):
                a = d["state"].get("alarm")
                if isinstance(a, dict):
                    out.append(
                        dict(
                            a,
                            device=device,
                            site=d["site"],
                            online=d["status"] == "online",
                            verified=d.get("verified"),
                        )
                    )
        return out

    def command(self, device: str, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a command to a lamp and wait for its reply."""
        with self._cv:
            d = self.devices.get(device)
        if d is None:
            raise UserError(f"no device {device!r} at {self.url} (it never published its state)")
        if self.command_key is None:
            raise UserError(
                "no command key: devices act only on commands signed with theirs; give the park's "
                "master key as $PARK_COMMAND_KEY or in the secrets file's [centre] table (command_key)"
            )
        from sim.cmdsign import command, derive_key

        cid = f"parkctl-{uuid.uuid4().hex[:8]}"
        topic = f"park/{d['site']}/{d['kind']}/{device}/cmd"
        self.client.publish(topic, command(derive_key(self.command_key, device), topic, dict(cmd, id=cid)), 1)
        with self._cv:
            # Only the device's own signed reply counts: one without its signature (a
            # forgery, or the device's answer checked with the wrong key) is not believed.
            if not self._cv.wait_for(lambda: cid in self.replies, timeout):
                if cid in self.unsigned_replies:
                    raise UserError(
                        f"a reply came, but not signed with {device}'s key: it is not believed (is the "
                        "command key the park's? a device with another key also refuses the command)"
                    )
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


def act(
    url: str, cmd: str, alarm_id: str, timeout: float = REPLY_TIMEOUT_S, login: Login | None = None
) -> dict[str, Any]:
    return send(url, alarm_device(alarm_id), {"cmd": cmd, "alarm": alarm_id}, timeout, login)


def send(
    url: str,
    device: str,
    cmd: dict[str, Any] | Callable[[str], dict[str, Any]],
    timeout: float = REPLY_TIMEOUT_S,
    login: Login | None = None,
) -> dict[str, Any]:
    """One command to one device, its reply. cmd may be a function of the
    device's kind (lamp, kiosk), which the broker's retained state tells."""
    lamps = Lamps(url, login=login)
    try:
        if callable(cmd):
            with lamps._cv:
                d = lamps.devices.get(device)
            if d is None:
                raise UserError(f"no device {device!r} at {url} (it never published its state)")
            cmd = cmd(d.get("kind", "lamp"))
        return lamps.command(device, cmd, timeout)
    finally:
        lamps.close()


def _when(ts: Any) -> str:
    if not isinstance(ts, int):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _per(value: Any, unit: int) -> float | None:
    """A counter in a bigger unit (s -> h, Wh -> kWh), to a tenth; None if the state has none."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return round(value / unit, 1)


def device_rows(lamps: Lamps) -> list[dict[str, Any]]:
    rows = []
    with lamps._cv:
        for device, d in sorted(lamps.devices.items()):
            s = d["state"]
            a = s.get("alarm")
            rows.append(
                {
                    "device": device,
                    "kind": d.get("kind", "lamp"),
                    "site": d["site"],
                    "status": d["status"],
                    "level": s.get("level"),
                    "mode": s.get("mode"),
                    "alarm": f"{a['id']} {a['state']}" if isinstance(a, dict) else "",
                    "faults": ", ".join(s.get("faults") or []),
                    "pending": s.get("pending"),
                    "signed": {True: "yes", False: "FORGED?", None: "-"}[d.get("verified")],
                    "ts": _when(s.get("ts")),
                    # The lamp's counters as on its flash (docs/protocol.md, state).
                    "hours": _per(s.get("burning_s"), 3600),
                    "kwh": _per(s.get("energy_wh"), 1000),
                    "cycles": s.get("switch_cycles"),
                }
            )
    return rows
