# The controller: the fail-safe ladder, boot, clock steps, output and faults.
# Peripherals are fakehw's stand-ins; time is driven by the test, never slept.
# CPython, float32, MicroPython.

import gc
import json

import lampconfig
from civil import to_seconds
from controller import FAILSAFE, PHOTOCELL, Controller
from fakehw import I2C, Hw, SystemClock
from fwtest import read
from schedule import SCHEDULE
from timesource import DS3231, TimeKeeper

SHIPPED = "firmware/lamp/config.json"


def cfg(**changes):
    obj = json.loads(read(SHIPPED))
    for section, values in changes.items():
        obj[section].update(values)
    return lampconfig.parse(obj)


def cst(y, m, d, hh=0, mm=0, ss=0):
    return to_seconds(y, m, d, hh, mm, ss) - 8 * 3600


class Rig:
    """A controller on fake hardware, with a clock the test moves."""

    def __init__(self, t=None, config=None, ds3231_time=None, rtc_trusted=False):
        self.cfg = config or cfg()
        self.hw = Hw()
        self.sys = SystemClock(t if t is not None else to_seconds(2000, 1, 1))
        self.i2c = I2C()
        self.ds = DS3231(self.i2c)
        if ds3231_time is not None:
            self.ds.write(ds3231_time)
        else:
            self.i2c.regs[0x0F] = 0x80  # oscillator stopped: the battery died
        self.clock = TimeKeeper(self.sys, self.ds, rtc_trusted)
        self.clock.boot()
        self.ms = 0
        self.ctl = Controller(self.cfg, self.hw, self.clock)
        self.deadline = self.step()

    def step(self):
        self.hw.pwm.now = self.ms
        self.deadline = self.ctl.step(self.ms)
        return self.deadline

    def run(self, seconds):
        """Advance by `seconds`, one pass at each deadline, as the main loop does."""
        end = self.ms + int(seconds * 1000)
        while True:
            nxt = self.deadline
            if nxt > end:
                break
            self._advance_to(nxt)
            self.step()
        self._advance_to(end)

    def _advance_to(self, ms):
        # The system clock follows the ticks, in whole seconds.
        whole = ms // 1000 - self.ms // 1000
        self.sys.t += whole
        self.ms = ms

    def names(self):
        return [e[1] for e in self.ctl.events]


def test_boot_by_day_switches_off_at_once():
    r = Rig(ds3231_time=cst(2026, 12, 22, 12))
    assert r.ctl.level == 0
    assert r.hw.relay.value() == 0 and r.hw.pwm.duty == 0


def test_boot_at_night_lights_at_once_at_the_scheduled_level():
    # Power back at 01:00 after a cut at 22:00: no network, the DS3231 kept time.
    r = Rig(ds3231_time=cst(2026, 12, 22, 1))
    assert r.clock.valid and r.clock.source == "ds3231"
    assert r.ctl.level == 50 and r.ctl.mode == SCHEDULE
    # At once, in the first pass, no fade: relay closed (never opened), PWM at 50 %.
    assert r.hw.relay.value() == 1 and r.hw.relay.changes == 1 and r.ctl.output.relay_switches == 0
    assert r.hw.pwm.duty == r.ctl.output.duty(50)
    assert r.ctl.output.applied == 50


def test_the_loop_sleeps_until_the_next_change():
    r = Rig(ds3231_time=cst(2026, 12, 21, 22, 59, 0))
    assert r.ctl.level == 100
    r.run(59)
    assert r.ctl.level == 100
    r.run(2)
    assert r.ctl.level == 50 and r.ctl.output.target == 50
    # The 60 s fade: smooth (no jump of more than 1/50 of the way per frame), then there.
    duties = [d for _, d in r.hw.pwm.writes[-5:]]
    assert all(abs(a - b) < 1000 for a, b in zip(duties, duties[1:]))
    r.run(61)
    assert r.ctl.output.applied == 50


