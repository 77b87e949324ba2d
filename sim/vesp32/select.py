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


class poll:
    def __init__(self):
        self._entries = []  # [object, mask]

    def register(self, obj, mask=POLLIN | POLLOUT):
        for e in self._entries:
            if e[0] is obj:
                e[1] = mask
                return
        self._entries.append([obj, mask])

    def modify(self, obj, mask):
        for e in self._entries:
            if e[0] is obj:
                e[1] = mask
                return
        raise OSError(2)  # ENOENT, as MicroPython says

    def unregister(self, obj):
        self._entries = [e for e in self._entries if e[0] is not obj]

    def _ready(self):
        out = []
        for obj, mask in self._entries:
            if isinstance(obj, socket.socket):
                ev = (POLLIN if mask & POLLIN and obj.readable() else 0) | (mask & POLLOUT)
            elif obj is sys.stdin:
                # The USB serial console: bytes typed on the virtual board's port.
                ev = POLLIN if mask & POLLIN and _hub.board.console_ready() else 0
            else:
                ev = obj.ioctl(3, mask)  # MP_STREAM_POLL
            if ev:
                out.append((obj, ev))
        return out

    def poll(self, timeout=-1):
        b = _hub.board
        b.console_wanted = any(e[0] is sys.stdin for e in self._entries)
        try:
            return b.wait_us(-1 if timeout < 0 else timeout * 1000, self._ready)
        finally:
            b.console_wanted = False

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))
