# The virtual ESP32's `select`: poll() over virtual sockets and stream objects
# (an io.IOBase with ioctl, as MicroPython's asyncio ThreadSafeFlag is). The
# wait moves the virtual clock; an IRQ's scheduled callback, data on a socket or
# a stream that becomes ready ends it early, as on the board.

import socket
import sys

import _hub

POLLIN = 1
POLLOUT = 4
POLLERR = 8
POLLHUP = 16


# What a registered object is, found once at register(): _ready runs at every wake-up.
_SOCKET = 0
_CONSOLE = 1
_STREAM = 2


class poll:
    def __init__(self):
        self._entries = []  # [object, mask, kind]
        self._console = False  # sys.stdin is registered

    def _kinds(self):
        self._console = any(e[2] == _CONSOLE for e in self._entries)

    def register(self, obj, mask=POLLIN | POLLOUT):
        for e in self._entries:
            if e[0] is obj:
                e[1] = mask
                return
        if isinstance(obj, socket.socket):
            kind = _SOCKET
        elif obj is sys.stdin:
            kind = _CONSOLE
        else:
            kind = _STREAM
        self._entries.append([obj, mask, kind])
        self._kinds()

    def modify(self, obj, mask):
        for e in self._entries:
            if e[0] is obj:
                e[1] = mask
                return
        raise OSError(2)  # ENOENT, as MicroPython says

    def unregister(self, obj):
        self._entries = [e for e in self._entries if e[0] is not obj]
        self._kinds()

    def _ready(self):
        out = None  # nothing ready (the common case) allocates nothing
        for obj, mask, kind in self._entries:
            if kind == _SOCKET:
                ev = mask & POLLOUT
                c = obj._c  # its connection, asked directly (a call less per wake-up); None: closed
                if mask & POLLIN and c is not None and c.readable():
                    ev |= POLLIN
            elif kind == _STREAM:
                ev = obj.ioctl(3, mask)  # MP_STREAM_POLL
            else:
                # The USB serial console: bytes typed on the virtual board's port.
                ev = POLLIN if mask & POLLIN and _hub.board.console_ready() else 0
            if ev:
                if out is None:
                    out = []
                out.append((obj, ev))
        return out

    def poll(self, timeout=-1):
        b = _hub.board
        b.console_wanted = self._console
        try:
            return b.wait_us(-1 if timeout < 0 else timeout * 1000, self._ready)
        finally:
            b.console_wanted = False

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))
