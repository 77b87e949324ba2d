# Runs inside MicroPython (unix port): the kiosk's glyph and screen costs, and
# the heap its state takes outside the frame buffer.
#   MICROPYPATH=firmware/lib:firmware/kiosk micropython -X heapsize=2M bench/mp_kiosk.py FONT UPDATE NAMES
# Prints: glyph_us glyph_p99_us char_us welcome_us modules_bytes state_bytes
import gc
import os
import sys
import time

gc.collect()
m0 = gc.mem_alloc()
import framebuf  # noqa: E402
from checkin import CheckIns  # noqa: E402
from facemodule import JsonFaceModule  # noqa: E402
from font import Font  # noqa: E402
from roster import RosterFile, install  # noqa: E402
from screens import WHITE, Screens  # noqa: E402

gc.collect()
modules = gc.mem_alloc() - m0

with open(sys.argv[2], "rb") as f:
    update = f.read()
db = sys.argv[2] + ".db"
install(update, None, db, os)
del update
gc.collect()
a = gc.mem_alloc()
font = Font(sys.argv[1])
roster = RosterFile(db)
checkins = CheckIns(roster)
face = JsonFaceModule()
gc.collect()
state = gc.mem_alloc() - a

buf = bytearray(240 * 320 * 2)
fb = framebuf.FrameBuffer(buf, 240, 320, framebuf.RGB565)
screens = Screens(fb, font, "G60 park gate")

# The roster's names: GB2312 level 1 and ASCII, spread over the font.
with open(sys.argv[3]) as f:
    names = f.read().split("\n")
chars = []
for name in names:
    for ch in name:
        chars.append(ch)
g = bytearray(font.size)
times = []
for ch in chars:
    t = time.ticks_us()
    font.glyph(ch, g)
    times.append(time.ticks_diff(time.ticks_us(), t))
times.sort()
glyph_us = sum(times) // len(times)
glyph_p99 = times[len(times) * 99 // 100]

t = time.ticks_us()
for ch in chars:
    screens.text(100, 100, ch, WHITE)
char_us = time.ticks_diff(time.ticks_us(), t) // len(chars)

t = time.ticks_us()
for name in names:
    screens.welcome(name, "08:59")
welcome_us = time.ticks_diff(time.ticks_us(), t) // len(names)
print(glyph_us, glyph_p99, char_us, welcome_us, modules, state)
