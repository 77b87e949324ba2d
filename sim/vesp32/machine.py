# The virtual ESP32's `machine` module: what the park firmware uses, with the
# ESP32's rules (soft pin IRQs through micropython.schedule, a watchdog with a
# 1 s minimum that cannot be stopped, resets that restart the firmware).
#
# On the board, Pin(n), ADC(pin), I2C(n), RTC() and WDT() give objects from the
# port's static tables, outside MicroPython's heap: the same object every time.
# Here each is made once, the first time it is asked for (the tables' 49 pins
# and ADCs would take 10 KB of a 64-bit virtual board's heap), and kept; the heap
# benchmark makes them all before it takes its base (make_all), so the firmware's
# heap figures do not count them. A reset puts them back as they are at power-on
# (_hub.on_reset). PWM, UART and SPI objects are on the port's heap too.

import _hub

PWRON_RESET = _hub.PWRON_RESET
HARD_RESET = _hub.HARD_RESET
WDT_RESET = _hub.WDT_RESET
DEEPSLEEP_RESET = _hub.DEEPSLEEP_RESET
SOFT_RESET = _hub.SOFT_RESET


def _world():
    return _hub.board.world


GPIOS = 49  # 0..48: the ESP32-S3's; the configuration allows any of them
_OUTPUT = 2  # the mode bit of Pin.OUT and Pin.OPEN_DRAIN (ESP-IDF's GPIO_MODE_DEF_OUTPUT)


def _gpio(n):
    """What GPIO n is on the board's chip: a character of firmware/lib/chips.py's
    table ("." for no such GPIO)."""
    k = _hub.board.gpio
    return k[n] if 0 <= n < len(k) else "."


def _offered(n):
    """Does MicroPython's port offer Pin(n) on the board's chip (its machine_pin.h)?
    Not the GPIOs the chip lacks, nor, on the ESP32-S3 with PSRAM, those of the
    flash and PSRAM; but the ESP32's flash pins (6-11) it does, and GPIO 20 (the
    PICO-V3 package's), which the lamp's module has no pad for."""
    k = _gpio(n)
    if _hub.board.chip == "esp32":
        return k != "." or n == 20
    return k != "." and k != "f"


