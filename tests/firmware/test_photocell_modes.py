# The photocell while the time is valid (photocell.mode): fail-safe only, assist,
# control; and that a dead photocell never switches off what the schedule lights.
# CPython, float32, MicroPython.

import gc
import json

import lampconfig
from civil import to_seconds
from controller import PHOTOCELL
from fakehw import Hw, SystemClock
from fwtest import read
from schedule import SCHEDULE
from timesource import TimeKeeper

DARK = 655  # counts: 20 lux of the 2000 at full scale
BRIGHT = 40000  # about 1200 lux


def rig(mode, t, light):
    obj = json.loads(read("firmware/lamp/config.json"))
    obj["photocell"]["mode"] = mode
    cfg = lampconfig.parse(obj)
    hw = Hw()
    hw.light_adc.raw = light
    hw.current_adc.raw = 13107
    system = SystemClock(t)
    clock = TimeKeeper(system)
    clock.sync(t, "test")
    from controller import Controller

    ctl = Controller(cfg, hw, clock)
    state = {"ms": 0}

    def run(seconds):
        end = state["ms"] + seconds * 1000
        while state["ms"] < end:
            nxt = ctl.step(state["ms"])
            step = nxt - state["ms"]
            step = 1000 if step > 1000 or step <= 0 else step
            state["ms"] += step
            system.t = t + state["ms"] // 1000

    return ctl, hw, run


def cst(y, m, d, hh=0, mm=0):
    return to_seconds(y, m, d, hh, mm) - 8 * 3600


def test_assist_lights_a_storm_dark_afternoon_and_lets_go_when_light_returns():
    ctl, hw, run = rig("assist", cst(2026, 6, 21, 15), BRIGHT)
    run(60)
    assert ctl.level == 0 and ctl.mode == SCHEDULE
    hw.light_adc.raw = DARK  # the storm
    run(400)  # the next sample (5 min idle) and the 120 s delay
    assert ctl.level == 100 and ctl.mode == PHOTOCELL
    assert ctl.describe().startswith("photocell: ")
    hw.light_adc.raw = BRIGHT
    run(200)
    assert ctl.level == 0 and ctl.mode == SCHEDULE


def test_failsafe_mode_ignores_the_photocell_while_the_time_is_valid():
    ctl, hw, run = rig("failsafe", cst(2026, 6, 21, 15), DARK)
    run(600)
    assert ctl.level == 0 and ctl.mode == SCHEDULE


def test_assist_does_not_undo_the_part_night_dimming():
    ctl, hw, run = rig("assist", cst(2026, 12, 21, 23, 30), DARK)
    run(600)
    assert ctl.level == 50


def test_control_switches_off_in_the_light_and_the_schedule_sets_the_level():
    ctl, hw, run = rig("control", cst(2026, 12, 21, 23, 30), BRIGHT)  # under a floodlight
    run(600)
    assert ctl.level == 0 and ctl.mode == PHOTOCELL
    hw.light_adc.raw = DARK
    run(400)
    assert ctl.level == 50  # the program's level while on


def test_a_dead_photocell_never_switches_off_what_the_schedule_lights():
    for mode in ("assist", "control"):
        for raw in (0, 65535):  # shorted, open
            ctl, _, run = rig(mode, cst(2026, 12, 21, 20), raw)
            run(900)
            assert ctl.level == 100 and ctl.mode == SCHEDULE, (mode, raw)
            assert ctl.photocell.problem is not None
            ctl = run = None  # one controller at a time in a 100 KB heap
            gc.collect()
