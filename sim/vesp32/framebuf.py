# MicroPython's `framebuf` for the simulator's CPython runtime, same byte layout
# as the built-in one so the firmware's buffers hold identical bytes on every
# runtime (tests/test_framebuf_sim.py checks it against the real interpreter).
# MicroPython never loads this file: its framebuf is built in and not
# extensible, so the built-in one wins over anything on the path.
#
# Drawing touches rows with slice assignment where it can: the kiosk repaints a
# 240x320 RGB565 screen per frame, and a Python loop per pixel costs ~30 ms.

MONO_VLSB = 0
MVLSB = 0
RGB565 = 1
GS4_HMSB = 2
MONO_HLSB = 3
MONO_HMSB = 4
GS2_HMSB = 5
GS8 = 6

# Bits per pixel, and how many pixels the stride is rounded up to so that
# every row starts on a byte (MicroPython does the same).
_BPP = {MONO_VLSB: 1, RGB565: 16, GS4_HMSB: 4, MONO_HLSB: 1, MONO_HMSB: 1, GS2_HMSB: 2, GS8: 8}
_STRIDE_ALIGN = {MONO_VLSB: 1, RGB565: 1, GS4_HMSB: 2, MONO_HLSB: 8, MONO_HMSB: 8, GS2_HMSB: 4, GS8: 1}


