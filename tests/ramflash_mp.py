# A block device in RAM for MicroPython's own littlefs (VfsLfs2) whose
# cut_at-th program or erase is torn half-way and stops the code there, as the
# simulator's flash does: the MicroPython side of tests/flashcuts.py's and
# tests/stagecuts.py's cuts (flashcuts_mp.py, stagecuts_mp.py).

import vfs  # pyright: ignore[reportMissingImports]
from lfsos import CutHere

BS = 4096
BLOCKS = 24
ERASED = b"\xff" * BS  # made once: no allocation in the block device


def _nothing():
    pass


class RamFlash:
    def __init__(self, image, cut_at, fresh=False):
        self.buf = bytearray(image)
        self.ops = 0
        self.cut_at = cut_at
        self.cut_image = None
        self.dead = False
        self.on_cut = _nothing
        self.stop = CutHere()
        if fresh:
            vfs.VfsLfs2.mkfs(self, readsize=32, progsize=32, lookahead=32)
        self.fs = vfs.VfsLfs2(self, readsize=32, progsize=32, lookahead=32)

    def _op(self, at, data):
        if self.dead:
            # No power: nothing more happens, and the code stays stopped (a file
            # closed by the unwinding, a finaliser: made beforehand, no allocation).
            raise self.stop
        self.ops += 1
        n = len(data)
        if self.ops == self.cut_at:
            n //= 2
            self.dead = True
        self.buf[at : at + n] = data if n == len(data) else memoryview(data)[:n]
        if self.dead:
            self.cut_image = bytes(self.buf)
            self.on_cut()
            raise self.stop

    def readblocks(self, n, buf, off=0):
        at = n * BS + off
        buf[:] = memoryview(self.buf)[at : at + len(buf)]

    def writeblocks(self, n, buf, off=0):
        self._op(n * BS + off, buf)

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.buf) // BS
        if op == 5:
            return BS
        if op == 6:  # erase: a torn one leaves the first half erased
            self._op(arg * BS, ERASED)
        return 0

    def image(self):
        return bytes(self.buf)
