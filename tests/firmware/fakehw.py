# Stand-ins for the ESP32's peripherals with MicroPython's API shapes, for the
# firmware tests of single modules. (The simulator's virtual ESP32, issue #4,
# replaces them for whole-firmware runs.) Runs on CPython and MicroPython.


class Pin:
    def __init__(self, v=0):
        self.v = v
        self.changes = 0

    def value(self, v=None):
        if v is None:
            return self.v
        if v != self.v:
            self.changes += 1
        self.v = v


class PWM:
    def __init__(self):
        self.duty = 0
        self.writes = []  # the newest (now, duty), `now` set by the test
        self.now = 0

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        assert 0 <= d <= 65535, d
        self.duty = d
        self.writes.append((self.now, d))
        if len(self.writes) > 8:  # the newest only: a 100 KB heap
            self.writes.pop(0)


class ADC:
    def __init__(self, raw=0):
        self.raw = raw

    def read_u16(self):
        return self.raw


class SystemClock:
    """The board's RTC: park time that runs with the test's ms ticks."""

    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t

    def set(self, t):
        self.t = t


class I2C:
    """A DS3231 on a bus: registers 0x00..0x12."""

    def __init__(self):
        self.regs = bytearray(0x13)
        self.fail = False

    def readfrom_mem(self, addr, reg, n):
        if self.fail or addr != 0x68:
            raise OSError(19)
        return bytes(self.regs[reg : reg + n])

    def readfrom_mem_into(self, addr, reg, buf):
        buf[:] = self.readfrom_mem(addr, reg, len(buf))

    def writeto_mem(self, addr, reg, data):
        if self.fail or addr != 0x68:
            raise OSError(19)
        self.regs[reg : reg + len(data)] = data


class Hw:
    def __init__(self):
        self.pwm = PWM()
        self.relay = Pin()
        self.relay_active = 1
        self.light_adc = ADC(0)
        self.current_adc = ADC(0)
