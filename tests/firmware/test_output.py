# The output stage: the driver never sees a level in the band below min_level.
# CPython, float32, MicroPython.

import json

import lampconfig
from fakehw import PWM, Pin
from fwtest import read
from output import Output


class Seen(PWM):
    """Every duty written, not only the newest."""

    def __init__(self):
        super().__init__()
        self.band = 0  # duties written between 0 and min_level's
        self.lowest = None  # lowest nonzero duty written
        self.floor = 0

    def duty_u16(self, d=None):
        if d is not None and d > 0:
            if d < self.floor:
                self.band += 1
            if self.lowest is None or d < self.lowest:
                self.lowest = d
        return super().duty_u16(d)


def _output(min_level):
    obj = json.loads(read("firmware/lamp/config.json"))
    obj["output"]["min_level"] = min_level
    cfg = lampconfig.parse(obj)
    pwm = Seen()
    out = Output(pwm, Pin(), 0, cfg)
    pwm.floor = out.duty(min_level)
    return out, pwm


def _run(out, start, ms):
    now = start
    while now < start + ms:
        wait = out.update(now)
        now += wait if wait > 0 else 20
    return now


def test_a_fade_up_from_dark_starts_at_min_level_and_a_fade_down_ends_there():
    # Regression (issue 21): a fade up from 0 passed through 1-9 % with min_level 10.
    out, pwm = _output(10)
    out.command(0, 0, 0, at_once=True)
    now = _run(out, 0, 61000)  # faded to 0, the relay rests, then opens
    assert not out.relay_closed and out.applied == 0
    out.command(100, 60, now)
    now = _run(out, now, 61000)
    assert out.applied == 100 and pwm.band == 0
    assert pwm.lowest == out.duty(10)  # it starts there, not above
    out.command(0, 60, now)
    now = _run(out, now, 61000)
    assert out.applied == 0 and pwm.band == 0
    # Up again at once: the relay rests first, then the same.
    out.command(50, 30, now)
    _run(out, now, 92000)
    assert out.applied == 50 and pwm.band == 0


def test_without_min_level_a_fade_starts_from_dark():
    out, pwm = _output(0)
    out.command(0, 0, 0, at_once=True)
    now = _run(out, 0, 61000)
    out.command(100, 60, now)
    _run(out, now, 61000)
    assert pwm.lowest is not None and pwm.lowest < out.duty(2)
