# The kiosk's display: an ST7789 240x320 TFT on SPI (4-wire: DC selects command
# or data), 16-bit colour. The board module builds the SPI bus and the pins and
# passes them in, with a sleep_ms for the datasheet's waits, so the simulator
# and the tests drive the same code against a virtual panel (sim/panel.py).
#
# A frame is one RGB565 buffer drawn with framebuf and sent whole by show():
# one spi.write of the caller's buffer, nothing copied or converted in Python.

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


_SWRESET = const(0x01)
_SLPOUT = const(0x11)
_NORON = const(0x13)
_INVON = const(0x21)
_DISPOFF = const(0x28)
_DISPON = const(0x29)
_CASET = const(0x2A)
_RASET = const(0x2B)
_RAMWR = const(0x2C)
_MADCTL = const(0x36)
_COLMOD = const(0x3A)

_COLMOD_16BIT = const(0x55)  # 65k colours on both the RGB and the MCU interface
_MADCTL_PORTRAIT = const(0x00)  # top-left origin, rows top to bottom, RGB order

# Datasheet waits (ms), with a margin: the reset takes up to 120 ms to finish;
# after SWRESET 5 ms before any command but 120 ms before SLPOUT; after SLPOUT
# 5 ms before the next command.
_RESET_PULSE_MS = const(1)
_RESET_MS = const(120)
_SWRESET_MS = const(150)
_SLPOUT_MS = const(10)


def color(r, g, b):
    """The colour (0..255 each) to draw with framebuf for this panel.

    The ST7789 takes RGB565 most significant byte first; framebuf stores each
    RGB565 pixel least significant byte first. Handing framebuf the byte-swapped
    value makes the buffer hold exactly the panel's byte order, so show() sends
    it as it is."""
    v = ((r & 0xF8) << 8) | ((g & 0xFC) << 3) | ((b & 0xFF) >> 3)
    return ((v & 0xFF) << 8) | (v >> 8)


class ST7789:
    def __init__(self, spi, dc, cs, rst, sleep_ms, width=240, height=320, bl=None):
        self.spi = spi
        self.dc = dc
        self.cs = cs
        self.rst = rst
        self.bl = bl
        self.sleep_ms = sleep_ms
        self.width = width
        self.height = height
        self.size = width * height * 2
        self._cmd = bytearray(1)
        self._param = bytearray(1)
        # The window never changes: show() sends these as they are.
        self._caset = bytearray((0, 0, (width - 1) >> 8, (width - 1) & 0xFF))
        self._raset = bytearray((0, 0, (height - 1) >> 8, (height - 1) & 0xFF))
        cs.value(1)

    def _command(self, cmd, data=None):
        cs = self.cs
        dc = self.dc
        self._cmd[0] = cmd
        cs.value(0)
        dc.value(0)
        self.spi.write(self._cmd)
        dc.value(1)
        if data is not None:
            self.spi.write(data)
        cs.value(1)

    def _command1(self, cmd, value):
        self._param[0] = value
        self._command(cmd, self._param)

    def init(self):
        sleep_ms = self.sleep_ms
        self.rst.value(1)
        sleep_ms(_RESET_PULSE_MS)
        self.rst.value(0)
        sleep_ms(_RESET_PULSE_MS)
        self.rst.value(1)
        sleep_ms(_RESET_MS)
        self._command(_SWRESET)
        sleep_ms(_SWRESET_MS)
        self._command(_SLPOUT)
        sleep_ms(_SLPOUT_MS)
        self._command1(_COLMOD, _COLMOD_16BIT)
        self._command1(_MADCTL, _MADCTL_PORTRAIT)
        # The IPS panels this controller ships on show negatives without it.
        self._command(_INVON)
        self._command(_NORON)
        self._command(_DISPON)
        self._backlight(1)

    def show(self, buf):
        """Sends a whole frame: width*height RGB565 pixels, most significant byte
        first (draw with color())."""
        if len(buf) != self.size:
            raise ValueError("frame of %d bytes, the panel needs %d" % (len(buf), self.size))
        self._command(_CASET, self._caset)
        self._command(_RASET, self._raset)
        self._command(_RAMWR, buf)

    def off(self):
        self._backlight(0)
        self._command(_DISPOFF)

    def on(self):
        self._command(_DISPON)
        self._backlight(1)

    def _backlight(self, v):
        if self.bl is not None:
            self.bl.value(v)