def test_clock_stepping_back_and_forward_reevaluates():
    r = Rig(ds3231_time=cst(2026, 12, 21, 23, 30))
    assert r.ctl.level == 50
    # NTP says it is really two hours earlier: 21:30, full light.
    r.clock.sync(cst(2026, 12, 21, 21, 30))
    r.run(1)
    assert r.ctl.level == 100
    # And forward two hours: 23:30, dimmed again.
    r.clock.sync(cst(2026, 12, 21, 23, 30))
    r.run(1)
    assert r.ctl.level == 50
    # Two more: 01:30, still dimmed; the 05:00 step comes at 05:00, not missed or early.
    r.clock.sync(cst(2026, 12, 22, 1, 30))
    r.run(1)
    assert r.ctl.level == 50
    r.run(3 * 3600 + 29 * 60 + 58)
    assert r.ctl.level == 50
    r.run(3)
    assert r.ctl.level == 100


def test_no_valid_time_uses_the_photocell():
    # Dead RTC battery and no network: the photocell decides, after its delay.
    r = Rig(t=to_seconds(2000, 1, 1))
    assert not r.clock.valid
    assert r.ctl.mode == FAILSAFE and r.ctl.level == 100  # no decision yet: lit
    r.hw.light_adc.raw = 200  # about 6 lux: dark
    r.run(121)
    assert r.ctl.mode == PHOTOCELL and r.ctl.level == 100
    r.hw.light_adc.raw = 30000  # daylight
    r.run(60)
    assert r.ctl.level == 100  # the delay: one bright minute is not morning
    r.run(61)
    assert r.ctl.level == 0
    # Time comes back: the schedule rules again.
    r.clock.sync(cst(2026, 12, 21, 23, 30))
    r.run(1)
    assert r.ctl.mode == SCHEDULE and r.ctl.level == 50


def test_implausible_photocell_gives_the_failsafe_level():
    r = Rig(t=to_seconds(2000, 1, 1), config=cfg(output={"relay_min_interval": 0}))
    r.hw.light_adc.raw = 30000
    r.run(121)
    assert r.ctl.mode == PHOTOCELL and r.ctl.level == 0
    r.hw.light_adc.raw = 65535  # shorted: on the rail
    r.run(121)
    assert r.ctl.mode == FAILSAFE and r.ctl.level == 100
    assert "rail" in r.ctl.describe()
    del r
    gc.collect()  # one rig at a time in a 100 KB heap
    # Flapping: light and dark every few minutes.
    r2 = Rig(
        t=to_seconds(2000, 1, 1),
        config=cfg(photocell={"delay": 10}, output={"relay_min_interval": 0}),
    )
    for i in range(8):
        r2.hw.light_adc.raw = 200 if i % 2 else 30000
        r2.run(300)
    assert r2.ctl.mode == FAILSAFE and "flapping" in r2.ctl.describe()


def test_relay_respects_its_minimum_interval():
    r = Rig(ds3231_time=cst(2026, 12, 21, 22), config=cfg(output={"relay_min_interval": 60}))
    assert r.hw.relay.value() == 1
    r.ctl.engine.set_override(0, r.sys.t + 3600, "test")
    r.ctl._valid_until = None  # the override arrives as a new command would
    r.run(31)  # 30 s fade to 0; the relay has not switched since boot: it opens
    assert r.ctl.output.applied == 0
    assert r.hw.relay.value() == 0
    r.ctl.engine.clear_override()
    r.ctl._valid_until = None
    r.run(10)  # wants light again after 10 s: the relay must rest 60 s
    assert r.hw.relay.value() == 0 and r.ctl.output.applied == 0 and r.ctl.output.target == 100
    st = r.ctl.status()
    assert (st["level"], st["applied"], st["relay"]) == (100, 0, "open")
    r.run(51)
    assert r.hw.relay.value() == 1
    assert r.ctl.output.relay_switches == 2  # it came up closed: opened, closed


