"""The MQTT client (firmware/lib/mqtt.py) against whatever a broker, or anything
posing as one, can send once connected: no bytes, in any pieces, make a pass of
the main loop raise; a packet it cannot read is counted and ends the connection
with the reason, and the client connects again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from mqtt import Client

CONNACK = bytes((0x20, 2, 0, 0))
PINGRESP = bytes((0xD0, 0))


class Broker:
    """One connection to a broker that answers CONNECT and PINGREQ, after first
    sending `garbage` once it has said CONNACK; handed out a few bytes at a time."""

    def __init__(self, garbage: bytes = b""):
        self.garbage = garbage
        self.inbox = bytearray()
        self.got = bytearray()

    def write(self, b):
        self.got += b
        while len(self.got) >= 2:  # whole packets only (their lengths are < 128 here)
            n = 2 + self.got[1]
            if len(self.got) < n:
                break
            kind = self.got[0] & 0xF0
            if kind == 0x10:
                self.inbox += CONNACK + self.garbage
            elif kind == 0xC0:
                self.inbox += PINGRESP
            del self.got[:n]
        return len(b)

    def readinto(self, mv):
        if not self.inbox:
            return None
        n = min(len(mv), len(self.inbox), 7)
        mv[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def close(self):
        pass


# Whole packets of every kind the client reads, with bodies of any length and
# content, mixed with raw bytes.
packets = st.builds(
    lambda head, body: bytes((head, len(body))) + body,
    st.sampled_from([0x20, 0x30, 0x32, 0x34, 0x40, 0x90, 0xB0, 0xD0, 0x00, 0xF0]),
    st.binary(max_size=40),
)
streams = st.lists(st.one_of(packets, st.binary(min_size=1, max_size=12)), max_size=12)


@settings(max_examples=400)
@given(streams)
def test_no_bytes_from_the_broker_make_a_pass_raise(parts):
    socks = []

    def opener():
        socks.append(Broker(b"".join(parts) if not socks else b""))
        return socks[-1]

    events = []
    c = Client(opener, "lamp-1", 60, on_event=lambda n, d: events.append(d))
    now = 0
    while now < 3600000:  # an hour of passes
        wait = c.step(now)  # raises nothing, whatever came
        assert wait >= 0
        now += max(wait, 1)
    # Whatever came, the client is connected again on the connections that
    # behave, and each connection it dropped, it said why.
    assert c.up and len(socks) <= 2
    said = ("up", "down: ", "subscription ")  # a SUBACK in the garbage may refuse one
    assert all(e.startswith(said) or ", next try in " in e for e in events), events
