# What the kiosk's display shows (240x320, portrait): idle, welcome, already
# checked in, not recognised, error. Drawn into any frame buffer with
# MicroPython's framebuf API (fill, fill_rect, pixel; RGB565 colours in the panel's byte order): on the
# board a framebuf.FrameBuffer over the display's buffer, in tests and the
# simulator whatever keeps the pixels. Text comes from font.Font, a glyph at a
# time, so Chinese names cost no more RAM than Latin ones.

from st7789 import color

WIDTH = 240
HEIGHT = 320
# In the panel's byte order (st7789.color), as framebuf stores them.
BLACK = color(0, 0, 0)
WHITE = color(255, 255, 255)
GREEN = color(0, 160, 60)
GREY = color(96, 96, 96)
RED = color(200, 30, 30)
BAR = 40  # the header bar's height
LINE = 24  # text line pitch


class Screens:
    def __init__(self, fb, font, site=""):
        self.fb = fb
        self.font = font
        self.site = site
        self._g = bytearray(font.size)

    def text(self, x, y, s, color):
        """Draws s with its top-left at x, y; returns the width drawn."""
        f = self.font
        fb = self.fb
        g = self._g
        row = f.row
        x0 = x
        for ch in s:
            f.glyph(ch, g)
            for yy in range(f.height):
                base = yy * row
                for xx in range(f.width):
                    if g[base + (xx >> 3)] & (0x80 >> (xx & 7)):
                        fb.pixel(x + xx, y + yy, color)
            x += f.advance(ch, g)
        return x - x0

    def width(self, s):
        """How wide s is drawn."""
        return self.font.measure(s, self._g)

    def centred(self, y, s, color):
        w = self.width(s)
        x = (WIDTH - w) // 2 if w < WIDTH else 0
        self.text(x, y, s, color)
        return x

    def _frame(self, title, colour):
        fb = self.fb
        fb.fill(BLACK)
        fb.fill_rect(0, 0, WIDTH, BAR, colour)
        self.centred((BAR - self.font.height) // 2, title, BLACK if colour != GREY else WHITE)

    def idle(self, clock, count, online, pending):
        """clock "08:59"; today's check-ins; the network; check-ins waiting to be sent."""
        self._frame(self.site or "check-in", GREY)
        self.centred(BAR + 2 * LINE, clock, WHITE)
        self.centred(BAR + 4 * LINE, "today %d" % count, WHITE)
        self.centred(BAR + 6 * LINE, "online" if online else "offline", GREEN if online else RED)
        if pending:
            self.centred(BAR + 7 * LINE, "%d to send" % pending, RED)

    def welcome(self, name, clock):
        self._frame("welcome", GREEN)
        y = BAR + 3 * LINE
        x = self.centred(y, name, WHITE)
        self.centred(BAR + 5 * LINE, clock, WHITE)
        return x, y  # where the name is: tests compare that region

    def already(self, name, clock):
        self._frame("already checked in", GREY)
        self.centred(BAR + 3 * LINE, name, WHITE)
        self.centred(BAR + 5 * LINE, "at " + clock, WHITE)

    def not_recognised(self):
        self._frame("not recognised", RED)
        self.centred(BAR + 4 * LINE, "please try again", WHITE)

    def error(self, message):
        self._frame("error", RED)
        while message and self.width(message) > WIDTH:
            message = message[:-1]
        self.centred(BAR + 4 * LINE, message, WHITE)
