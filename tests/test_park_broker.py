"""The park's broker as shipped (deploy/mosquitto/): real Mosquitto running
park.conf and park.acl, accounts made the way `parkctl provision` makes them,
clients that log in over TLS (and the loopback listener without TLS, same
rights). What a stranger, another device's credentials or a lamp may do, and
that the centre's tools work with their account (docs/broker.md)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from parkctl.parkbroker import BrokerDir, ParkBroker, password_hash

from sim.cmdsign import derive_key, sign

PARKCTL = str(Path(sys.executable).parent / "parkctl")
KEY_B = derive_key(b"\x77" * 32, "lamp-b")  # lamp B's command key, from the park's ("77" * 32)
WAIT_S = 10.0
PASSWORDS = {
    "centre": "centre-Secret-0",
    "lamp-a": "lamp-a-Secret-1",
    "lamp-b": "lamp-b-Secret-2",
    "kiosk-1": "kiosk-1-Secret-3",
    "kiosk-9": "kiosk-9-Secret-4",
}


@pytest.fixture(scope="module")
def park(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParkBroker]:
    folder = tmp_path_factory.mktemp("park-broker")
    bd = BrokerDir(folder)
    for user, password in PASSWORDS.items():
        bd.set_password(user, password)
    bd.add_kiosk("kiosk-1", "g60")
    bd.add_kiosk("kiosk-9", "other")
    broker = ParkBroker(folder, plain_port=_free_port(), persistence=False).start()
    yield broker
    broker.stop()


def _free_port() -> int:
    from parkctl.brokers import free_port

    return free_port()


class Client:
    """A paho client that says whether it got in, and what it received."""

    def __init__(self, park: ParkBroker, user: str | None, password: str | None = None, tls: bool = True):
        self.cv = threading.Condition()
        self.result: int | None = None
        self.got: list[tuple[str, bytes]] = []
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user or 'anon'}-{uuid.uuid4().hex[:6]}"
        )
        if user is not None:
            self.c.username_pw_set(user, PASSWORDS.get(user) if password is None else password)
        if tls:
            self.c.tls_set_context(ssl.create_default_context(cafile=str(park.ca)))
        self.c.on_connect = self._connected
        self.c.on_message = self._message
        self.c.on_subscribe = lambda *a: self._note()
        self.subacks = 0
        self.c.connect("127.0.0.1", park.port if tls else park.plain_port or 0, keepalive=30)
        self.c.loop_start()
        with self.cv:
            assert self.cv.wait_for(lambda: self.result is not None, WAIT_S), "no CONNACK"

    def _note(self) -> None:
        with self.cv:
            self.subacks += 1
            self.cv.notify_all()

    def _connected(self, client, userdata, flags, reason, properties=None) -> None:
        with self.cv:
            self.result = reason.value
            self.cv.notify_all()

    def _message(self, client, userdata, msg) -> None:
        with self.cv:
            self.got.append((msg.topic, msg.payload))
            self.cv.notify_all()

    @property
    def accepted(self) -> bool:
        return self.result == 0

    def subscribe(self, *topics: str) -> None:
        n = self.subacks
        self.c.subscribe([(t, 1) for t in topics])
        with self.cv:
            assert self.cv.wait_for(lambda: self.subacks > n, WAIT_S), "no SUBACK"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, 1, retain).wait_for_publish(WAIT_S)

    def until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """What came in, up to and including `payload` (which must come)."""
        with self.cv:
            assert self.cv.wait_for(lambda: any(p == payload for _, p in self.got), WAIT_S), (
                f"{payload!r} never came; got {self.got}"
            )
            return list(self.got)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _mark() -> bytes:
    return uuid.uuid4().hex.encode()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "loopback"])
def test_anonymous_clients_and_wrong_passwords_are_refused(park: ParkBroker, tls: bool) -> None:
    assert not Client(park, None, tls=tls).accepted
    assert not Client(park, "lamp-a", "not-its-password", tls=tls).accepted
    assert not Client(park, "nobody", "whatever", tls=tls).accepted
    ok = Client(park, "lamp-a", tls=tls)
    assert ok.accepted
    ok.close()


def test_a_lamp_cannot_speak_for_another_nor_read_its_commands(park: ParkBroker) -> None:
    centre = Client(park, "centre")
    centre.subscribe("park/+/lamp/+/#")
    a = Client(park, "lamp-a")
    a.subscribe("park/g60/lamp/lamp-a/cmd", "park/g60/lamp/lamp-b/cmd", "park/g60/lamp/+/cmd")
    # Lamp A, with its own credentials, publishes as lamp B: none of it arrives;
    # its own state (sent after, same connection, in order) does.
    for kind in ("state", "event", "reply", "status"):
        a.publish(f"park/g60/lamp/lamp-b/{kind}", b'{"forged": true}')
    mark = _mark()
    a.publish("park/g60/lamp/lamp-a/state", mark)
    got = centre.until(mark)
    assert [t for t, _ in got] == ["park/g60/lamp/lamp-a/state"]
    # The centre commands B, then A: A gets only its own.
    centre.publish("park/g60/lamp/lamp-b/cmd", b'{"id": "x", "cmd": "status"}')
    mark = _mark()
    centre.publish("park/g60/lamp/lamp-a/cmd", mark)
    assert all(t == "park/g60/lamp/lamp-a/cmd" for t, _ in a.until(mark))
    # Nor may a lamp command anyone, itself included.
    b = Client(park, "lamp-b")
    b.subscribe("park/g60/lamp/lamp-b/cmd")
    a.publish("park/g60/lamp/lamp-b/cmd", b'{"id": "evil", "cmd": "resolve"}')
    mark = _mark()
    centre.publish("park/g60/lamp/lamp-b/cmd", mark)
    assert [p for _, p in b.until(mark)] == [mark]
    for c in (centre, a, b):
        c.close()


def test_the_roster_comes_from_the_centre_to_its_sites_kiosks_only(park: ParkBroker) -> None:
    kiosk = Client(park, "kiosk-1")
    kiosk.subscribe("park/g60/kiosk/roster")
    other_site = Client(park, "kiosk-9")
    other_site.subscribe("park/g60/kiosk/roster", "park/other/kiosk/roster")
    lamp = Client(park, "lamp-a")
    lamp.subscribe("park/g60/kiosk/roster", "park/g60/lamp/lamp-a/cmd")
    centre = Client(park, "centre")
    lamp.publish("park/g60/kiosk/roster", b"forged roster")
    kiosk.publish("park/g60/kiosk/roster", b"a kiosk's own roster")
    roster = b'{"version": 7}\n[]'
    centre.publish("park/g60/kiosk/roster", roster)
    assert [p for _, p in kiosk.until(roster)] == [roster]
    # The others would have it by now: the centre's markers, sent after it on the
    # same connection, reach them on topics they may read.
    mark = _mark()
    centre.publish("park/other/kiosk/roster", mark)
    assert [p for _, p in other_site.until(mark)] == [mark]
    centre.publish("park/g60/lamp/lamp-a/cmd", mark)
    assert [p for _, p in lamp.until(mark)] == [mark]
    for c in (kiosk, other_site, lamp, centre):
        c.close()


def _tool(
    park: ParkBroker, *args: str, password: str = PASSWORDS["centre"]
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        PARK_CENTRE_USER="centre",
        PARK_CENTRE_PASSWORD=password,
        PARK_BROKER_CA=str(park.ca),
        PARK_COMMAND_KEY="77" * 32,
    )
    env.pop("PARK_BROKER", None)
    return subprocess.run(
        [PARKCTL, *args, "--broker", f"mqtts://localhost:{park.port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_the_centres_tools_log_in_with_their_account(park: ParkBroker, tmp_path: Path) -> None:
    lamp = Client(park, "lamp-b")
    lamp.subscribe("park/g60/lamp/lamp-b/cmd")
    alarm = {"id": "lamp-b-3-17", "state": "delivered", "presses": 1, "test": False, "raised": 1797855180}
    lamp.publish("park/g60/lamp/lamp-b/status", b"online", retain=True)
    state = json.dumps({"device": "lamp-b", "level": 100, "mode": "alarm", "alarm": alarm}).encode()
    # Signed with the lamp's own key, as its firmware does.
    lamp.publish("park/g60/lamp/lamp-b/state", sign(KEY_B, "park/g60/lamp/lamp-b/state", state), retain=True)
    r = _tool(park, "alarms", "--json")
    assert r.returncode == 0, r.stderr
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(a["id"], a["device"], a["online"], a["verified"]) for a in listed] == [
        ("lamp-b-3-17", "lamp-b", True, True)
    ]

    # The lamp answers the centre's resolve, which the tool waits for.
    def replier() -> None:
        with lamp.cv:
            lamp.cv.wait_for(lambda: any(t.endswith("/cmd") for t, _ in lamp.got), WAIT_S * 3)
            cmds = [json.loads(p) for t, p in lamp.got if t.endswith("/cmd")]
        if cmds:
            reply = json.dumps({"id": cmds[0]["id"], "cmd": cmds[0]["cmd"], "ok": True}).encode()
            # First a forged "ok" (the lamp's broker credentials, not its key): not believed.
            lamp.publish("park/g60/lamp/lamp-b/reply", reply)
            lamp.publish("park/g60/lamp/lamp-b/reply", sign(KEY_B, "park/g60/lamp/lamp-b/reply", reply))

    t = threading.Thread(target=replier, daemon=True)
    t.start()
    r = _tool(park, "resolve", "lamp-b-3-17")
    t.join(WAIT_S * 3)
    assert r.returncode == 0, r.stderr
    assert "lamp-b-3-17: resolved" in r.stdout
    # Someone with lamp B's broker credentials but not its key publishes an alarm in
    # its name: the tools show it as not the lamp's own.
    forged = dict(alarm, id="lamp-b-3-99")
    lamp.publish(
        "park/g60/lamp/lamp-b/state",
        json.dumps({"device": "lamp-b", "level": 100, "mode": "alarm", "alarm": forged}).encode(),
        retain=True,
    )
    r = _tool(park, "alarms", "--json")
    assert [(a["id"], a["verified"]) for a in map(json.loads, r.stdout.splitlines())] == [
        ("lamp-b-3-99", False)
    ]
    r = _tool(park, "monitor", "--once", "--json")
    assert [row["signed"] for row in map(json.loads, r.stdout.splitlines())] == ["FORGED?"]
    # With a wrong password the tool says so in one line, and exits 2.
    r = _tool(park, "alarms", password="wrong")
    assert r.returncode == 2 and "refused the login" in r.stderr and "Traceback" not in r.stderr
    # Without the CA, an mqtts:// broker is refused before anything is sent.
    env = dict(os.environ, PARK_CENTRE_USER="centre", PARK_CENTRE_PASSWORD=PASSWORDS["centre"])
    env.pop("PARK_BROKER_CA", None)
    r = subprocess.run(
        [PARKCTL, "alarms", "--broker", f"mqtts://localhost:{park.port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert r.returncode == 2 and "--ca" in r.stderr
    lamp.close()


def test_a_password_file_entry_is_mosquittos_hash_not_the_password(tmp_path: Path) -> None:
    bd = BrokerDir(tmp_path)
    bd.set_password("lamp-x", "pw-Secret-9")
    bd.set_password("lamp-x", "pw-Secret-10")  # a new password replaces the old entry
    text = (tmp_path / "passwd").read_text()
    assert "pw-Secret" not in text
    assert len(text.splitlines()) == 1 and text.startswith("lamp-x:$7$101$")
    assert oct((tmp_path / "passwd").stat().st_mode & 0o777) == "0o600"
    # The same salt gives the same hash; mosquitto_passwd's own form.
    h = password_hash("secret", bytes(range(12)))
    assert h.split("$")[1:3] == ["7", "101"]
    for bad in ("", "a b", "x/y", "+", "#"):
        with pytest.raises(Exception, match=r"broker account|password"):
            bd.set_password(bad or "lamp-y", "" if not bad else "pw")


def test_the_attack_on_the_shipped_broker_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23's attack, replayed on the shipped broker with the real firmware (in
    the simulator, over the broker's loopback listener: the simulator has no TLS):
    the lamp logs in with its own account, the centre with its; commands signed with
    another key (someone holding the centre's broker credentials but not the park's
    key) and a replayed one are refused, and the alarm stays open until the real
    centre resolves it."""
    from parkctl import simcmd
    from test_alarm_sim import WIFI_CONFIG
    from test_commands_sim import _attack, check_attack_refused

    device = "lamp-240ac4000001"  # the simulated board's own id
    bd = BrokerDir(tmp_path / "broker")
    bd.set_password("centre", PASSWORDS["centre"])
    bd.set_password(device, "lamp-Secret-5")
    park = ParkBroker(tmp_path / "broker", plain_port=_free_port(), persistence=False).start()
    try:
        config = json.loads(WIFI_CONFIG.read_text())
        config["network"].update(broker=park.plain_url, user=device, password="lamp-Secret-5")
        path = tmp_path / "lamp.json"
        path.write_text(json.dumps(config))
        monkeypatch.setenv("PARK_CENTRE_USER", "centre")
        monkeypatch.setenv("PARK_CENTRE_PASSWORD", PASSWORDS["centre"])
        check_attack_refused(simcmd.run(_attack(tmp_path, path), "cpython", broker=park.plain_url))
        # Without the centre's account the simulated centre is refused: nothing gets in anonymously.
        monkeypatch.delenv("PARK_CENTRE_USER")
        with pytest.raises(PermissionError, match="refused the centre's login"):
            simcmd.run(_attack(tmp_path, path), "cpython", broker=park.plain_url)
    finally:
        park.stop()
