# The virtual ST7789 panel behind the kiosk's SPI bus. The world feeds it what
# the wires do (pin levels, and the bytes clocked while CS is low) and it decodes
# them as the controller would, so the picture the simulator shows is rebuilt
# from the protocol, not taken from the firmware's memory: a driver that sends a
# wrong window, byte order or colour mode shows a wrong picture.
#
# Runs in CPython and in the MicroPython interpreter: plain code only.
#
# Not simulated: MADCTL rotation and mirroring (the picture assumes 0x00),
# colour modes other than 16-bit, the datasheet's waits after reset and sleep out
# (no clock here), reading back, and the controller's many tuning commands, which
# are accepted and ignored.

TYPE_CHECKING = False
if TYPE_CHECKING:  # MicroPython has no typing; only the type checker reads this
    from collections.abc import Callable

_NOP = 0x00
_SWRESET = 0x01
_SLPIN = 0x10
_SLPOUT = 0x11
_NORON = 0x13
_INVOFF = 0x20
_INVON = 0x21
_DISPOFF = 0x28
_DISPON = 0x29
_CASET = 0x2A
_RASET = 0x2B
_RAMWR = 0x2C
_MADCTL = 0x36
_COLMOD = 0x3A

# Parameter bytes of the commands this panel interprets; others are not checked.
_NPARAMS = {
    _NOP: 0,
    _SWRESET: 0,
    _SLPIN: 0,
    _SLPOUT: 0,
    _NORON: 0,
    _INVOFF: 0,
    _INVON: 0,
    _DISPOFF: 0,
    _DISPON: 0,
    _CASET: 4,
    _RASET: 4,
    _MADCTL: 1,
    _COLMOD: 1,
}
_COLMOD_RESET = 0x66  # 18 bits per pixel until the host says otherwise
_DROP = -1  # a command whose data is ignored (RAMWR in the wrong colour mode)


