# A broker for one device, written by hand, for tests of the uplink over the
# real MQTT client: QoS 1 both ways, the device's persistent session (what it
# did not acknowledge is sent again, first, after its next CONNECT), at most
# `max_inflight` unacknowledged messages towards it (Mosquitto's default is 20).
# Runs on CPython and MicroPython.

CONNECT = 0x10
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x80
PINGREQ = 0xC0
DISCONNECT = 0xE0


def _length(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def publish_packet(topic, payload, pid, dup=False):
    t = topic.encode()
    body = bytes((len(t) >> 8, len(t) & 0xFF)) + t + bytes((pid >> 8, pid & 0xFF)) + payload
    return bytes((0x32 | (0x08 if dup else 0),)) + _length(len(body)) + body


def packets(data):
    """(first byte, body) of each whole packet at the start of data, and how many bytes they took."""
    out = []
    i = 0
    while i < len(data):
        n = 0
        shift = 0
        j = i + 1
        while True:
            if j >= len(data):
                return out, i
            b = data[j]
            n |= (b & 0x7F) << shift
            j += 1
            if not b & 0x80:
                break
            shift += 7
        if j + n > len(data):
            return out, i
        out.append((data[i], bytes(data[j : j + n])))
        i = j + n
    return out, i


class Sock:
    def __init__(self):
        self.sent = bytearray()  # from the device, not yet read by the broker
        self.inbox = bytearray()  # from the broker, not yet read by the device
        self.closed = False

    def write(self, b):
        if self.closed:
            raise OSError(9)
        self.sent += b
        return len(b)

    def readinto(self, mv):
        if not self.inbox:
            return 0 if self.closed else None  # closed by the broker: the end of the stream
        n = min(len(mv), len(self.inbox))
        mv[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def close(self):
        self.closed = True


class Broker:
    def __init__(self, cmd_topic, max_inflight=20):
        self.cmd_topic = cmd_topic
        self.max_inflight = max_inflight
        self.queue = []  # (pid, payload) for the device, not sent yet
        self.unacked = []  # (pid, payload) sent, not acknowledged
        self.published = []  # (topic, payload) of every PUBLISH from the device, copies too
        self.sock = None
        self.up = False
        self.session = False
        self.pid = 0
        self.connects = 0
        self.down = False  # refuses connections (the broker is away)

    def command(self, payload):
        self.pid = self.pid % 65535 + 1
        self.queue.append((self.pid, payload))

    def opener(self):
        """The device's open_socket()."""
        if self.down:
            raise OSError(111)
        self._lost()
        self.sock = Sock()
        return self.sock

    def _lost(self):
        # The connection is gone: what was sent and not acknowledged goes again first.
        self.up = False
        self.queue = self.unacked + self.queue
        self.unacked = []

    def drop(self):
        """The connection dies (the network, a reset of the board)."""
        if self.sock is not None:
            self.sock.closed = True
        self.sock = None
        self._lost()

    def pump(self):
        """Read what the device wrote; answer; send it what is due."""
        s = self.sock
        if s is None:
            return
        # What the device wrote before it closed the socket arrives all the same (TCP).
        got, used = packets(s.sent)
        s.sent = s.sent[used:]
        for head, body in got:
            kind = head & 0xF0
            if kind == CONNECT:
                s.inbox += bytes((0x20, 2, 1 if self.session else 0, 0))
                self.session = True
                self.up = True
                self.connects += 1
            elif kind == PUBLISH:
                tlen = (body[0] << 8) | body[1]
                topic = body[2 : 2 + tlen].decode()
                qos = (head >> 1) & 3
                k = 2 + tlen + (2 if qos else 0)
                self.published.append((topic, body[k:]))
                if qos:
                    s.inbox += bytes((PUBACK, 2)) + body[k - 2 : k]
            elif kind == PUBACK:
                pid = (body[0] << 8) | body[1]
                self.unacked = [m for m in self.unacked if m[0] != pid]
            elif kind == SUBSCRIBE:
                s.inbox += bytes((0x90, 3)) + body[0:2] + b"\x01"
            elif kind == PINGREQ:
                s.inbox += bytes((0xD0, 0))
            elif kind == DISCONNECT:
                s.closed = True
        if s.closed:
            self.sock = None
            self._lost()
            return
        while self.up and self.queue and len(self.unacked) < self.max_inflight:
            m = self.queue.pop(0)
            s.inbox += publish_packet(self.cmd_topic, m[1], m[0])
            self.unacked.append(m)

    def replies(self, topic):
        return [p for t, p in self.published if t == topic]
