# The virtual ESP32's `socket`: TCP over the host's real network (a real broker
# on loopback), through the world's Wi-Fi. With the link down nothing goes out
# or comes in, as when the access point is gone: a connection is not told, it
# just goes quiet (what keepalives are for). A reset or power cut closes every
# socket the board had, without a goodbye. The API is MicroPython's: write()
# and readinto() return None when a non-blocking socket would block.
#
# The clock must not run past an answer that is on its way: a broker answers
# in a fraction of a millisecond of real time, while a sleeping firmware would
# jump minutes of virtual time. So the socket reads the MQTT packets going by
# (headers only) and counts requests that get an answer (CONNECT, QoS 1
# PUBLISH, SUBSCRIBE, PINGREQ) against answers read; while one is owed, the
# board waits for it in real time (_hub.Board.wait_us) before moving the clock.
#
# Data nobody announced (a command from a tool outside the simulation) arrives
# at some moment of real time, which maps to no particular moment of virtual
# time. So once the host's socket was found with nothing to read, or with all
# that was owed read, it is not asked again for QUIET_US of virtual time,
# unless an answer or a push is owed or the world says something changed (the
# broker stopped, data woke a paced clock). A paced clock keeps time with the
# wall clock: there the socket is asked again at every new instant. Idle
# passes then cost no system call, and a keepalive's round trip three (send,
# poll, receive). What the broker sends on its own right after a CONNACK or a
# SUBACK (messages it queued for the session, retained ones) is looked for at
# that instant with real checks.
#
# The platform puts the runtime's own socket module in _hub.net (this module
# shadows it on the path).

import _hub

AF_INET = 2
SOCK_STREAM = 1
SOCK_DGRAM = 2
IPPROTO_TCP = 6
SOL_SOCKET = 0xFFF
SO_REUSEADDR = 4

_EAGAIN = 11
_EHOSTUNREACH = 113


def _link():
    return _hub.board.world.wifi_up()


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if not _link():
        raise OSError(-202)  # the ESP32's "no DNS answer"
    return _hub.net.getaddrinfo(host, port, 0, SOCK_STREAM)


# First byte's type nibble -> requests that get an answer / answers.
_ASKS = (0x1, 0x8, 0xC)  # CONNECT, SUBSCRIBE, PINGREQ (and QoS 1 PUBLISH, below)
_ANSWERS = (0x2, 0x4, 0x9, 0xB, 0xD)  # CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP
# What the centre listens to (sim/centre.py): it waits until it has as many
# messages on these as the lamps published.
_TO_CENTRE = (b"/event", b"/reply", b"/status", b"/fetch")


# Without a paced clock, unannounced data is looked for at most this often
# (longer than the MQTT keepalive, so an idle connection costs no poll of its own).
QUIET_US = 300 * 1000000
_PEEK = 64  # body bytes kept of each packet: enough for a topic


class _Packets:
    """Finds MQTT packets in one direction of a stream; calls seen(first byte,
    the first bytes of the body) once each has gone by whole."""

    def __init__(self, seen):
        self.seen = seen
        self.reset()

    def reset(self):
        self.head = bytearray()  # fixed header bytes so far
        self.left = 0  # body bytes of the current packet still to come
        self.body = bytearray()
        self.first = 0

    def feed(self, data):
        i = 0
        n = len(data)
        while i < n:
            if self.left:
                k = min(self.left, n - i)
                room = _PEEK - len(self.body)
                if room > 0:
                    self.body += data[i : i + min(k, room)]
                self.left -= k
                i += k
                if not self.left:
                    self.seen(self.first, self.body)
                continue
            self.head.append(data[i])
            i += 1
            h = self.head
            if len(h) >= 2 and not h[-1] & 0x80:
                length = 0
                for j in range(len(h) - 1, 0, -1):
                    length = (length << 7) | (h[j] & 0x7F)
                self.first = h[0]
                self.head = bytearray()
                self.body = bytearray()
                self.left = length
                if not length:
                    self.seen(self.first, self.body)

    def between(self):
        """Not in the middle of a packet."""
        return not self.left and not self.head


def _topic(body):
    n = (body[0] << 8) | body[1] if len(body) >= 2 else 0
    return bytes(body[2 : 2 + n])


