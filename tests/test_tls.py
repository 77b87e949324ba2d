"""MQTT over TLS (`mqtts://` with `network.ca`), on the real interpreter.

The simulator's network has no TLS (docs/sim.md), so the firmware's own code,
boardbase.open_socket and mqtt.Client, runs here in MicroPython, whose ssl is
mbedtls as on the ESP32, with real sockets, against Mosquitto with a TLS
listener whose certificate comes from a CA made for the test (trustme)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
import trustme
from parkctl.brokers import Mosquitto
from parkctl.runtime import FIRMWARE_LIB, micropython_binary

# The firmware's client, its connection opened as the board opens it, until it is
# up and a QoS 1 message is acknowledged, or for 5 s of real time; what it said
# and whether any call raised comes back as one JSON line.
SCRIPT = """
import sys, time, select, json, socket
sys.path.insert(0, %(lib)r)
import boardbase
from mqtt import Client

# What the DNS answers for the name: the test's broker (for another name, as
# a DNS that sends the lamp elsewhere would).
addrs = {%(host)r: socket.getaddrinfo("127.0.0.1", %(port)d)[0][-1]}
events, acks, raised = [], [], None
c = Client(lambda: boardbase.open_socket(addrs, %(host)r, %(port)d, %(ca)r), "tls-lamp", 60,
           on_event=lambda name, detail: events.append(detail))
c.on_puback = acks.append
poll = select.poll()
t0 = time.ticks_ms()
try:
    while time.ticks_diff(time.ticks_ms(), t0) < 5000 and not acks and len(events) < 2:
        wait = c.step(time.ticks_ms())
        if c.up and not c.inflight:
            c.publish("park/test/event", '{"type": "test"}', 1)
            c.send()
        if c.sock is not None:
            poll.register(c.sock, select.POLLIN)
            poll.poll(min(wait, 50))
        else:
            time.sleep_ms(min(wait, 50))
except Exception as e:
    raised = repr(e)
print(json.dumps({"up": c.up, "acks": acks, "events": events, "raised": raised}))
"""


@pytest.fixture(scope="module")
def tls_broker():
    """Mosquitto with a TLS listener on 127.0.0.1, its certificate signed by a
    CA of the test's own; the CA's certificate as DER, as the board keeps it.
    The files are readable by all: Mosquitto started as root reads them after
    it has become the `mosquitto` user."""
    d = Path(tempfile.mkdtemp(prefix="park-tls-"))
    d.chmod(0o755)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(d / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    (d / "ca.der").write_bytes(ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode()))
    other = trustme.CA()
    (d / "other-ca.der").write_bytes(ssl.PEM_cert_to_DER_cert(other.cert_pem.bytes().decode()))
    for f in d.iterdir():
        f.chmod(0o644)
    broker = Mosquitto(extra=f"certfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\n").start()
    try:
        yield broker, d
    finally:
        broker.close()
        shutil.rmtree(d)


def connect(broker: Mosquitto, ca: str, host: str = "127.0.0.1") -> dict:
    script = SCRIPT % {"lib": str(FIRMWARE_LIB), "host": host, "port": broker.port, "ca": ca}
    proc = subprocess.run([micropython_binary(), "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_broker_signed_by_the_configured_ca_gets_the_lamps_messages(tls_broker):
    broker, d = tls_broker
    got = connect(broker, str(d / "ca.der"))
    assert got == {"up": True, "acks": [1], "events": ["up"], "raised": None}


@pytest.mark.parametrize(
    "ca, host, why",
    [
        (
            "other-ca.der",
            "127.0.0.1",
            "socket error TLS: The certificate is not correctly signed by the trusted CA",
        ),
        ("ca.der", "centre.example", "socket error TLS: The certificate Common Name (CN) does not match"),
        ("missing.der", "127.0.0.1", "cannot connect: TLS with {d}/missing.der: [Errno 2] ENOENT"),
    ],
    ids=["another CA", "another name", "no CA file"],
)
def test_a_broker_that_cannot_prove_it_is_the_centre_is_refused(tls_broker, ca, host, why):
    # A wrong CA, a certificate for another name, a CA file missing on the
    # board: never up, the reason in the lamp's events, nothing raised into the
    # main loop, and tried again later like any connection that fails.
    broker, d = tls_broker
    got = connect(broker, str(d / ca), host)
    assert not got["up"] and got["acks"] == [] and got["raised"] is None
    assert len(got["events"]) == 2, got
    assert all(e.startswith(why.format(d=d)) and ", next try in " in e for e in got["events"]), got
