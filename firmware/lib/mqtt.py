# A non-blocking MQTT 3.1.1 client for the main loop: step(now) does what can be
# done without waiting and returns the ms until it next needs a call; it never
# blocks, so the lights and the button are served while the network is slow,
# down or lying.
#
# What it survives (mqtt_as's list): Wi-Fi loss (the app calls drop(); the
# connection is made again with backoff); a broker that goes away (reconnect
# with backoff, 1 s doubling to a minute); a connection that dies without an
# error (keepalive: a PINGREQ after `keepalive_s` without sending anything, which
# the broker allows 1.5 times over; no answer to it or to a PUBLISH
# within RESPONSE_MS means dead); lost PUBACKs (QoS 1 messages stay in flight
# and are sent again with DUP after every reconnect, in order).
#
# Persistent session (clean session 0, a fixed client id): the broker keeps our
# subscriptions and queues QoS 1 messages for us while we are away. Last will
# and a retained birth message say online/offline. Bounded: at most `inflight`
# unacknowledged QoS 1 messages; the outgoing buffer and an incoming packet are
# limited to `max_packet` bytes (a bigger incoming packet is skipped and counted).
# One that cannot be read (too short for its kind, a topic not UTF-8) is counted
# and ends the connection, which is made again: nothing a broker sends raises.
#
# Pushing back: on_message may return False (the app cannot take it now). A
# QoS 1 message not taken is not acknowledged, nor is any after it on that
# connection (PUBACKs go in the order the messages came): the broker keeps them
# and sends them again after the next connect, which redeliver() makes once the
# app has room. With hold_acks, the PUBACKs of messages taken wait, in order,
# for ack(n): the app acknowledges a message only once what it did is safe, so
# that one whose effect or answer a power cut lost comes again.
#
# The socket comes from `open_socket()`, injected: a non-blocking socket with its
# connect started (TLS, if wanted, is the opener's business). The client only
# calls write(), readinto() and close() on it, as on MicroPython's streams. A TLS
# socket on MicroPython raises ValueError when the broker's certificate fails
# verification: that ends the connection like any socket error, with the reason.

from ticks import add, diff

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
DUP = 0x08  # in a PUBLISH's first byte: sent before
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

RESPONSE_MS = 10000  # CONNACK, PUBACK, SUBACK or PINGRESP must come within this
BACKOFF_MIN_MS = 1000
BACKOFF_MAX_MS = 60000

# errno values meaning "not connected yet" (Linux and lwip numbering)
_NOT_YET = (11, 107, 115, 119, 128)

DOWN = "down"
CONNECTING = "connecting"
UP = "up"