def _errno(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else getattr(e, "errno", 5)


class _Conn:
    """A connection's state, as lwIP keeps it on the board: in its own pools,
    outside MicroPython's heap. So a _Conn, once made, serves one connection after
    another (socket() takes a free one, end() frees it); the firmware holds a
    `socket`, which points at its _Conn until it is closed. board.sockets and
    board.lingering hold _Conns."""

    def __init__(self):
        self._s = None  # the host's socket, while a connection uses this state
        self._recv = None
        self._board = None
        self.owner = None  # the firmware's socket using this connection
        self.gen = 0  # counts the connections made with this state
        self._poll = None
        self._sent = _Packets(self._asked)
        self._got = _Packets(self._answered)
        self._to_centre = {}  # packet ids of QoS 1 messages for the centre, until their PUBACK
        self._closed = True  # by the firmware
        self._ended = True  # at the broker's end too
        self._fresh()

    def _fresh(self):
        """What a connection starts with."""
        self.owed = 0  # answers the broker owes us
        self.pushes = 0  # messages the world knows are on their way to us
        self._watching = False  # _s is registered in _poll
        self._sent.reset()
        self._got.reset()
        self._to_centre.clear()
        self.keepalive_s = 0  # from our CONNECT
        self.session = False  # CONNACK accepted: the broker holds our will
        self.goodbye = False  # we sent DISCONNECT: no will
        self.peer_gone = False  # the broker's end died first (reset, end of stream): no will
        self._quiet_at = -QUIET_US  # the virtual time the host's socket was last found drained
        self._held_at = -1  # the virtual time of the last CONNACK or SUBACK (see the top)

    def open(self, owner, af, type, proto):
        self._s = _hub.net.socket(af, type, proto)
        # The host's Nagle delays (40 ms on loopback) are not the simulated network's.
        self._s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (Linux; MicroPython names neither)
        self._recv = self._s.recv_into if hasattr(self._s, "recv_into") else self._s.readinto
        self._board = _hub.board
        self._board.sockets.append(self)
        self.owner = owner
        self.gen += 1
        self._closed = self._ended = False
        self._fresh()

    def _asked(self, first, body):
        kind = first >> 4
        if kind in _ASKS or (kind == 3 and first & 0x06):
            self.owed += 1
        topic = _topic(body) if kind == 3 else b""
        if topic.endswith(_TO_CENTRE):
            # Counted once the broker has it: at its PUBACK (QoS 1), or now (QoS 0).
            if first & 0x06:
                n = 2 + len(topic)
                self._to_centre[(body[n] << 8) | body[n + 1]] = True
            else:
                self._board.to_centre += 1
        elif kind == 1 and len(body) >= 10:
            self.keepalive_s = (body[8] << 8) | body[9]
        elif kind == 14:
            self.goodbye = True

    def _answered(self, first, body):
        kind = first >> 4
        if kind == 2 or kind == 9:
            self._held_at = self._board.world.now_us
        if kind == 2 and len(body) >= 2 and body[1] == 0:
            self.session = True
        if kind == 4 and len(body) >= 2 and self._to_centre.pop((body[0] << 8) | body[1], None):
            self._board.to_centre += 1
        if kind == 3 and self.pushes > 0:
            self.pushes -= 1
        elif kind not in _ANSWERS:
            return
        if self.owed > 0:
            self.owed -= 1

    def expect_push(self):
        """The centre has just sent us something: wait for it before moving the clock."""
        self.pushes += 1
        self.owed += 1

    def connect(self, addr):
        if not _link():
            raise OSError(_EHOSTUNREACH)
        # Connections the lamp lost without a goodbye end at the broker when it
        # comes back under the same client id, if their keepalive has not already.
        for old in list(self._board.lingering):
            old.end()
        try:
            self._s.connect(addr)
        except OSError as e:
            raise OSError(_errno(e)) from None

    def write(self, buf):
        if not self._board.world.powered:
            # A board without power sends nothing. (In MicroPython a cut in a
            # flash write reaches the firmware as an OSError from VfsLfs2, not as
            # the PowerLoss, and it goes on until it waits: it ends here too.)
            raise _hub.PowerLoss()
        if not self._board.world.wifi_up():
            return None
        try:
            n = self._s.send(buf)
        except OSError as e:
            if _errno(e) == _EAGAIN:
                return None
            self.peer_gone = True
            raise OSError(_errno(e)) from None
        if n:
            self._board.net_activity += 1
            self._sent.feed(memoryview(buf)[:n])
        return n

    def readinto(self, buf, n=None):
        if not self._board.world.wifi_up() or self._quiet():
            return None
        try:
            r = self._recv(buf)
        except OSError as e:
            if _errno(e) == _EAGAIN:
                self._nothing()
                return None
            self.peer_gone = True
            raise OSError(_errno(e)) from None
        if r == 0:
            self.peer_gone = True
        if r:
            self._board.net_activity += 1
            self._got.feed(memoryview(buf)[:r])
            if r < len(buf) and self._got.between() and not self.owed and not self.pushes:
                self._nothing()  # all that was owed is read: what else comes is unannounced
        return r

    def readable(self):
        """Data (or an error, or the end) is waiting: a real poll. An answer the
        broker owes is waited for here, in real time, as _hub.Board.wait_us would
        before moving the clock: one system call, not a look, a wait and a look."""
        if not self._board.world.wifi_up() or self._quiet():
            return False
        if self.owed:
            if _hub.net_ready((self._s,), _hub.answer_wait_ms()):
                return True
            self.owed = self.pushes = 0  # not coming: time goes on
        else:
            if not self._watching:
                if self._poll is None:
                    self._poll = _hub.net_select.poll()
                self._poll.register(self._s, 1)
                self._watching = True
            if self._poll.poll(0):
                return True
        self._nothing()
        return False

    def _nothing(self):
        now = self._board.world.now_us
        if self._held_at != now:
            self._quiet_at = now

    def news(self):
        """The world changed what this socket can read (the broker went away, or
        data woke a paced clock): the next check is a real one."""
        self._quiet_at = -QUIET_US

    def _quiet(self):
        """Drained lately (see the top), and nothing owed."""
        if self.owed or self.pushes:
            return False
        w = self._board.world
        return w.now_us - self._quiet_at < (QUIET_US if w.pace is None else 1)

    def close(self, abrupt=False):
        """abrupt: the board lost power or reset. Then, as when the link is down,
        nothing reaches the broker: it finds out when the keepalive it was given
        runs out (1.5 times over), or when the lamp connects again."""
        b = self._board
        if self in b.sockets:
            b.sockets.remove(self)
        if self._closed:
            return
        self._closed = True
        self.owner._c = None
        self.owner = None
        if (abrupt or not _link()) and self.session and self.keepalive_s:
            b.lingering.append(self)
            w = b.world
            w.at(w.now_us + self.keepalive_s * 1500000, {"do": "linger_end", "sock": self, "gen": self.gen})
        else:
            self.end()

    def linger_end(self, gen):
        """The broker's keepalive for connection `gen` ran out (this state may
        serve a later connection by then)."""
        if gen == self.gen:
            self.end()

    def end(self):
        """The connection ends at the broker's side now (it publishes our will)."""
        if self._ended:
            return
        self._ended = True
        b = self._board
        if self in b.lingering:
            b.lingering.remove(self)
        if self.session and not self.goodbye and not self.peer_gone:
            b.wills += 1
        b.net_activity += 1
        if self._watching:
            self._poll.unregister(self._s)
            self._watching = False
        self._s.close()
        self._s = self._recv = None
        _FREE.append(self)


_FREE = []  # _Conns no connection uses


def make_pool(n):
    """n connections' state made now (the heap benchmark's base has them, as the
    board's lwIP pools are not in the heap)."""
    while len(_FREE) < n:
        _FREE.append(_Conn())


class socket:
    """The firmware's socket: on the board a small object on the heap, whose
    connection lwIP keeps (here a _Conn)."""

    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=IPPROTO_TCP):
        self._c = _FREE.pop() if _FREE else _Conn()
        self._c.open(self, af, type, proto)

    def _conn(self):
        c = self._c
        if c is None:
            raise OSError(9)  # EBADF: closed
        return c

    def setblocking(self, flag):
        self._conn()._s.setblocking(flag)

    def settimeout(self, t):
        self._conn()._s.settimeout(t)

    def setsockopt(self, *args):
        pass

    def connect(self, addr):
        self._conn().connect(addr)

    # (write, readinto: at every pass of a networked lamp, so without _conn's call)
    def write(self, buf):
        c = self._c
        if c is None:
            raise OSError(9)
        return c.write(buf)

    send = write

    def readinto(self, buf, n=None):
        c = self._c
        if c is None:
            raise OSError(9)
        return c.readinto(buf, n)

    def close(self):
        if self._c is not None:
            self._c.close()
