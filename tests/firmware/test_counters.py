# Burning hours, energy and relay switch cycles (counters.py): counted over the
# passes, kept on flash in two slots, never lost to a bad copy, never backwards.
# The real Output and LampMonitor; a stand-in ADC reads what the lamp would draw.
# CPython, float32, MicroPython.

import json

import lampconfig
from counters import SAVE_MS, Counters
from fakehw import Hw
from fwtest import read, tempdir, write
from monitor import LampMonitor
from output import Output

SHIPPED = "firmware/lamp/config.json"
METERED = {"mains_volts": 230, "power_factor": 0.95}  # 1 A: 218.5 W


def _ignore(*args):
    pass


class Lamp:
    """Output, monitor and counters stepped as the controller's pass does: the
    sample first, then the output, then the counters. The lamp draws lamp_amps
    (1 A) in proportion to the duty while the relay is closed."""

    def __init__(self, energy=METERED, folder=None):
        obj = json.loads(read(SHIPPED))
        obj["output"].update({"curve": "linear", "min_level": 0, "relay_min_interval": 0})
        obj["energy"] = energy
        self.cfg = lampconfig.parse(obj)
        self.hw = Hw()
        self.output = Output(self.hw.pwm, self.hw.relay, 1, self.cfg)
        self.monitor = LampMonitor(self.hw.current_adc, self.cfg, _ignore)
        self.folder = folder or tempdir()
        self.counters = Counters(self.folder + "/counters", self.cfg)
        self.sensed = energy.get("current_sense", True)
        self.ms = 0
        self.due = -1
        self.one_pass(sample=True)  # boot: the controller's first pass samples

    def one_pass(self, sample=False):
        out = self.output
        if sample:
            amps = out.duty_fraction() if out.relay_closed and self.sensed else 0.0
            self.hw.current_adc.raw = int(amps / 5.0 * 65535 + 0.5)
            self.monitor.sample(self.ms, out.relay_closed, out.applied, out.duty_fraction())
        out.update(self.ms)
        self.due = self.counters.step(self.ms, self)
        if self.due >= 0:
            assert self.due <= SAVE_MS

    def set(self, level):
        self.output.command(level, 0, self.ms, at_once=True)
        self.one_pass()

    def dusk(self, level=100):
        """Off (the board came up lit by day), then on: one switch cycle."""
        self.set(0)
        self.run(600)
        self.set(level)

    def run(self, seconds, every_s=10, sample_s=300, saves=True):
        end = self.ms + seconds * 1000
        next_sample = self.ms
        while self.ms < end:
            self.ms += every_s * 1000
            sample = self.ms >= next_sample
            if sample:
                next_sample = self.ms + sample_s * 1000
            self.one_pass(sample)
            c = self.counters
            # What a cut now would lose: never more than SAVE_MS of burning.
            assert not saves or (c.burn_s - c.saved[0]) * 1000 <= SAVE_MS, (c.burn_s, c.saved)


def test_an_hour_at_full_power_on_current_sense():
    lamp = Lamp()
    lamp.set(0)  # the board comes up lit by day: off, not a switch cycle
    lamp.run(600)
    assert lamp.counters.saved == (0, 0, 0) and lamp.counters.writes == 0
    lamp.set(100)
    lamp.run(3600)
    lamp.set(0)  # the switch-off saves what the night counted
    c = lamp.counters
    assert c.saved == (3600, 218, 1)  # 1 A x 230 V x 0.95 for an hour: 218.5 Wh
    s = {}
    c.report(s)
    assert s == {"burning_s": 3600, "energy_wh": 218, "switch_cycles": 1, "counters_problem": None}
    lamp.run(3600)  # dark: nothing counted, nothing written
    assert c.saved == (3600, 218, 1) and c.writes == 5  # every 14 min (4) and the switch-off


def test_a_dimming_between_two_samples_is_counted_at_the_new_duty():
    # Samples are 5 minutes apart while nothing happens: a step from 100 % to
    # 50 % just after one is counted at half power from that pass on.
    lamp = Lamp()
    lamp.set(100)
    lamp.run(60)
    lamp.set(50)
    lamp.run(3600, sample_s=100000)  # no sample after the step at all
    lamp.set(0)
    assert lamp.counters.saved[1] == int(218.5 * (60 + 3600 * 0.5) / 3600)


