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
    # The raise is on flash when press() returns (before the pole shows it),
    # under the id press() gave.
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


def test_the_raise_is_on_flash_before_the_pole_shows_it():
    # Issue 20, finding 1: the pole showed the alarm first and journaled it
    # after other writes; a cut in between lost an alarm a person had seen.
    j = Journal(os, tempdir() + "/j", "lamp-7")
    seen = []
    a = None

    def post(kind, fields, critical, seq=None):
        # What the pole shows at the moment of each write.
        seen.append((kind, a.level(0) is not None))
        return j.append(kind, json.dumps(fields), critical, seq)

    def reserve():
        seq = j.reserve()
        return seq, j.event_id(seq)

    a = Alarms(Pin(), FLASH, post, reserve)
    aid = a.press(0, 1766300000)
    assert seen == [("alarm_raised", False)]  # the only write, and nothing shown yet
    assert a.level(0) is not None and j.undelivered()[0][1] == aid


def test_the_flash_refusing_the_raise_still_shows_it_and_writes_it_later():
    j = Journal(os, tempdir() + "/j", "lamp-7")
    full = [True]

    def post(kind, fields, critical, seq=None):
        if full[0]:
            raise OSError(28, "no space")
        return j.append(kind, json.dumps(fields), critical, seq)

    def reserve():
        seq = j.reserve()
        return seq, j.event_id(seq)

    a = Alarms(Pin(), FLASH, post, reserve)
    aid = a.press(0, 1766300000)
    assert a.level(0) is not None and j.undelivered() == []
    full[0] = False
    a.write()
    assert [x[1] for x in j.undelivered()] == [aid]


def _small(folder):
    """A journal that rotates every few records, with the lamp's hold rule."""
    j = Journal(os, folder, "lamp-7", max_segments=2, segment_records=3)

    def post(kind, fields, critical, seq=None):
        return j.append(kind, json.dumps(fields), critical, seq)

    def reserve():
        seq = j.reserve()
        return seq, j.event_id(seq)

    led = Pin()
    a = Alarms(led, FLASH, post, reserve)
    a.restore(j.find(lambda seq, kind: kind in KINDS), 0)
    j.hold(a.holds)
    return a, j


def test_an_open_alarm_outlives_any_number_of_rotations_until_resolved():
    # Issue 20, finding 3: delivered but not acknowledged, the alarm's records
    # were dropped at a rotation; the pole forgot it and the centre's resolve
    # was refused.
    folder = tempdir() + "/j"
    a, j = _small(folder)
    aid = a.press(0, 1766300000)
    for seq, eid, _, _ in j.undelivered(10):
        j.delivered(seq)
        a.delivered(eid)
    for seq, _, _, _ in j.undelivered(10):
        j.delivered(seq)
    for boot in range(40):  # reboots, each with a few delivered events
        a, j = _small(folder)
        assert a.open is not None and a.open["id"] == aid, boot
        assert a.open["state"] == DELIVERED
        for i in range(4):
            j.delivered(int(j.append("state", '{"i": %d}' % i).rsplit("-", 1)[1]))
    assert len([n for n in os.listdir(folder) if n.endswith(".log")]) <= 3
    assert a.resolve(aid) is None
    for seq, _, _, _ in j.undelivered(10):
        j.delivered(seq)
    for i in range(12):
        j.delivered(int(j.append("state", '{"i": %d}' % i).rsplit("-", 1)[1]))
    # Resolved: its records are ordinary again and go, and it never comes back.
    a, j = _small(folder)
    assert a.open is None
    assert [r for r in j.find(lambda seq, kind: kind in KINDS) if r[2] != "alarm_resolved"] == []


def test_an_undelivered_raise_carried_past_its_resolve_stays_closed():
    # A raise still undelivered when its alarm was resolved (the centre had its
    # id from a test_alarm reply) is carried forward, past its resolve: the
    # last resolve is held, so a reboot does not bring the alarm back.
    folder = tempdir() + "/j"
    a, j = _small(folder)
    aid = a.press(0, 1766300000)
    assert a.resolve(aid) is None
    for i in range(12):
        j.append("state", '{"i": %d}' % i)
        for seq, _, kind, _ in j.undelivered(20):
            if kind != "alarm_raised":
                j.delivered(seq)
    assert [x[1] for x in j.undelivered(20)] == [aid]
    for seq, _, _, _ in j.undelivered(20):
        j.delivered(seq)
    for i in range(12):
        j.delivered(int(j.append("state", '{"i": %d}' % i).rsplit("-", 1)[1]))
    a, j = _small(folder)
    assert a.open is None


def test_a_technician_clears_a_test_alarm_no_centre_can_resolve():
    # Issue 22: a test alarm with no centre reachable must not leave the pole
    # flashing for good. Cleared on site: the pole goes back to normal, the
    # clear is journaled (critical) and sent when the centre can be reached,
    # and a reboot does not bring the alarm back.
    folder = tempdir() + "/j"
    a, led, j = make(folder)
    assert a.clear() is None  # nothing open
    aid = a.press(0, 1766300000, test=True)
    assert a.clear() == aid
    assert a.open is None and a.level(100) is None and led.value() == 0
    waiting = [(r[2], j.critical(r[0])) for r in j.undelivered(10)]
    assert waiting == [("alarm_raised", True), ("alarm_cleared", True)]
    cleared = json.loads(j.undelivered(10)[1][3])
    assert cleared["alarm"] == aid and cleared["on_site"] is True
    assert a.resolve(aid) == "no alarm is open"
    b, _, j2 = make(folder)
    assert b.restore(j2.find(lambda seq, kind: kind in KINDS), 0) is None
    # A press after it is a new alarm.
    assert b.press(0, 1766300100) != aid and b.open is not None
