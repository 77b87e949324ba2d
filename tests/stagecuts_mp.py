# tests/stagecuts.py's cuts on MicroPython's own littlefs (VfsLfs2) over a
# block device in RAM whose cut_at-th program or erase is torn half-way and
# stops the code there. Run by tests/test_staging_cuts.py.

import stagecuts
import vfs  # pyright: ignore[reportMissingImports]

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
        self.stop = stagecuts.CutHere()
        if fresh:
            vfs.VfsLfs2.mkfs(self, readsize=32, progsize=32, lookahead=32)
        self.fs = vfs.VfsLfs2(self, readsize=32, progsize=32, lookahead=32)

    def _op(self, at, data):
        if self.dead:
            raise self.stop  # no power: the code stays stopped
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


def main():
    blank = RamFlash(b"\xff" * (BS * BLOCKS), None, fresh=True).image()
    print("update", stagecuts.exhaustive(RamFlash, blank)[0], "cuts")
    print("rollback", stagecuts.exhaustive_rollback(RamFlash, blank), "cuts")
    print("twice", stagecuts.exhaustive_twice(RamFlash, blank), "cuts")


main()
