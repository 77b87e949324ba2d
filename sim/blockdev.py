# A littlefs block device over an image file, for MicroPython's VfsLfs2: the
# board's flash without holding the image in the heap. MicroPython only.

_BLOCK = 4096
# An erased block, made once: an erase must not allocate (the flash chip needs no
# RAM for it, and a 4 KiB allocation can fail in a fragmented heap).
_ERASED = b"\xff" * _BLOCK


class FileBlockDevice:
    """A littlefs block device over an image file: no flash image in the heap."""

    def __init__(self, path, world=None):
        """world: the simulation's, asked how much of each write happens (power cuts)."""
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.count = self.f.tell() // _BLOCK
        self.world = world

    def _allowed(self, n):
        return n if self.world is None else self.world.flash_write(n)

    def _stop_if_cut(self):
        # The board has no power: littlefs stops in the middle of what it was
        # doing, and so does the firmware (a BaseException it cannot catch).
        if self.world is not None and not self.world.powered:
            from _hub import PowerLoss

            raise PowerLoss()

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * _BLOCK + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            off = 0
        k = self._allowed(len(buf))
        if k:
            self.f.seek(n * _BLOCK + off)
            self.f.write(buf if k == len(buf) else memoryview(buf)[:k])
        self._stop_if_cut()

    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return _BLOCK
        if op == 6:  # erase
            k = self._allowed(_BLOCK)
            if k:
                self.f.seek(arg * _BLOCK)
                self.f.write(_ERASED if k == _BLOCK else memoryview(_ERASED)[:k])
            self._stop_if_cut()
            return 0
        if op == 3:
            self.f.flush()
        return 0