def _panic_if_flash(n, what):
    """A flash pin (ESP32 6-11) taken from the flash: the next fetch of code from
    it fails and the chip panics, which resets it (reset cause HARD_RESET)."""
    if _gpio(n) == "f":
        _hub.board.world.note("reset", "panic: GPIO %d is the flash's, and %s took it" % (n, what))
        raise _hub.Reset(HARD_RESET)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __new__(cls, id, *args, **kw):
        if isinstance(id, int) and not _offered(id):
            raise ValueError("invalid pin")
        return _static(_PINS, id, "invalid pin", _pin)

    def __init__(self, id, mode=-1, pull=-1, value=None):
        # Pin(n) alone leaves the pin as it is, as on the board.
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            _panic_if_flash(self.id, "Pin.init")
            if mode & _OUTPUT and _gpio(self.id) == "i":
                raise ValueError("pin can only be input")
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        b = _hub.board
        if v is None:
            if self.mode == Pin.OUT:
                return b.pin_values.get(self.id, 0)
            return b.world.pin_in(b, self.id)
        v = 1 if v else 0
        if self.mode == Pin.OUT and b.pin_values.get(self.id) != v:
            b.pin_values[self.id] = v
            b.world.pin_out(b, self.id, v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        b = _hub.board
        if handler is None:
            b.irqs.pop(self.id, None)
        else:
            b.irqs[self.id] = (handler, trigger, self)
            b.pin_values[self.id] = b.world.pin_in(b, self.id)


class PWM:
    def __init__(self, dest, freq=None, duty_u16=None, **kw):
        _panic_if_flash(dest.id, "PWM")
        if _gpio(dest.id) == "i":
            # The LEDC driver refuses a pin with no output driver (ledc_channel_config).
            raise OSError(-258, "ESP_ERR_INVALID_ARG")
        self.pin = dest
        self.freq_hz = freq or 5000
        self._duty = 0
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def init(self, freq=None, duty_u16=None, **kw):
        if freq is not None:
            self.freq_hz = freq
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def freq(self, f=None):
        if f is None:
            return self.freq_hz
        self.freq_hz = f
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        d = int(d)
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 must be 0..65535")
        if d != self._duty:
            self._duty = d
            _world().pwm_out(_hub.board, self.pin.id, d)
        return None

    def deinit(self):
        self.duty_u16(0)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __new__(cls, pin, *args, **kw):
        n = pin if isinstance(pin, int) else pin.id
        if _gpio(n) not in "aib":  # not one of the chip's ADC1 or ADC2 channels
            raise ValueError("invalid pin")
        return _static(_ADCS, n, "invalid pin", _adc)

    def __init__(self, pin, atten=None):
        pass

    def atten(self, a):
        pass

    def read_u16(self):
        if _gpio(self.pin.id) == "b":
            import network

            if network.WLAN(network.STA_IF).active():
                # The Wi-Fi driver holds ADC2 while it runs: the oneshot read
                # times out (ESP_ERR_TIMEOUT, MicroPython's OSError ETIMEDOUT).
                raise OSError(116, "ESP_ERR_TIMEOUT")
        return _world().adc(_hub.board, self.pin.id)

    def read(self):
        return self.read_u16() >> 4


class I2C:
    def __new__(cls, id=0, *args, **kw):
        return _static(_I2CS, id, "I2C(%s) doesn't exist" % (id,), _i2c)

    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        # A line on a pin that cannot drive it: the port's driver takes the
        # configuration without a word, and no device ever answers (ENODEV).
        self.dead = False
        for p in (scl, sda):
            if p is not None:
                _panic_if_flash(p.id, "I2C")
                if _gpio(p.id) == "i":
                    self.dead = True

    def _bus(self):
        if self.dead:
            raise OSError(19)  # ENODEV: no ACK
        return _world()

    def scan(self):
        return [] if self.dead else _world().i2c_scan(_hub.board)

    def readfrom_mem(self, addr, reg, n, addrsize=8):
        return self._bus().i2c_read(_hub.board, addr, reg, n)

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        data = self._bus().i2c_read(_hub.board, addr, reg, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        self._bus().i2c_write(_hub.board, addr, reg, bytes(buf))


class UART:
    """A UART whose other end is the world (the kiosk's face module): what the
    world sends waits in the receive buffer (bounded, as the driver's ring is)."""

    def __init__(self, id, baudrate=115200, rxbuf=256, **kw):
        self.id = id
        self.baudrate = baudrate
        self.rxbuf = rxbuf
        self._rx = bytearray()
        self.overruns = 0
        _hub.board.uarts[id] = self

    def receive(self, data):
        """The world's bytes arrive; past the ring's size they are lost."""
        room = self.rxbuf - len(self._rx)
        if len(data) > room:
            self.overruns += len(data) - room
            data = data[:room]
        self._rx += data

    def any(self):
        return len(self._rx)

    def read(self, n=-1):
        if not self._rx:
            return None
        data = bytes(self._rx if n < 0 else self._rx[:n])
        self._rx = self._rx[len(data) :]
        return data

    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n < 0 else n)
        if data is None:
            return None
        buf[: len(data)] = data
        return len(data)

    def write(self, data):
        _world().uart_write(_hub.board, self.id, bytes(data))
        return len(data)

    def ioctl(self, req, arg):
        if req == 3 and self._rx:  # MP_STREAM_POLL: readable
            return arg & 1
        return 0


class SPI:
    """An SPI bus whose devices are the world's (the kiosk's display)."""

    def __init__(self, id, baudrate=1000000, **kw):
        self.id = id
        self.baudrate = baudrate

    def init(self, baudrate=None, **kw):
        if baudrate is not None:
            self.baudrate = baudrate

    def write(self, buf):
        _world().spi_write(_hub.board, self.id, buf)

    def deinit(self):
        pass


class RTC:
    def __new__(cls):
        return _RTC

    def datetime(self, dt=None):
        b = _hub.board
        if dt is None:
            from civil import split

            t = b.rtc_us()
            y, m, d, hh, mm, ss, wd = split(t // 1000000)[:7]
            return (y, m, d, wd, hh, mm, ss, t % 1000000)
        from civil import to_seconds

        b.set_rtc_us(to_seconds(dt[0], dt[1], dt[2], dt[4], dt[5], dt[6]) * 1000000 + dt[7])
        return None

    def memory(self, data=None):
        b = _hub.board
        if data is None:
            return b.rtc_memory
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        b.rtc_memory = bytes(data)
        return None


class WDT:
    def __new__(cls, id=0, timeout=5000):
        return _WDT

    def __init__(self, id=0, timeout=5000):
        if timeout < 1000:
            raise ValueError("WDT timeout too short")  # the ESP32's minimum is 1 s
        _hub.board.wdt_start(timeout)

    def feed(self):
        _hub.board.wdt_feed()


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.id = id

    def init(self, mode=PERIODIC, period=-1, callback=None, **kw):
        raise NotImplementedError("machine.Timer is not simulated yet: no firmware uses it")

    def deinit(self):
        pass


def _static(table, n, error, make):
    """table[n], made by make(n) the first time; ValueError(error) for no such n."""
    if not isinstance(n, int) or not 0 <= n < len(table):
        raise ValueError(error)
    o = table[n]
    if o is None:
        o = table[n] = make(n)
    return o


def _pin(n):
    p = object.__new__(Pin)  # not Pin(n): its constructor hands these out
    p.id = n
    p.mode = -1
    return p


def _adc(n):
    a = object.__new__(ADC)
    a.pin = Pin(n)
    return a


def _i2c(n):
    b = object.__new__(I2C)
    b.id = n
    b.dead = False
    return b


_PINS = [None] * GPIOS
_ADCS = [None] * GPIOS
_I2CS = [None] * 2
_RTC = object.__new__(RTC)
_WDT = object.__new__(WDT)


def make_all():
    """Every pin, ADC and I2C bus made now (the heap benchmark's base has them)."""
    for n in range(GPIOS):
        if _offered(n):
            Pin(n)
            if _gpio(n) in "aib":
                ADC(n)
    for n in range(len(_I2CS)):
        I2C(n)


def _power_on_state():
    for p in _PINS:
        if p is not None:
            p.mode = -1


_hub.on_reset.append(_power_on_state)


def reset():
    _hub.board.world.note("reset", "machine.reset()")
    raise _hub.Reset(SOFT_RESET)


def soft_reset():
    raise _hub.Reset(SOFT_RESET)


def reset_cause():
    return _hub.board.reset_cause


def unique_id():
    return _hub.board.uid


def freq(hz=None):
    return 240000000 if hz is None else None


def idle():
    pass


def lightsleep(ms=None):
    _hub.board.sleep_us((ms or 0) * 1000)


def deepsleep(ms=None):
    raise NotImplementedError("deep sleep is not simulated: no firmware uses it")


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
