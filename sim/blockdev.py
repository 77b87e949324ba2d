# A littlefs block device over an image file, for MicroPython's VfsLfs2: the
# board's flash without holding the image in the heap. MicroPython only.

_BLOCK = 4096


class FileBlockDevice:
    """A littlefs block device over an image file: no flash image in the heap."""

    def __init__(self, path):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.count = self.f.tell() // _BLOCK

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * _BLOCK + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            off = 0
        self.f.seek(n * _BLOCK + off)
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return _BLOCK
        if op == 6:  # erase
            self.f.seek(arg * _BLOCK)
            self.f.write(b"\xff" * _BLOCK)
            return 0
        if op == 3:
            self.f.flush()
        return 0