_CONNACK_WHY = {
    1: "protocol version refused",
    2: "client id refused",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


def _ignore(*args):
    pass


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out


def _string(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def _tls_error(e):
    # MicroPython's TLS (mbedtls) refusing the broker's certificate.
    return OSError("TLS: " + str(e).strip())


class Client:
    def __init__(
        self,
        open_socket,
        client_id,
        keepalive_s=60,
        user=None,
        password=None,
        will=None,
        birth=None,
        max_packet=2048,
        inflight=8,
        on_event=_ignore,
    ):
        """will, birth: (topic, payload, retain): the will at QoS 1, published by
        the broker when the connection dies; the birth message after each connect."""
        self.open_socket = open_socket
        self.client_id = client_id
        self.keepalive_ms = keepalive_s * 1000
        self.user = user
        self.password = password
        self.will = will
        self.birth = birth
        self.max_packet = max_packet
        self.max_inflight = inflight
        self.on_message = _ignore  # (topic str, payload bytes) -> False: not taken now
        self.hold_acks = False  # PUBACKs wait for ack()
        self.qos = 0  # of the message on_message is given
        self.on_puback = _ignore  # (packet id)
        self.on_event = on_event  # (name, detail): "mqtt", "up"/"down: why"
        self.state = DOWN
        self.sock = None
        self.subscriptions = []  # (topic, qos), sent after every connect without a session
        self.inflight = {}  # packet id -> its PUBLISH packet (a bytearray), until PUBACKed
        self._acks = []  # packet ids of the messages taken, not acknowledged yet (hold_acks)
        self._refusing = False  # a message was not taken on this connection
        self._order = []  # packet ids in the order sent
        self._pid = 0
        self._out = bytearray()
        self._rx = bytearray(max_packet + 5)
        self._rx_len = 0
        self._skip = 0  # bytes of an oversized packet still to discard
        self._since = 0  # ticks: connect started / last packet sent
        self._last_rx = 0
        self._waiting = None  # ticks by which an answer is due, or None
        self._retry_at = None
        self._backoff = BACKOFF_MIN_MS
        self._now = 0
        self.connects = 0
        self.oversized = 0
        self.malformed = 0
        self.refused = 0  # QoS 1 messages left with the broker (pushed back), sent again later
        self.lost = 0  # QoS 0 messages not taken: gone
        self.last_error = None

    # --- what the app calls ------------------------------------------------

    @property
    def up(self):
        return self.state == UP

    def room(self):
        """How many more QoS 1 messages can be in flight now."""
        return self.max_inflight - len(self.inflight)

    def subscribe(self, topic, qos=1):
        self.subscriptions.append((topic, qos))
        if self.state == UP:
            self._send_subscribe()

    def publish(self, topic, payload, qos=0, retain=False):
        """Queue a message; returns its packet id (QoS 1), 0 (QoS 0), or None when
        there is no room (in-flight table or buffer full): try again later. QoS 1
        messages are kept across reconnects until PUBACKed; QoS 0 ones are sent
        only while up."""
        if isinstance(payload, str):
            payload = payload.encode()
        if qos:
            if len(self.inflight) >= self.max_inflight:
                return None
            pid = self._next_pid()
            packet = self._publish_packet(topic, payload, 1, retain, pid)
            if packet is None:
                return None
            # The packet itself is kept, not its parts: one object per message in flight.
            self.inflight[pid] = packet
            self._order.append(pid)
            if self.state == UP:
                self._queue(packet)
                self._expect_answer()
            return pid
        if self.state != UP:
            return None
        packet = self._publish_packet(topic, payload, 0, retain, 0)
        if packet is None:
            return None
        self._queue(packet)
        return 0

    def ack(self, n):
        """The first n messages taken (QoS 1, on this connection) are safe: their PUBACKs go."""
        for pid in self._acks[:n]:
            self._queue(bytes((PUBACK, 2, pid >> 8, pid & 0xFF)))
        del self._acks[:n]

    def redeliver(self):
        """The app has room again for what it did not take: a new connection
        (a clean one, no will) makes the broker send it again. True if one is made."""
        if not self._refusing or self.state != UP:
            return False
        self._queue(bytes((DISCONNECT, 0)))
        try:
            self._flush()
        except OSError:
            pass  # closed below all the same
        self._close("reconnecting: %d message(s) not taken yet" % self.refused)
        return True

    def drop(self, why):
        """The link is gone (Wi-Fi down): close now, reconnect when step() is next called."""
        if self.sock is not None:
            self._close(why)

    def disconnect(self):
        """A clean goodbye (no will)."""
        if self.state == UP:
            self._queue(bytes((DISCONNECT, 0)))
            self._flush()
        if self.sock is not None:
            self._close("disconnected")
        self._retry_at = None

    def send(self):
        """What was queued since step() goes out now (step() reads as well)."""
        try:
            self._flush()
        except OSError as e:
            self._close("socket error %s" % e)

    # --- the loop ----------------------------------------------------------

    def step(self, now):
        self._now = now
        if self.sock is None:
            if self._retry_at is not None and diff(now, self._retry_at) < 0:
                return diff(self._retry_at, now)
            self._open(now)
            if self.sock is None:
                return diff(self._retry_at, now)
        try:
            self._read(now)
            if self.sock is None:
                return self._retry_wait(now)
            if self.state == UP and not self._waiting and diff(now, self._since) >= self.keepalive_ms:
                self._queue(bytes((PINGREQ, 0)))
                self._expect_answer()
            self._flush()
        except OSError as e:
            self._close("socket error %s" % e)
            return self._retry_wait(now)
        if self._waiting is not None and diff(now, self._waiting) >= 0:
            self._close("no answer within %d s" % (RESPONSE_MS // 1000))
            return self._retry_wait(now)
        wait = self.keepalive_ms - diff(now, self._since) if self.state == UP else RESPONSE_MS
        if self._waiting is not None:
            w = diff(self._waiting, now)
            wait = w if w < wait else wait
        if self._out:
            wait = 20 if wait > 20 else wait  # the socket was full: try again soon
        return wait if wait > 0 else 0

    def _retry_wait(self, now):
        return diff(self._retry_at, now) if self._retry_at is not None else 0

    # --- connection --------------------------------------------------------

    def _open(self, now):
        self._now = now
        try:
            self.sock = self.open_socket()
        except OSError as e:
            self._fail(now, "cannot connect: %s" % e)
            return
        self.state = CONNECTING
        self.connects += 1
        self._out = bytearray()
        self._acks = []
        self._refusing = False
        self._rx_len = 0
        self._skip = 0
        self._since = now
        self._waiting = add(now, RESPONSE_MS)
        flags = 0x00  # clean session 0: keep our subscriptions and queued messages
        payload = _string(self.client_id)
        if self.will is not None:
            flags |= 0x04 | (1 << 3) | (0x20 if self.will[2] else 0)
            payload += _string(self.will[0]) + _string(self.will[1])
        if self.user is not None:
            flags |= 0x80
            payload += _string(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _string(self.password)
        ka = self.keepalive_ms // 1000
        var = b"\x00\x04MQTT\x04" + bytes((flags, ka >> 8, ka & 0xFF))
        self._queue(bytes((CONNECT,)) + _varint(len(var) + len(payload)) + var + payload)

    def _fail(self, now, why):
        self.last_error = why
        self._retry_at = add(now, self._backoff)
        self.on_event("mqtt", "%s, next try in %d s" % (why, self._backoff // 1000))
        self._backoff = self._backoff * 2 if self._backoff * 2 < BACKOFF_MAX_MS else BACKOFF_MAX_MS

    def _close(self, why):
        was_up = self.state == UP
        s = self.sock
        try:
            if s is not None:
                s.close()
        except OSError:
            pass
        self.sock = None
        self.state = DOWN
        self._waiting = None
        self._out = bytearray()
        self._acks = []  # not acknowledged: the broker sends them again
        if was_up:
            self.last_error = why
            self.on_event("mqtt", "down: %s" % why)
            self._retry_at = None  # a connection that worked: try again at once
            self._backoff = BACKOFF_MIN_MS
        else:
            self._fail(self._now, why)

    def _connected(self, now, session_present):
        self.state = UP
        self._backoff = BACKOFF_MIN_MS
        self.last_error = None
        self._waiting = None
        # (Whether the broker kept our session is not said: brokers differ in
        # when they drop the old connection, and it changes nothing we do.)
        self.on_event("mqtt", "up")
        if not session_present:
            self._send_subscribe()
        # Unacknowledged messages again, oldest first, marked as duplicates.
        for pid in self._order:
            packet = self.inflight[pid]
            packet[0] |= DUP
            self._queue(packet)
        if self.birth is not None:
            self.publish(self.birth[0], self.birth[1], 0, self.birth[2])
        if self._order:
            self._expect_answer()

    def _send_subscribe(self):
        if not self.subscriptions:
            return
        body = bytearray()
        for topic, qos in self.subscriptions:
            body += _string(topic)
            body.append(qos)
        pid = self._next_pid()
        self._queue(bytes((SUBSCRIBE,)) + _varint(len(body) + 2) + bytes((pid >> 8, pid & 0xFF)) + body)
        self._expect_answer()

    # --- packets out -------------------------------------------------------

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self.inflight:
                return self._pid

    def _publish_packet(self, topic, payload, qos, retain, pid):
        t = _string(topic)
        n = len(t) + len(payload) + (2 if qos else 0)
        if n + 5 > self.max_packet:
            self.on_event("mqtt", "message for %s too big (%d bytes), not sent" % (topic, n))
            return None
        head = PUBLISH | (qos << 1) | (1 if retain else 0)
        pkt = bytearray((head,)) + _varint(n) + t
        if qos:
            pkt += bytes((pid >> 8, pid & 0xFF))
        return pkt + payload

    def _queue(self, packet):
        self._out += packet
        self._since = self._now

    def _expect_answer(self):
        if self._waiting is None:
            self._waiting = add(self._now, RESPONSE_MS)

    def _flush(self):
        s = self.sock
        while self._out and s is not None:
            try:
                n = s.write(self._out)
            except OSError as e:
                if self.state == CONNECTING and e.args and e.args[0] in _NOT_YET:
                    return  # the TCP connection is still being made
                raise
            except ValueError as e:
                raise _tls_error(e)
            if not n:
                return  # the socket is full (or still connecting): later
            self._out = self._out[n:]

    # --- packets in --------------------------------------------------------

    def _read(self, now):
        self._now = now
        while True:
            s = self.sock
            if s is None:
                return
            mv = memoryview(self._rx)
            try:
                n = s.readinto(mv[self._rx_len :])
            except ValueError as e:
                raise _tls_error(e)
            if n is None:
                return  # nothing more for now
            if n == 0:
                self._close("closed by the broker")
                return
            self._last_rx = now
            self._rx_len += n
            self._parse(now)

    def _parse(self, now):
        rx = self._rx
        while self._rx_len:
            if self._skip:
                k = self._skip if self._skip < self._rx_len else self._rx_len
                self._consume(k)
                self._skip -= k
                continue
            # Fixed header: type byte, then 1-4 bytes of remaining length.
            length = 0
            shift = 0
            i = 1
            while True:
                if i >= self._rx_len:
                    return  # the header is not all here yet
                b = rx[i]
                length |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    self._malformed()
                    return
            total = i + length
            if total > len(rx):
                self.oversized += 1
                self._skip = total
                continue
            if total > self._rx_len:
                return
            self._handle(rx[0], memoryview(rx)[i:total], now)
            if self.sock is None:
                return
            self._consume(total)

    def _consume(self, n):
        left = self._rx_len - n
        if left:
            self._rx[0:left] = self._rx[n : self._rx_len]
        self._rx_len = left

    def _handle(self, head, body, now):
        kind = head & 0xF0
        n = len(body)
        if kind == PUBLISH:
            qos = (head >> 1) & 3
            tlen = (body[0] << 8) | body[1] if n >= 2 else n
            k = 2 + tlen + (2 if qos else 0)  # where the payload starts
            if qos == 3 or k > n:
                return self._malformed()
            try:
                topic = bytes(body[2 : 2 + tlen]).decode()
            except ValueError:  # not UTF-8
                return self._malformed()
            if qos and self._refusing:
                self.refused += 1
                return
            self.qos = qos
            if self.on_message(topic, bytes(body[k:])) is False:
                if qos:
                    self._refusing = True
                    self.refused += 1
                else:
                    self.lost += 1
                return
            if qos:
                if self.hold_acks:
                    self._acks.append((body[k - 2] << 8) | body[k - 1])
                else:
                    self._queue(bytes((PUBACK, 2, body[k - 2], body[k - 1])))
        elif n < 2 and (kind == PUBACK or kind == CONNACK):
            self._malformed()
        elif kind == PUBACK:
            pid = (body[0] << 8) | body[1]
            if self.inflight.pop(pid, None) is not None:
                self._order.remove(pid)
                self.on_puback(pid)
            self._answered()
        elif kind == CONNACK:
            rc = body[1]
            if rc:
                why = _CONNACK_WHY.get(rc, "refused (%d)" % rc)
                self._close("broker refused: %s" % why)
                return
            self._connected(now, bool(body[0] & 1))
        elif kind == SUBACK:
            for i in range(2, len(body)):
                if body[i] == 0x80:
                    self.on_event("mqtt", "subscription %d refused" % (i - 1))
            self._answered()
        elif kind == PINGRESP:
            self._answered()
        else:
            self.malformed += 1

    def _malformed(self):
        self.malformed += 1
        self._close("malformed packet from the broker")

    def _answered(self):
        # Something answered: a later answer is still due if messages are in flight.
        self._waiting = add(self._now, RESPONSE_MS) if self.inflight else None
