"""The brokers the simulator and the tests start (host/parkctl/brokers.py): a
killed one is gone as a killed process is (its connections cut, its port
refusing), and comes back on the same port, however often."""

from __future__ import annotations

import errno
import gc
import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from mqttsub import Subscriber
from paho.mqtt.enums import CallbackAPIVersion
from parkctl.brokers import Embedded, Mosquitto

DEADLINE_S = 10.0  # real time a cut connection may take to show it: far more than it needs


def _cut(conn: socket.socket) -> bool:
    """The other end has closed or reset this connection (within the deadline)."""
    conn.settimeout(DEADLINE_S)
    try:
        return conn.recv(16) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S).close()
    except ConnectionRefusedError:
        return True
    return False


def _squat(port: int) -> socket.socket | None:
    """Another program binding the port (as an ephemeral port of its own, or a
    broker of its own that was given it): the socket if it got it."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError as e:
        s.close()
        assert e.errno == errno.EADDRINUSE
        return None
    return s


def _in_session(port: int, payload: bytes) -> mqtt.Client:
    """A client in session, subscribed, that has had its own message back."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{payload.decode()}")
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", port, 60)
    client.subscribe("park/#", 1)
    client.publish("park/x", payload, 1)
    deadline = time.monotonic() + DEADLINE_S
    while payload not in got and time.monotonic() < deadline:
        client.loop(0.05)
    assert payload in got, f"{payload!r} did not come back through the broker"
    return client


def test_the_embedded_broker_dies_and_comes_back_on_its_port_fifty_times(caplog):
    broker = Embedded().start()
    port = broker.port
    try:
        for round_ in range(50):
            # A client in session with a subscription, and one that has
            # connected but not yet said CONNECT (a lamp caught mid-connect).
            client = _in_session(port, b"round-%d" % round_)
            early = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
            early.sendall(b"\x10")  # the first byte of a CONNECT
            broker.kill()
            for name, conn in (("in session", client.socket()), ("mid-connect", early)):
                assert isinstance(conn, socket.socket)
                assert _cut(conn), f"round {round_}: a connection {name} to the killed broker stayed open"
            early.close()
            client.disconnect()
            assert _refused(port), f"round {round_}: the killed broker's port still takes connections"
            squatter = _squat(port)
            if squatter is not None:
                squatter.close()
            assert squatter is None, f"round {round_}: the port could be taken while the broker was down"
            assert not [t for t in threading.enumerate() if t.name == f"amqtt-{port}"]
            broker.start()
            assert broker.port == port
        _in_session(port, b"after").disconnect()
    finally:
        broker.close()
    # Nothing of the fifty brokers is left to be found later: no task pending on
    # a stopped loop, no connection left open ("Task was destroyed but it is
    # pending!", "Event loop is closed" when it is collected).
    gc.collect()
    noise = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelname == "ERROR"]
    assert not noise, noise[:3]


def test_a_killed_broker_cuts_every_connection_and_sends_no_will():
    broker = Embedded().start()
    try:
        watcher = Subscriber(broker.port, ["park/+/status"])
        lamp = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lamp")
        lamp.will_set("park/lamp/status", b"offline", 1, retain=True)
        lamp.connect("127.0.0.1", broker.port, 60)
        lamp.loop_start()
        lamp.publish("park/lamp/status", b"online", 1).wait_for_publish(DEADLINE_S)
        watcher.wait_for(lambda t, p: p == b"online")
        broker.kill()
        lamp.loop_stop()
        watcher.client.loop_stop()
        assert not [p for _, p, _ in watcher.messages if p == b"offline"]
        broker.start()
        # What the dead broker held is gone: no retained message survives it.
        fresh = Subscriber(broker.port, ["park/+/status"])
        assert not fresh.messages
        fresh.close()
    finally:
        broker.close()


@pytest.mark.parametrize("kind", ["embedded", "mosquitto"])
def test_a_down_broker_keeps_its_port(kind):
    # While it is down its port refuses connections, as a dead broker's does,
    # and nobody else can take it: on the old code any program could bind it in
    # the meantime, and the restart failed with "address already in use".
    broker = Embedded() if kind == "embedded" else Mosquitto()
    try:
        broker.start()
        port = broker.port
        broker.kill()
        assert _refused(port)
        squatter = _squat(port)
        try:
            assert squatter is None, "the port was free for anyone while the broker was down"
            broker.start()
        finally:
            if squatter is not None:
                squatter.close()
        assert broker.port == port
        sub = Subscriber(port, ["park/#"])
        sub.close()
    finally:
        broker.close()
    # Closed, the port is free again for a server (which binds with SO_REUSEADDR,
    # as Mosquitto does: the last connections' TIME_WAIT may still hold the port
    # against a plain bind for a minute, however fast the machine).
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen()
    finally:
        s.close()


def test_start_twice_and_kill_twice_are_harmless():
    # A scenario's broker spans can overlap: `broker down` twice, then up twice.
    broker = Embedded()
    try:
        broker.start()
        broker.start()
        broker.kill()
        broker.kill()
        broker.start()
        Subscriber(broker.port, ["park/#"]).close()
    finally:
        broker.close()
    with pytest.raises(RuntimeError, match="closed"):
        broker.start()


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_night_of_broker_outages_with_the_embedded_broker(tmp_path, capfd, runtime):
    # Ten `broker down` spans in a night, a press in each outage and one right
    # after each: every alarm reaches the centre, the broker comes back every
    # time, and nothing of the dead brokers is heard of on stderr.
    from parkctl import simcmd
    from test_alarm_sim import WIFI_CONFIG

    lines = [f"config {WIFI_CONFIG}", "start 2026-12-21 18:00", "end 2026-12-21 22:00", "wifi up 18:00"]
    for k in range(10):
        h, m = 18 + (30 + 20 * k) // 60, (30 + 20 * k) % 60
        lines += [
            f"broker down {h:02d}:{m:02d}:00 - {h:02d}:{m:02d}:{30 + 2 * k:02d}",
            f"at {h:02d}:{m:02d}:10 press button for 300ms",
            f"at {h:02d}:{m + 5:02d}:00 centre resolve",
            f"at {h:02d}:{m + 6:02d}:00 press button for 300ms",
            f"at {h:02d}:{m + 8:02d}:00 centre resolve",
        ]
    lines.append("expect 20 alarms at centre")
    scn = tmp_path / "outages.scn"
    scn.write_text("\n".join(lines) + "\n")
    result = simcmd.run(scn, runtime, broker="embedded")
    assert result.ok, [c for c in result.checks if not c[1]]
    texts = [(e.kind, e.text) for e in result.entries]
    assert texts.count(("broker", "killed")) == texts.count(("broker", "back")) == 10
    assert not [t for k, t in texts if k == "firmware"]
    err = capfd.readouterr().err
    for noise in ("Event loop is closed", "Task was destroyed", "address already in use", "Traceback"):
        assert noise not in err
