# The virtual ESP32's `time` module (MicroPython's API), on the simulated clock.
# Epoch 2000-01-01, as on the ESP32.

import _hub
from civil import split, to_seconds

_MASK = (1 << 30) - 1
_HALF = 1 << 29


def ticks_us():
    return _hub.board.uptime_us() & _MASK


def ticks_ms():
    return (_hub.board.uptime_us() // 1000) & _MASK


def ticks_cpu():
    return ticks_us()


def ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def ticks_add(a, delta):
    return (a + delta) & _MASK


def sleep_us(us):
    _hub.board.sleep_us(int(us))


def sleep_ms(ms):
    _hub.board.sleep_us(int(ms) * 1000)


def sleep(s):
    _hub.board.sleep_us(int(s * 1000000))


def time():
    return _hub.board.rtc_us() // 1000000


def time_ns():
    return _hub.board.rtc_us() * 1000


def gmtime(secs=None):
    return split(time() if secs is None else int(secs))


localtime = gmtime  # the ESP32 port keeps no time zone


def mktime(t):
    return to_seconds(t[0], t[1], t[2], t[3], t[4], t[5])
