# The alarm's lifecycle, what the pole shows, and its survival of a reset (the
# journal on a real folder). CPython, float32, MicroPython.

import json
import os

from alarm import ACKNOWLEDGED, DELIVERED, KINDS, Alarms
from fakehw import Pin
from fwtest import tempdir
from journal import Journal

FLASH = [(100, 700), (20, 300)]


def make(folder=None):
    j = Journal(os, folder or tempdir() + "/j", "lamp-7")

    def post(kind, fields, critical, seq=None):
        return j.append(kind, json.dumps(fields), critical, seq)

    def reserve():
        seq = j.reserve()
        return seq, j.event_id(seq)

    led = Pin()
    return Alarms(led, FLASH, post, reserve), led, j


def test_one_alarm_however_many_presses():
    a, _, j = make()
    first = a.press(0, 1766300000)
    # The raise is journaled once the pole shows it (the app calls write()
    # after the controller's pass), under the id press() gave.
    assert j.undelivered() == []
    a.write()
    assert j.undelivered()[0][1] == first
    assert a.press(5000, 1766300005) == first
    assert a.press(9000, 1766300009) == first
    assert a.open["presses"] == 3 and a.raised == 1
    # One raise in the journal, critical: it is never dropped before delivery.
    assert [(k, c) for k, c in ((r[2], j.critical(r[0])) for r in j.undelivered())] == [
        ("alarm_raised", True)
    ]


def test_lifecycle_and_refusals():
    a, led, j = make()
    aid = a.press(0, None)
    a.write()
    assert a.acknowledge("lamp-7-1-99") == "alarm lamp-7-1-99 is not the open one (%s)" % aid
    a.delivered(aid)
    assert a.open["state"] == DELIVERED
    assert a.acknowledge(aid) is None and a.open["state"] == ACKNOWLEDGED
    assert "already acknowledged" in a.acknowledge(aid)
    assert a.resolve(aid) is None and a.open is None and led.value() == 0
    assert a.resolve(aid) == "no alarm is open"
    kinds = [r[2] for r in j.undelivered(10)]
    assert kinds == ["alarm_raised", "alarm_delivered", "alarm_acknowledged", "alarm_resolved"]


def test_the_pole_flashes_and_the_ring_led_blinks_then_stays():
    a, led, _ = make()
    assert a.level(0) is None
    aid = a.press(1000, None)
    seen = []
    for t in range(1000, 3000, 50):
        level, wait = a.level(t)
        assert 0 < wait <= 700
        seen.append((level, led.value()))
    assert (100, 1) in seen and (20, 1) in seen and (100, 0) in seen  # flash, and blink
    a.acknowledge(aid)
    leds = set()
    for t in range(3000, 5000, 50):
        a.level(t)
        leds.add(led.value())
    assert leds == {1}  # steady until resolved


def test_an_open_alarm_survives_a_reset():
    folder = tempdir() + "/j"
    a, _, j = make(folder)
    aid = a.press(0, 1766300000)
    a.write()
    a.delivered(aid)
    a.acknowledge(aid)
    # The board resets: RAM is gone, the journal is not.
    b, led, j2 = make(folder)
    restored = b.restore(j2.find(lambda seq, kind: kind in KINDS), 123)
    assert restored is not None and restored["id"] == aid and restored["state"] == ACKNOWLEDGED
    assert b.level(200) is not None and led.value() == 1
    assert b.resolve(aid) is None
    # Resolved before the next reset: nothing comes back.
    c, _, j3 = make(folder)
    assert c.restore(j3.find(lambda seq, kind: kind in KINDS), 0) is None and c.open is None