class Panel:
    def __init__(self, width=240, height=320):
        self.width = width
        self.height = height
        # The frame memory, big-endian RGB565 as on the wire. Neither reset
        # clears it, as on the chip.
        self.ram = bytearray(width * height * 2)
        self._ramv = memoryview(self.ram)
        # Called with self.ram (not a copy: copy it to keep it) each time CS
        # rises after a RAMWR has filled its whole window.
        self.on_frame: Callable[[bytearray], object] | None = None
        self.errors = 0
        self.frames = 0
        self.resets = 0
        self.dc = 1
        self.cs = 1
        self.rst = 1
        self.bl: int | None = None  # not driven: wired to the supply
        self._params = bytearray(4)
        self._reset()

    def _reset(self):
        self.resets += 1
        self.asleep = True
        self.display_on = False
        self.inverted = False
        self.colmod = _COLMOD_RESET
        self.madctl = 0
        self.xs = 0
        self.xe = self.width - 1
        self.ys = 0
        self.ye = self.height - 1
        self._cmd: int | None = None
        self._nparams = 0
        self._extra = False
        self._half = -1  # the first byte of a pixel whose second is still to come
        self._col = 0
        self._row = 0
        self._written = 0  # pixels since RAMWR or since the last frame

    def lit(self):
        """Whether anything can be seen: awake, display on, backlight not off."""
        return bool(self.rst) and not self.asleep and self.display_on and self.bl != 0

    # -- the wires -----------------------------------------------------------

    def pin(self, name, value):
        v = 1 if value else 0
        if name == "dc":
            self.dc = v
        elif name == "cs":
            was = self.cs
            self.cs = v
            if v and not was:
                self._deselected()
        elif name == "rst":
            self.rst = v
            if not v:
                self._reset()
        elif name == "bl":
            self.bl = v
        else:
            raise ValueError("the panel has no pin %r (dc, cs, rst, bl)" % (name,))

    def spi(self, data):
        if self.cs or not self.rst:
            return  # not selected, or held in reset: the controller ignores the bus
        if not len(data):
            return
        if self.dc:
            self._data(data)
        else:
            for b in data:
                self._command(b)

    # -- the controller --------------------------------------------------------

    def _command(self, cmd):
        self._end_command()
        self._cmd = cmd
        self._nparams = 0
        self._extra = False
        if cmd == _SWRESET:
            self._reset()
        elif cmd == _SLPIN:
            self.asleep = True
        elif cmd == _SLPOUT:
            self.asleep = False
        elif cmd == _DISPON:
            self.display_on = True
        elif cmd == _DISPOFF:
            self.display_on = False
        elif cmd == _INVON:
            self.inverted = True
        elif cmd == _INVOFF:
            self.inverted = False
        elif cmd == _RAMWR:
            if self.colmod & 0x07 != 0x05:
                self.errors += 1  # only 16-bit pixels are simulated
                self._cmd = _DROP
            self._col = self.xs
            self._row = self.ys
            self._written = 0

    def _end_command(self):
        cmd = self._cmd
        if cmd == _RAMWR:
            if self._half >= 0:
                self.errors += 1  # half a pixel
                self._half = -1
        elif cmd is not None and cmd != _DROP:
            need = _NPARAMS.get(cmd)
            if need is not None and self._nparams < need:
                self.errors += 1

    def _deselected(self):
        if self._cmd != _RAMWR:
            return
        if self._half >= 0:
            # CS high resets the serial interface: the pixel's first byte is lost.
            self.errors += 1
            self._half = -1
        if self._written >= (self.xe - self.xs + 1) * (self.ye - self.ys + 1):
            self._written = 0
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(self.ram)

    def _data(self, data):
        cmd = self._cmd
        if cmd is None:
            self.errors += 1  # data before any command
            return
        if cmd == _RAMWR:
            self._pixels(memoryview(data))
            return
        if cmd == _DROP:
            return
        need = _NPARAMS.get(cmd)
        if need is None:
            return
        n = self._nparams
        for b in data:
            if n < need:
                self._params[n] = b
                n += 1
                if n == need:
                    self._apply(cmd)
            elif not self._extra:
                self._extra = True
                self.errors += 1  # more parameters than the command takes
        self._nparams = n

    def _apply(self, cmd):
        p = self._params
        if cmd == _CASET or cmd == _RASET:
            start = (p[0] << 8) | p[1]
            end = (p[2] << 8) | p[3]
            limit = self.width if cmd == _CASET else self.height
            if start > end or end >= limit:
                self.errors += 1  # outside the panel: the window stays as it was
            elif cmd == _CASET:
                self.xs = start
                self.xe = end
            else:
                self.ys = start
                self.ye = end
        elif cmd == _COLMOD:
            self.colmod = p[0]
        elif cmd == _MADCTL:
            self.madctl = p[0]

    def _pixels(self, mv):
        i = 0
        n = len(mv)
        if self._half >= 0:
            self._put(bytes((self._half, mv[0])))
            self._half = -1
            i = 1
        # Whole runs of a window row at a time (whole rows at once when the
        # window spans the panel): a frame is a few hundred slice copies.
        ram = self._ramv
        width = self.width
        while n - i >= 2:
            col = self._col
            row = self._row
            run = self.xe - col + 1
            pixels = (n - i) >> 1
            if col == 0 and self.xe == width - 1 and pixels >= width:
                rows = min(pixels // width, self.ye - row + 1)
                count = rows * width
                self._col = 0
                self._row = row + rows
            elif pixels >= run:
                count = run
                self._col = self.xs
                self._row = row + 1
            else:
                count = pixels
                self._col = col + count
            start = (row * width + col) * 2
            ram[start : start + count * 2] = mv[i : i + count * 2]
            i += count * 2
            if self._row > self.ye:
                self._row = self.ys  # the address wraps to the window's start
            self._written += count
        if i < n:
            self._half = mv[i]

    def _put(self, pixel):
        start = (self._row * self.width + self._col) * 2
        self.ram[start : start + 2] = pixel
        self._written += 1
        self._col += 1
        if self._col > self.xe:
            self._col = self.xs
            self._row += 1
            if self._row > self.ye:
                self._row = self.ys


def to_rgb888(ram, width, height):
    """The panel's memory (big-endian RGB565) as RGB888 bytes, row by row: each
    channel widened by repeating its top bits, so full scale stays full scale."""
    out = bytearray(width * height * 3)
    j = 0
    for i in range(0, width * height * 2, 2):
        hi = ram[i]
        lo = ram[i + 1]
        r = hi >> 3
        g = ((hi & 0x07) << 3) | (lo >> 5)
        b = lo & 0x1F
        out[j] = (r << 3) | (r >> 2)
        out[j + 1] = (g << 2) | (g >> 4)
        out[j + 2] = (b << 3) | (b >> 2)
        j += 3
    return bytes(out)