def test_the_loop_sleeps_while_nothing_happens():
    # A steady night: no fade, no fault pending, time valid. Passes come only for the
    # idle sensor check once a minute, not every second.
    r = Rig(ds3231_time=cst(2026, 12, 21, 19))
    r.hw.current_adc.raw = 13107
    r.hw.light_adc.raw = 200
    r.run(300)  # warm-up and the fade are over
    before = r.ctl.passes
    r.run(3600)
    assert r.ctl.passes - before <= 61
    # A dead photocell (on the rail) is confirmed once, then checked at the idle pace.
    r.hw.light_adc.raw = 0
    r.run(600)
    assert r.ctl.status()["photocell_problem"] == "reading on the rail (0)"
    before = r.ctl.passes
    r.run(3600)
    assert r.ctl.passes - before <= 61


def test_lamp_failure_is_raised_once_and_cleared_once():
    r = Rig(ds3231_time=cst(2026, 12, 21, 20))
    r.hw.current_adc.raw = 13107  # 1 A: a working lamp
    r.run(120)
    assert "lamp_failure" not in r.names()
    r.hw.current_adc.raw = 0  # the lamp dies
    r.run(5)
    r.hw.current_adc.raw = 13107  # one good sample in between changes nothing
    r.hw.current_adc.raw = 0
    r.run(600)
    assert r.names().count("lamp_failure") == 1
    assert r.ctl.status()["faults"] == ["lamp_failure"]
    r.hw.current_adc.raw = 13107  # replaced
    r.run(600)
    assert r.ctl.status()["faults"] == []
    assert r.names().count("lamp_failure_cleared") == 1
    assert r.names().count("lamp_failure") == 1


def test_single_bad_sample_raises_nothing():
    r = Rig(ds3231_time=cst(2026, 12, 21, 20))
    r.hw.current_adc.raw = 13107
    r.run(120)
    r.hw.current_adc.raw = 0
    r.run((r.deadline - r.ms) / 1000)  # exactly one pass, one sample, reads 0 A
    assert r.ctl.monitor.amps == 0
    r.hw.current_adc.raw = 13107
    r.run(600)
    assert not [n for n in r.names() if n.startswith("lamp_failure")]


def test_a_dimmed_lamp_is_not_a_failed_lamp():
    # Regression (found by the simulator's DST scenario): at 50 % on a gamma curve the
    # lamp draws 0.25 A of its 1 A; that is what a working lamp does, not a failure.
    r = Rig(ds3231_time=cst(2026, 12, 21, 23, 30))
    assert r.ctl.level == 50
    r.hw.current_adc.raw = 3277  # 0.25 A
    r.run(900)
    assert not [n for n in r.names() if n.startswith("lamp_failure")]
    r.hw.current_adc.raw = 655  # 0.05 A: under half of what 50 % should draw
    r.run(900)
    assert r.names().count("lamp_failure") == 1


def test_current_while_off_is_a_relay_fault():
    r = Rig(ds3231_time=cst(2026, 12, 22, 12))  # noon: off, relay open
    assert r.hw.relay.value() == 0
    r.hw.current_adc.raw = 13107
    r.run(60)
    assert r.names().count("relay_failure") == 1


def test_ds3231_round_trip_and_sanity():
    i2c = I2C()
    ds = DS3231(i2c)
    i2c.regs[0x0F] = 0x80
    assert ds.read() is None  # stopped oscillator: not trusted
    t = to_seconds(2026, 12, 21, 23, 59, 58)
    assert ds.write(t)
    assert ds.read() == t
    assert i2c.regs[0x0F] & 0x80 == 0
    i2c.fail = True
    assert ds.read() is None
    clock = TimeKeeper(SystemClock(0), ds)
    clock.boot()
    assert not clock.valid
    try:
        clock.sync(to_seconds(1999, 1, 1))
        raise AssertionError("a time from 1999 was accepted")
    except ValueError as e:
        assert "outside 2024..2099" in str(e)
    assert not clock.valid and clock.rejected == 1
