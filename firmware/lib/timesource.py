# Where the time comes from, best first: NTP, a battery-backed DS3231 on I2C,
# the ESP32's own RTC. Time is "valid" only while one of them is trusted:
#   - NTP, once a sync has given a sane answer;
#   - the DS3231, when its oscillator-stop flag is clear (the battery kept it
#     running) and it reads a sane date;
#   - the ESP32 RTC only across resets that keep it running (not a power-on),
#     and only if a trusted source had set it (the board keeps that mark).
# `system` is the board's clock: now() -> park time, set(t).

from civil import split, to_seconds

SANE_FROM = to_seconds(2024, 1, 1)
SANE_UNTIL = to_seconds(2100, 1, 1)
_DS3231 = 0x68


def _bcd(b):
    return (b >> 4) * 10 + (b & 0x0F)


def _tobcd(n):
    return ((n // 10) << 4) | (n % 10)


class DS3231:
    """The DS3231 real-time clock, through any object with MicroPython's I2C API."""

    def __init__(self, i2c, addr=_DS3231):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)

    def read(self):
        """Park time, or None when the clock stopped (battery dead) or cannot be read."""
        try:
            status = self.i2c.readfrom_mem(self.addr, 0x0F, 1)[0]
            if status & 0x80:  # OSF: the oscillator stopped since it was last set
                return None
            self.i2c.readfrom_mem_into(self.addr, 0x00, self._buf)
        except OSError:
            return None
        b = self._buf
        hour = b[2]
        if hour & 0x40:  # 12-hour mode: not ours, but read it right
            hour = _bcd(hour & 0x1F) % 12 + (12 if hour & 0x20 else 0)
        else:
            hour = _bcd(hour & 0x3F)
        year = 2000 + _bcd(b[6]) + (100 if b[5] & 0x80 else 0)
        month, day = _bcd(b[5] & 0x1F), _bcd(b[4])
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        return to_seconds(year, month, day, hour, _bcd(b[1]), _bcd(b[0] & 0x7F))

    def write(self, t):
        y, m, d, hh, mm, ss, wd = split(t)[:7]
        b = self._buf
        b[0], b[1], b[2] = _tobcd(ss), _tobcd(mm), _tobcd(hh)
        b[3] = wd + 1
        b[4] = _tobcd(d)
        b[5] = _tobcd(m) | (0x80 if y >= 2100 else 0)
        b[6] = _tobcd(y % 100)
        try:
            self.i2c.writeto_mem(self.addr, 0x00, b)
            status = self.i2c.readfrom_mem(self.addr, 0x0F, 1)[0]
            self.i2c.writeto_mem(self.addr, 0x0F, bytes((status & 0x7F,)))
        except OSError:
            return False
        return True


class TimeKeeper:
    def __init__(self, system, ds3231=None, rtc_trusted=False):
        self.system = system
        self.ds3231 = ds3231
        self.rtc_trusted = rtc_trusted
        self.valid = False
        self.source = None
        self.generation = 0  # bumped at every change of time or validity
        self.rejected = 0

    def boot(self):
        """Take the best time available without a network."""
        if self.ds3231 is not None:
            t = self.ds3231.read()
            if t is not None and SANE_FROM <= t < SANE_UNTIL:
                self.system.set(t)
                self._trust("ds3231")
                return
        if self.rtc_trusted and SANE_FROM <= self.system.now() < SANE_UNTIL:
            self._trust("rtc")
            return
        self.valid = False
        self.source = None
        self.generation += 1

    def _trust(self, source):
        self.valid = True
        self.source = source
        self.generation += 1

    def sync(self, t, source="ntp"):
        """A time from the network. Returns the step in seconds; raises ValueError
        (and keeps the clock) when the time is not sane."""
        if not SANE_FROM <= t < SANE_UNTIL:
            self.rejected += 1
            raise ValueError("time %d is outside 2024..2099: ignored" % t)
        step = t - self.system.now()
        self.system.set(t)
        if self.ds3231 is not None:
            self.ds3231.write(t)
        self._trust(source)
        return step

    def now(self):
        return self.system.now()
