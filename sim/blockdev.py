# A littlefs block device over an image file, for MicroPython's VfsLfs2: the
# board's flash without holding the image in the heap. MicroPython only.
# With a world, each program and erase is a NOR flash operation that takes the
# chip's time and that a power cut can tear (World.flash_op, docs/sim.md);
# sim/cpython.py does the same for littlefs-python, byte for byte.

_BLOCK = 4096
# An erased block, made once: an erase must not allocate (the flash chip needs no
# RAM for it, and a 4 KiB allocation can fail in a fragmented heap).
_ERASED = b"\xff" * _BLOCK
_VOID_BLOCKS = 4  # what a mount the power cut can still write (after_power_cut)


class FileBlockDevice:
    """A littlefs block device over an image file: no flash image in the heap."""

    def __init__(self, path, world=None):
        """world: the simulation's, asked how much of each operation happens (power cuts)."""
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.count = self.f.tell() // _BLOCK
        self.world = world
        self.one = bytearray(1)  # the torn byte, read and written in place
        self.gone = False  # the power went since the mount over this: see after_power_cut

    def after_power_cut(self):
        """The same flash for a new mount, this one's writes stopped for good.
        On a board a power cut ends everything littlefs was doing. Here the old
        mount's objects live on in the heap: MicroPython's VfsLfs2 takes the
        PowerLoss raised in a write for an I/O error and goes on, and a file it
        had open is closed by the garbage collector whenever that runs, after
        the power is back, committing what the old mount believed over what the
        new one wrote (a whole boot's records were lost so: campaign 7, trial 67)."""
        self.gone = True
        # Block -> what the dead mount believes is in it. Made now: its writes come
        # from a file's finalizer, while the garbage collector holds the heap.
        self.void = [[-1, bytearray(_BLOCK)] for _ in range(_VOID_BLOCKS)]  # [block, content]
        new = object.__new__(FileBlockDevice)
        new.f, new.count, new.world, new.one, new.gone = self.f, self.count, self.world, self.one, False
        return new

    def _void(self, n):
        # What the dead mount writes goes nowhere, but reads back as written, so
        # that littlefs's checks pass and it does not go looking for room (an
        # OSError from a garbage-collected file's close, printed on the console).
        # Nothing here may allocate: the collector holds the heap while it runs.
        for e in self.void:
            if e[0] == n:
                return e[1]
        for e in self.void:
            if e[0] < 0:
                e[0] = n
                self.f.seek(n * _BLOCK)
                self.f.readinto(e[1])
                return e[1]
        return None  # more than a close commits: dropped (and littlefs says so)

    def _stop_if_cut(self):
        # The board has no power: littlefs stops in the middle of what it was
        # doing, and so does the firmware (a BaseException it cannot catch).
        if self.world is not None and not self.world.powered:
            from _hub import PowerLoss

            raise PowerLoss()

    def _torn(self, at, erase, value):
        # The byte where the power went: some of its bits changed. A program
        # only clears bits (value: what it was programming), an erase only sets them.
        one = self.one
        self.f.seek(at)
        self.f.readinto(one)
        bits = self.world.tear_bits
        one[0] = (one[0] | bits) if erase else (one[0] & (value | bits))
        self.f.seek(at)
        self.f.write(one)

    def readblocks(self, n, buf, off=0):
        if self.gone:
            # (Byte by byte, in loops that allocate nothing: see _void.)
            for e in self.void:
                if e[0] == n:
                    b = e[1]
                    for i in range(len(buf)):
                        buf[i] = b[off + i]
                    return
        self.f.seek(n * _BLOCK + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            off = 0
        if self.gone:
            b = self._void(n)
            if b is not None:
                for i in range(len(buf)):
                    b[off + i] = buf[i]
            return
        w = self.world
        size = len(buf)
        k = size if w is None else w.flash_op(False, size)
        if k:
            self.f.seek(n * _BLOCK + off)
            self.f.write(buf if k == size else memoryview(buf)[:k])
        if k < size:
            self._torn_if_cut(n * _BLOCK + off + k, False, buf[k])
        self._stop_if_cut()

    def _torn_if_cut(self, at, erase, value):
        # Only the operation the power went in leaves a torn byte: one tried
        # without power (k == 0 from the start) changes nothing.
        if self.world.torn:
            self.world.torn = False
            self._torn(at, erase, value)

    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return _BLOCK
        if op == 6:  # erase
            if self.gone:
                b = self._void(arg)
                if b is not None:
                    for i in range(_BLOCK):
                        b[i] = 0xFF
                return 0
            w = self.world
            k = _BLOCK if w is None else w.flash_op(True, _BLOCK)
            if k:
                self.f.seek(arg * _BLOCK)
                self.f.write(_ERASED if k == _BLOCK else memoryview(_ERASED)[:k])
            if k < _BLOCK:
                self._torn_if_cut(arg * _BLOCK + k, True, 0xFF)
            self._stop_if_cut()
            return 0
        if op == 3:
            self.f.flush()
        return 0
