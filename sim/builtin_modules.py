# The MicroPython interpreter's own modules that sim/vesp32 shadows on the path
# (socket, select, time, os): the simulator's entry scripts need the real ones
# underneath the virtual board's. MicroPython only.

import sys


def real(names):
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if not p.endswith("vesp32")]
    try:
        return [__import__(n) for n in names]
    finally:
        sys.path[:] = saved
