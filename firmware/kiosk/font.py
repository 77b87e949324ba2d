# The kiosk's bitmap font (made by `parkctl build kiosk`, host/parkctl/font.py):
# ASCII and GB2312 level 1, read glyph by glyph from the file, never loaded
# whole (130 KB; the index is searched on the file too). A character the font
# lacks is drawn as a box, never an error.

import struct

_HEAD = 8


class Font:
    def __init__(self, path, opener=open):
        self.f = opener(path, "rb")
        head = self.f.read(_HEAD)
        if len(head) != _HEAD or head[:4] != b"PKF1":
            raise ValueError("%s is not a kiosk font (PKF1)" % path)
        self.width, self.height, self.count = struct.unpack("<BBH", head[4:])
        self.row = (self.width + 7) // 8
        self.size = self.row * self.height
        self._cp = bytearray(2)
        self.missing = 0  # characters drawn as the box

    def close(self):
        self.f.close()

    def _code(self, i):
        self.f.seek(_HEAD + 2 * i)
        self.f.readinto(self._cp)
        return self._cp[0] | self._cp[1] << 8

    def find(self, cp):
        """The glyph's number for a code point, or -1."""
        lo, hi = 0, self.count - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            c = self._code(mid)
            if c == cp:
                return mid
            if c < cp:
                lo = mid + 1
            else:
                hi = mid - 1
        return -1

    def glyph(self, ch, buf=None):
        """The bitmap of one character (MONO_HLSB rows) into buf (or a new bytearray)."""
        if buf is None:
            buf = bytearray(self.size)
        i = self.find(ord(ch))
        if i < 0:
            self.missing += 1
            self._box(buf)
            return buf
        self.f.seek(_HEAD + 2 * self.count + i * self.size)
        self.f.readinto(buf)
        return buf

    def _box(self, buf):
        r, h = self.row, self.height
        for y in range(h):
            for x in range(r):
                buf[y * r + x] = 0
        last = (self.width - 1) % 8
        for x in range(r):  # top and bottom edges, 1 pixel in from the cell
            buf[1 * r + x] = buf[(h - 2) * r + x] = 0xFF
        for y in range(1, h - 1):
            buf[y * r] |= 0x40
            buf[y * r + r - 1] |= 0x80 >> (last - 1 if last else 7)

    def text(self, s):
        """A whole line as (width, MONO_HLSB bytearray): what a frame buffer blits."""
        n = len(s)
        w = n * self.width
        stride = (w + 7) // 8
        out = bytearray(stride * self.height)
        g = bytearray(self.size)
        for k in range(n):
            self.glyph(s[k], g)
            for y in range(self.height):
                for x in range(self.width):
                    if g[y * self.row + x // 8] & (0x80 >> (x % 8)):
                        px = k * self.width + x
                        out[y * stride + px // 8] |= 0x80 >> (px % 8)
        return w, out


class Boxes(Font):
    """What the kiosk draws with when the font file is missing or damaged: every
    character a box, so the screens still work (and the problem shows)."""

    def __init__(self, width=16, height=16):
        self.f = None
        self.width, self.height, self.count = width, height, 0
        self.row = (width + 7) // 8
        self.size = self.row * height
        self.missing = 0

    def close(self):
        pass

    def find(self, cp):
        return -1
