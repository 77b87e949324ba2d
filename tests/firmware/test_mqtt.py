# The MQTT client's protocol, byte by byte, against a scripted broker: the
# failure modes mqtt_as lists (lost PUBACKs, dead connections, oversized
# packets). The real brokers are in tests/test_alarm_sim.py. CPython, float32,
# MicroPython.

from mqtt import PINGREQ, RESPONSE_MS, Client


class Sock:
    def __init__(self):
        self.sent = bytearray()
        self.inbox = bytearray()
        self.closed = False

    def write(self, b):
        self.sent += b
        return len(b)

    def readinto(self, mv):
        if not self.inbox:
            return None
        n = min(len(mv), len(self.inbox))
        mv[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def close(self):
        self.closed = True


def make(**kw):
    socks = []

    def opener():
        s = Sock()
        socks.append(s)
        return s

    c = Client(
        opener, "lamp-1", 60, will=("t/status", "offline", True), birth=("t/status", "online", True), **kw
    )
    got = []
    c.on_message = lambda topic, payload: got.append((topic, payload))
    return c, socks, got


def connack(sock, session=False):
    sock.inbox += bytes((0x20, 2, 1 if session else 0, 0))


def test_connect_packet_and_session():
    c, socks, _ = make()
    c.subscribe("t/cmd", 1)
    c.step(0)
    s = socks[0]
    # CONNECT: MQTT 3.1.1, clean session 0, will QoS 1 retained, keepalive 60.
    assert s.sent[0] == 0x10
    assert bytes(s.sent[2:9]) == b"\x00\x04MQTT\x04"
    assert s.sent[9] == 0x04 | 0x08 | 0x20
    assert s.sent[10:12] == b"\x00\x3c"
    s.sent = bytearray()
    connack(s)
    c.step(10)
    assert c.up
    # No session at the broker: subscribe again, then the birth message.
    assert s.sent[0] == 0x82
    assert b"t/cmd" in s.sent and b"online" in s.sent


def test_unacknowledged_qos1_is_sent_again_with_dup_after_reconnect():
    c, socks, _ = make()
    c.step(0)
    connack(socks[0], session=True)
    c.step(1)
    pid = c.publish("t/event", '{"a": 1}', 1)
    c.step(2)
    first = bytes(socks[0].sent)
    assert b'{"a": 1}' in first
    # The PUBACK never comes: the connection is declared dead...
    c.step(2 + RESPONSE_MS)
    assert not c.up and socks[0].closed
    # ...and after reconnecting, the message goes again, DUP set, same id.
    c.step(2 + RESPONSE_MS + 5000)
    connack(socks[1], session=True)
    c.step(2 + RESPONSE_MS + 5001)
    again = bytes(socks[1].sent)
    k = again.index(b"t/event") - 4
    assert again[k] == 0x30 | 0x08 | 0x02
    assert again[k + 4 + 7 : k + 4 + 9] == bytes((pid >> 8, pid & 0xFF))
    acked = []
    c.on_puback = acked.append
    socks[1].inbox += bytes((0x40, 2, pid >> 8, pid & 0xFF))
    c.step(2 + RESPONSE_MS + 5002)
    assert acked == [pid] and c.room() == c.max_inflight


def test_a_silent_connection_is_found_dead_by_keepalive():
    c, socks, _ = make()
    c.step(0)
    connack(socks[0])
    c.step(1)
    socks[0].sent = bytearray()
    wait = c.step(2)
    assert 0 < wait <= 60000
    c.step(59000)
    assert socks[0].sent == b""  # nothing to say yet
    c.step(60001)
    assert socks[0].sent == bytes((PINGREQ, 0))
    c.step(60001 + RESPONSE_MS - 1)
    assert c.up
    c.step(60001 + RESPONSE_MS)
    assert not c.up and "no answer" in c.last_error


def test_an_oversized_packet_is_skipped_and_the_next_one_read():
    c, socks, got = make(max_packet=64)
    c.step(0)
    connack(socks[0])
    c.step(1)
    big = b"x" * 200
    n = len(big) + 5  # 205: two bytes of remaining length
    socks[0].inbox += bytes((0x30, 0x80 | (n & 0x7F), n >> 7, 0, 3)) + b"t/a" + big
    socks[0].inbox += bytes((0x30, 7, 0, 3)) + b"t/b" + b"ok"
    c.step(2)
    c.step(3)
    assert c.oversized == 1
    assert got == [("t/b", b"ok")]


def test_a_refused_login_backs_off():
    c, socks, _ = make()
    c.step(0)
    socks[0].inbox += bytes((0x20, 2, 0, 5))
    wait = c.step(1)
    assert not c.up and "not authorised" in c.last_error
    assert wait >= 1000
    assert c.step(2) > 0 and len(socks) == 1  # not before the backoff


def test_send_puts_out_what_was_queued_and_a_write_error_ends_the_connection():
    c, socks, got = make()
    c.step(0)
    connack(socks[0], session=True)
    c.step(1)
    s = socks[0]
    s.sent = bytearray()
    # The app's pass: a command came in and was handled by step(); the reply
    # queued after it goes out with send(), which reads nothing.
    s.inbox += bytes((0x30, 9, 0, 5)) + b"t/cmdhi"
    c.step(2)
    assert got == [("t/cmd", b"hi")]
    c.publish("t/reply", "ok", 0)
    s.inbox += bytes((0x30, 9, 0, 5)) + b"t/cmdho"
    c.send()
    assert bytes(s.sent).endswith(b"t/replyok") and got == [("t/cmd", b"hi")]

    def broken(b):
        raise OSError(104)

    s.write = broken
    c.publish("t/reply", "again", 0)
    c.send()
    assert not c.up and s.closed and "socket error" in c.last_error


class RefusedCertificate(Sock):
    """A TLS socket on MicroPython whose broker's certificate fails verification:
    mbedtls's reason comes as a ValueError, from whichever call drives the handshake."""

    def write(self, b):
        raise ValueError("\nThe certificate is not correctly signed by the trusted CA\n")

    readinto = write


def test_a_refused_certificate_ends_the_connection_with_the_reason():
    events = []
    c = Client(lambda: RefusedCertificate(), "lamp-1", 60, on_event=lambda n, d: events.append(d))
    wait = c.step(0)  # raises nothing: the loop goes on lighting
    assert not c.up and c.sock is None
    assert c.last_error == "socket error TLS: The certificate is not correctly signed by the trusted CA"
    assert events == [c.last_error + ", next try in 1 s"]
    assert 0 < wait <= 1000  # tried again with backoff, like any failed connection


def test_a_packet_too_short_for_its_kind_or_a_topic_not_utf8_is_malformed():
    # From a broken broker or something posing as one: counted, the connection
    # ended with the reason, and nothing raised into the main loop.
    for bad in (
        bytes((0x30, 1, 0)),  # a PUBLISH shorter than its topic length
        bytes((0x32, 4, 0, 1, 0x61, 0)),  # QoS 1 without its packet id
        bytes((0x30, 3, 0, 1, 0xFF)),  # a topic that is not UTF-8
        bytes((0x40, 1, 0)),  # a PUBACK without its packet id
    ):
        c, socks, got = make()
        c.step(0)
        connack(socks[0])
        c.step(1)
        assert c.up
        socks[0].inbox += bad
        c.step(2)
        assert not c.up and c.malformed == 1 and got == [], bad
        assert socks[0].closed and c.last_error == "malformed packet from the broker"
