# Millisecond tick arithmetic, as MicroPython's time.ticks_* on the ESP32:
# ticks wrap at 2**30, so differences are taken modulo that. Pure Python, so
# CPython, the unix port and the board all agree, and tests can cross the wrap.

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


PERIOD = const(1 << 30)
_MASK = const((1 << 30) - 1)
_HALF = const(1 << 29)


def diff(a, b):
    """a - b in ms, for ticks at most 2**29 ms (6.2 days) apart."""
    return ((a - b + _HALF) & _MASK) - _HALF


def add(a, ms):
    return (a + ms) & _MASK
