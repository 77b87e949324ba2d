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
        self.boxed = False  # the last glyph() was the box

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
        self.boxed = i < 0
        if i < 0:
            self.missing += 1
            self._box(buf)
            return buf
        self._read(i, buf)
        return buf

    def _read(self, i, buf):
        self.f.seek(_HEAD + 2 * self.count + i * self.size)
        self.f.readinto(buf)

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

    def advance(self, ch, g):
        """How far the pen moves after ch, whose glyph glyph() put in g: a whole
        cell for CJK and for the box; for ASCII, which the font draws narrower
        and of varying width, its ink and a pixel's gap (a space: a third of a cell)."""
        if ord(ch) >= 0x80 or self.boxed:
            return self.width
        return self._ink(g)

    def measure(self, s, g):
        """How wide s is drawn, g a glyph's buffer to use. Only ASCII glyphs are
        read (their width is their ink); nothing is counted as missing, which
        drawing counts."""
        w = 0
        for ch in s:
            cp = ord(ch)
            i = self.find(cp) if cp < 0x80 else -1
            if i < 0:
                w += self.width  # CJK, or the box
            else:
                self._read(i, g)
                w += self._ink(g)
        return w

    def _ink(self, g):
        row = self.row
        for x in range(self.width - 1, -1, -1):
            byte = x >> 3
            bit = 0x80 >> (x & 7)
            for y in range(self.height):
                if g[y * row + byte] & bit:
                    return x + 2
        return self.width // 3


class Boxes(Font):
    """What the kiosk draws with when the font file is missing or damaged: every
    character a box, so the screens still work (and the problem shows)."""

    def __init__(self, width=16, height=16):
        self.f = None
        self.width, self.height, self.count = width, height, 0
        self.row = (width + 7) // 8
        self.size = self.row * height
        self.missing = 0
        self.boxed = True

    def close(self):
        pass

    def find(self, cp):
        return -1