def test_a_lamp_that_failed_burns_nothing():
    lamp = Lamp()
    lamp.set(100)
    lamp.run(600)
    lamp.sensed = False  # the lamp dies: no current, the relay still closed
    lamp.run(3600)
    lamp.set(0)
    burn = lamp.counters.saved[0]
    assert 600 <= burn <= 600 + 300  # until the first sample that saw it dark


def test_without_current_sense_energy_is_the_rated_power_at_the_duty():
    lamp = Lamp({"current_sense": False, "rated_watts": 100})
    lamp.dusk(50)
    lamp.run(7200)
    lamp.set(0)
    assert lamp.counters.saved == (7200, 100, 1)
    s = {}
    lamp.counters.report(s)
    assert s["energy_wh"] == 100


def test_no_energy_section_counts_hours_and_cycles_but_no_energy():
    lamp = Lamp({})
    lamp.dusk()
    lamp.run(1800)
    lamp.set(0)
    s = {}
    lamp.counters.report(s)
    assert (s["burning_s"], s["energy_wh"], s["switch_cycles"]) == (1800, None, 1)


def test_saves_come_every_14_minutes_of_burning_and_at_switch_off_only():
    lamp = Lamp()
    lamp.set(100)
    lamp.run(3 * 3600)  # 180 min: saves at 14, 28, ... 168 min
    assert lamp.counters.writes == 12
    assert 0 < lamp.due <= SAVE_MS  # the loop is woken for the next one
    lamp.set(0)
    assert lamp.counters.writes == 13 and lamp.due == -1
    lamp.run(12 * 3600)
    assert lamp.counters.writes == 13


def test_the_counters_survive_a_reset_and_a_bad_copy():
    lamp = Lamp()
    lamp.dusk()
    lamp.run(1800)  # saved at 14 and 28 min
    lamp.set(0)  # and at 30
    d = lamp.folder
    assert Lamp(folder=d).counters.saved == (1800, 109, 1)
    # The newest copy spoilt (a torn write on a filesystem that tears, bit rot):
    # the other one is taken, two minutes older, and it says so.
    newest = "%s/counters.%d" % (d, lamp.counters.seq & 1)
    write(newest, read(newest).replace("1800", "1900"))  # its CRC no longer matches
    again = Lamp(folder=d)
    c = again.counters
    assert c.saved == (1680, 101, 1)  # 218.5 W x 28 min: 101.97 Wh
    assert c.problem == newest + " unreadable: counting on from the other copy"
    # Counting goes on from there; the next save replaces the bad copy.
    again.set(100)
    again.run(840)
    assert c.writes == 1 and c.saved[0] == 1680 + 840
    assert Lamp(folder=d).counters.saved == c.saved
    # Both spoilt: from 0, and said (never silently).
    for n in "01":
        write("%s/counters.%s" % (d, n), "12 34\n")
    c = Lamp(folder=d).counters
    assert c.saved == (0, 0, 0)
    assert c.problem == "%s/counters.0, %s/counters.1 unreadable: counting from 0" % (d, d)
    # Nothing there yet (a new board): 0, nothing to say.
    assert Lamp().counters.problem is None


def test_years_of_a_big_lamp_stay_small_integers():
    # A 10 kW lamp for 1000 h in passes an hour apart: every sum stays a small
    # integer on the ESP32 (31 bits), where a bigger one is a heap object.
    lamp = Lamp({"current_sense": False, "rated_watts": 10000})
    lamp.set(100)
    lamp.run(1000 * 3600, every_s=3600, sample_s=3600)
    c = lamp.counters
    assert c.burn_s == 3600000 and c.wh == 10000000
    assert max(c.burn_s, c.wh, c._e, c._unsaved, c._ms) < 2**30


def test_a_flash_that_refuses_the_save_is_said_and_tried_again_in_14_minutes():
    import os

    d = tempdir()
    lamp = Lamp(folder=d + "/gone")  # a folder that is not there: every write fails
    lamp.dusk()
    lamp.run(900, saves=False)
    c = lamp.counters
    assert c.writes == 0 and c.problem.startswith("not saved: ")
    assert 0 < lamp.due <= SAVE_MS  # not at every pass
    os.mkdir(d + "/gone")
    lamp.run(840, saves=False)
    assert c.writes == 1 and c.problem is None and c.saved[0] == 1680  # 28 min of burning