class FrameBuffer:
    def __init__(self, buf, width, height, format, stride=None):
        if format not in _BPP:
            raise ValueError("invalid format")
        if stride is None:
            stride = width
        if width < 1 or height < 1 or stride < width:
            raise ValueError("invalid width, height or stride: %d, %d, %d" % (width, height, stride))
        try:
            mv = memoryview(buf)
        except TypeError:
            raise TypeError("object with buffer protocol required") from None
        if mv.readonly:
            raise TypeError("object with buffer protocol required")
        mv = mv.cast("B")
        align = _STRIDE_ALIGN[format]
        stride = (stride + align - 1) // align * align
        rows = (height + 7) & ~7 if format == MONO_VLSB else height
        if rows * stride * _BPP[format] // 8 > len(mv):
            raise ValueError("buffer too small")
        # Private names only: MicroPython's FrameBuffer has no attributes, and
        # firmware must not come to rely on ones that exist only here.
        self._buf = buf
        self._width = width
        self._height = height
        self._format = format
        self._stride = stride
        self._mv = mv
        self._set = _SETTERS[format]
        self._get = _GETTERS[format]

    # -- pixels --------------------------------------------------------------

    def pixel(self, x, y, c=None):
        if not (0 <= x < self._width and 0 <= y < self._height):
            return None
        if c is None:
            return self._get(self, x, y)
        self._set(self, x, y, c)
        return None

    # -- filled shapes -------------------------------------------------------

    def fill(self, c):
        self._fill(0, 0, self._width, self._height, c)

    def fill_rect(self, x, y, w, h, c):
        if w < 1 or h < 1 or x + w <= 0 or y + h <= 0 or x >= self._width or y >= self._height:
            return
        x0 = max(x, 0)
        y0 = max(y, 0)
        self._fill(x0, y0, min(x + w, self._width) - x0, min(y + h, self._height) - y0, c)

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x, y, h, c):
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x, y, w, h, c, f=False):
        if f:
            self.fill_rect(x, y, w, h, c)
            return
        # Four edges drawn as MicroPython draws them: a negative or zero size
        # still draws the vertical edges, which its callers can observe.
        self.fill_rect(x, y, w, 1, c)
        self.fill_rect(x, y + h - 1, w, 1, c)
        self.fill_rect(x, y, 1, h, c)
        self.fill_rect(x + w - 1, y, 1, h, c)

    def _fill(self, x, y, w, h, c):
        # x, y, w, h already clipped to the buffer.
        fmt = self._format
        mv = self._mv
        if fmt == RGB565 or fmt == GS8:
            if fmt == RGB565:
                size = 2
                unit = bytes((c & 0xFF, (c >> 8) & 0xFF))
            else:
                size = 1
                unit = bytes((c & 0xFF,))
            if w == self._width == self._stride:
                start = y * self._stride * size
                mv[start : start + w * h * size] = unit * (w * h)
                return
            row = unit * w
            n = w * size
            pitch = self._stride * size
            start = (y * self._stride + x) * size
            for _ in range(h):
                mv[start : start + n] = row
                start += pitch
            return
        if fmt == MONO_VLSB:
            for yy in range(y, y + h):
                for xx in range(x, x + w):
                    _set_vlsb(self, xx, yy, c)
            return
        self._fill_packed(x, y, w, h, c)

    def _fill_packed(self, x, y, w, h, c):
        # Horizontal packed formats: ragged pixels one at a time, whole bytes
        # between them by slice.
        per = 8 // _BPP[self._format]
        setter = self._set
        if self._format == GS2_HMSB:
            byte = (c & 3) * 0x55
        elif self._format == GS4_HMSB:
            byte = (c & 15) * 0x11
        else:
            byte = 0xFF if c else 0
        head_end = min(x + w, (x + per - 1) // per * per)
        body_end = max(head_end, (x + w) // per * per)
        nbytes = (body_end - head_end) // per
        fill = bytes((byte,)) * nbytes
        mv = self._mv
        for yy in range(y, y + h):
            for xx in range(x, head_end):
                setter(self, xx, yy, c)
            if nbytes:
                start = (yy * self._stride + head_end) // per
                mv[start : start + nbytes] = fill
            for xx in range(body_end, x + w):
                setter(self, xx, yy, c)

    # -- blit ----------------------------------------------------------------

    def blit(self, fbuf, x, y, key=-1, palette=None):
        src = _as_framebuffer(fbuf)
        pal = None if palette is None else _as_framebuffer(palette)
        if x >= self._width or y >= self._height or -x >= src._width or -y >= src._height:
            return
        # The key is compared after the palette lookup, as an unsigned 32-bit
        # value: -1 (the default) therefore never matches a colour.
        key &= 0xFFFFFFFF
        get = src._get
        setter = self._set
        x0 = max(x, 0)
        x_end = min(self._width, x + src._width)
        sy = max(-y, 0)
        for dy in range(max(y, 0), min(self._height, y + src._height)):
            sx = max(-x, 0)
            for dx in range(x0, x_end):
                col = get(src, sx, sy)
                if pal is not None:
                    col = pal._get(pal, col, 0)
                if col != key:
                    setter(self, dx, dy, col)
                sx += 1
            sy += 1

    # -- not simulated -------------------------------------------------------

    def text(self, s, x, y, c=1):
        raise NotImplementedError(
            "framebuf.text is not simulated: the kiosk draws text with font.Font (firmware/kiosk/font.py)"
        )

    def line(self, x1, y1, x2, y2, c):
        raise NotImplementedError("framebuf.line is not simulated: the kiosk does not use it")

    def scroll(self, xstep, ystep):
        raise NotImplementedError("framebuf.scroll is not simulated: the kiosk does not use it")

    def ellipse(self, x, y, xr, yr, c, f=False, m=0xF):
        raise NotImplementedError("framebuf.ellipse is not simulated: the kiosk does not use it")

    def poly(self, x, y, coords, c, f=False):
        raise NotImplementedError("framebuf.poly is not simulated: the kiosk does not use it")


def _as_framebuffer(obj):
    # blit also takes (buffer, width, height, format[, stride]) for source and palette.
    if isinstance(obj, FrameBuffer):
        return obj
    if isinstance(obj, tuple) and len(obj) in (4, 5):
        return FrameBuffer(*obj)
    raise TypeError("a FrameBuffer or (buffer, width, height, format[, stride]) is required")


# Per-format pixel access; x, y are in range. Colours are truncated to the
# format's width, as the C code's casts do.


def _set_rgb565(fb, x, y, c):
    i = (x + y * fb._stride) * 2
    fb._mv[i] = c & 0xFF
    fb._mv[i + 1] = (c >> 8) & 0xFF


def _get_rgb565(fb, x, y):
    i = (x + y * fb._stride) * 2
    return fb._mv[i] | (fb._mv[i + 1] << 8)


def _set_gs8(fb, x, y, c):
    fb._mv[x + y * fb._stride] = c & 0xFF


def _get_gs8(fb, x, y):
    return fb._mv[x + y * fb._stride]


def _set_bits(fb, i, shift, mask, v):
    fb._mv[i] = (fb._mv[i] & ~(mask << shift)) | ((v & mask) << shift)


def _set_hlsb(fb, x, y, c):
    _set_bits(fb, (x + y * fb._stride) >> 3, 7 - (x & 7), 1, 1 if c else 0)


def _get_hlsb(fb, x, y):
    return (fb._mv[(x + y * fb._stride) >> 3] >> (7 - (x & 7))) & 1


def _set_hmsb(fb, x, y, c):
    _set_bits(fb, (x + y * fb._stride) >> 3, x & 7, 1, 1 if c else 0)


def _get_hmsb(fb, x, y):
    return (fb._mv[(x + y * fb._stride) >> 3] >> (x & 7)) & 1


def _set_vlsb(fb, x, y, c):
    _set_bits(fb, (y >> 3) * fb._stride + x, y & 7, 1, 1 if c else 0)


def _get_vlsb(fb, x, y):
    return (fb._mv[(y >> 3) * fb._stride + x] >> (y & 7)) & 1


def _set_gs2(fb, x, y, c):
    # Leftmost pixel in the low bits, whatever the format's name suggests.
    _set_bits(fb, (x + y * fb._stride) >> 2, (x & 3) << 1, 3, c)


def _get_gs2(fb, x, y):
    return (fb._mv[(x + y * fb._stride) >> 2] >> ((x & 3) << 1)) & 3


def _set_gs4(fb, x, y, c):
    _set_bits(fb, (x + y * fb._stride) >> 1, 0 if x & 1 else 4, 15, c)


def _get_gs4(fb, x, y):
    return (fb._mv[(x + y * fb._stride) >> 1] >> (0 if x & 1 else 4)) & 15


_SETTERS = {
    MONO_VLSB: _set_vlsb,
    RGB565: _set_rgb565,
    GS4_HMSB: _set_gs4,
    MONO_HLSB: _set_hlsb,
    MONO_HMSB: _set_hmsb,
    GS2_HMSB: _set_gs2,
    GS8: _set_gs8,
}
_GETTERS = {
    MONO_VLSB: _get_vlsb,
    RGB565: _get_rgb565,
    GS4_HMSB: _get_gs4,
    MONO_HLSB: _get_hlsb,
    MONO_HMSB: _get_hmsb,
    GS2_HMSB: _get_gs2,
    GS8: _get_gs8,
}
