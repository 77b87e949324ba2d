# The lamp controller's hardware: the only module that constructs machine.*
# objects. Pins come from the configuration's "pins" (defaults: an ESP32
# DevKitC, see docs/lamp-config.md). The simulator provides its own `machine`
# with the same API, so this file runs unmodified there too.

import time

import machine
from civil import epoch_offset, split

WDT_MS = 60000  # a hung loop resets within a minute; longer sleeps are cut to feed it
# Written into RTC memory when a trusted source sets the clock: a reset that
# keeps the RTC running (not a power-on) may then trust it.
_RTC_MARK = b"park-time-ok"


class SystemClock:
    """The ESP32's RTC as park time (UTC, seconds since 2000)."""

    def __init__(self, rtc):
        self.rtc = rtc
        self.offset = epoch_offset(time.gmtime)

    def now(self):
        return time.time() + self.offset

    def set(self, t):
        # The RTC keeps UTC civil time; split works on park time directly.
        y, m, d, hh, mm, ss, wd = split(t)[:7]
        self.rtc.datetime((y, m, d, wd, hh, mm, ss, 0))
        self.rtc.memory(_RTC_MARK)


class Board:
    def __init__(self, cfg):
        p = cfg.pins
        Pin = machine.Pin
        self.relay_active = p["relay_active"]
        # The relay pin is driven to "closed" at once: lamps stay lit through boot.
        self.relay = Pin(p["relay"], Pin.OUT, value=self.relay_active)
        self.pwm = machine.PWM(Pin(p["pwm"]), freq=cfg.pwm_hz, duty_u16=65535)
        self.light_adc = machine.ADC(Pin(p["light_adc"]), atten=machine.ADC.ATTN_11DB)
        self.current_adc = machine.ADC(Pin(p["current_adc"]), atten=machine.ADC.ATTN_11DB)
        self.i2c = machine.I2C(0, scl=Pin(p["i2c_scl"]), sda=Pin(p["i2c_sda"]), freq=400000)
        self.rtc = machine.RTC()
        self.clock = SystemClock(self.rtc)
        self.wdt = None
        self.wlan = None
        if cfg.ssid:
            import network

            self.wlan = network.WLAN(network.STA_IF)

    def ntp_time(self):
        """Park time from NTP (blocks up to ntptime.timeout); OSError without an answer."""
        import ntptime

        return ntptime.time() + self.clock.offset

    def rtc_trusted(self):
        if machine.reset_cause() == machine.PWRON_RESET:
            return False
        return bytes(self.rtc.memory()) == _RTC_MARK

    def start_watchdog(self):
        # Cannot be stopped once started (ESP32): only after the first good pass.
        self.wdt = machine.WDT(timeout=WDT_MS)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def ticks_ms(self):
        return time.ticks_ms()

    def wait_until(self, deadline, healthy=True):
        # A long sleep is cut so that a healthy loop keeps feeding the watchdog
        # while it waits; an unhealthy one is left to be reset.
        while True:
            ms = time.ticks_diff(deadline, time.ticks_ms())
            if ms <= 0:
                return
            time.sleep_ms(ms if ms < WDT_MS // 2 else WDT_MS // 2)
            if healthy:
                self.feed()
