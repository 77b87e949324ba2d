# Programs bounded by the night (issue 21): named cases. CPython, float32, MicroPython.
# (tests/test_schedule_properties.py checks random programs against an oracle.)

import json

import lampconfig
from civil import format_datetime, to_seconds
from fwtest import read
from schedule import Engine, sun

SHIPPED = "firmware/lamp/config.json"


def config(tz=None, steps=None, lat=None, lon=None):
    obj = json.loads(read(SHIPPED))
    if tz is not None:
        obj["site"]["tz"] = tz
    if lat is not None:
        obj["site"]["lat"] = lat
    if lon is not None:
        obj["site"]["lon"] = lon
    if steps is not None:
        obj["default"]["steps"] = steps
        obj["calendar"] = []
    return lampconfig.parse(obj)


def local(cfg, y, m, d, hh=0, mm=0, ss=0):
    return cfg.tz.to_utc(to_seconds(y, m, d, hh, mm, ss))


def transitions(engine, t, t_end):
    """[(local time text, level)] of every change in [t, t_end)."""
    out = []
    tz = engine.cfg.tz
    while True:
        t = engine.next_change(t)
        if t >= t_end:
            return out
        level = engine.target(t)[0]
        if not out or out[-1][1] != level:
            out.append((format_datetime(tz.to_local(t)), level))


def skipped(engine, y, m, d):
    """The step numbers the night of that date leaves out."""
    kept = [item[2] for item in engine.day_steps(engine.program_day(local(engine.cfg, y, m, d, 20)))]
    n = len(engine.program_for(engine.program_day(local(engine.cfg, y, m, d, 20)))[1].steps)
    return [i + 1 for i in range(n) if i not in kept]


def assert_dark_by_day(engine, t, t_end, stride=600):
    """Never lit while the sun is up (by a margin of a few seconds of its motion)."""
    cfg = engine.cfg
    while t < t_end:
        if engine.target(t)[0]:
            elev = sun.elevation(t, cfg.lat, cfg.lon)
            assert elev < -0.833 + 0.05, (format_datetime(cfg.tz.to_local(t)), elev)
        t += stride


def test_songjiang_shortest_night_skips_the_morning_boost_after_sunrise():
    # Regression: on 21 June the 05:00 step came after the 04:52 sunrise and lit
    # the lamp at full power until 23:00.
    cfg = config()
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 6, 21, 12), local(cfg, 2026, 6, 22, 12))
    assert got == [
        ("2026-06-21T19:01:46", 100),  # sunset
        ("2026-06-21T23:00:00", 50),
        ("2026-06-22T04:52:07", 0),  # sunrise: 05:00 does not come that night
    ]
    assert skipped(e, 2026, 6, 21) == [3]
    assert e.target(local(cfg, 2026, 6, 22, 12))[0] == 0
    assert_dark_by_day(e, local(cfg, 2026, 6, 20, 12), local(cfg, 2026, 6, 24, 12))


def test_songjiang_longest_night_keeps_every_step():
    cfg = config()
    e = Engine(cfg)
    assert skipped(e, 2026, 12, 21) == []
    got = transitions(e, local(cfg, 2026, 12, 21, 12), local(cfg, 2026, 12, 22, 12))
    assert [lvl for _, lvl in got] == [100, 50, 100, 0]
    assert_dark_by_day(e, local(cfg, 2026, 12, 20, 12), local(cfg, 2026, 12, 23, 12))


def test_a_holiday_night_in_june():
    obj = json.loads(read(SHIPPED))
    obj["calendar"] = [
        {
            "name": "dragon boat",
            "dates": ["06-19"],
            "program": {
                "steps": [
                    {"at": "civil_dusk", "offset": -20, "level": 100},
                    {"at": "01:00", "level": 70},
                    {"at": "05:00", "level": 100},
                    {"at": "sunrise", "level": 0},
                ]
            },
        }
    ]
    cfg = lampconfig.parse(obj)
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 6, 19, 12), local(cfg, 2026, 6, 20, 12))
    assert [lvl for _, lvl in got] == [100, 70, 0]
    assert got[1][0] == "2026-06-20T01:00:00"
    assert skipped(e, 2026, 6, 19) == [3]
    assert e.describe(e.target(local(cfg, 2026, 6, 20, 2))[3]) == "dragon boat step 2 (01:00)"
    assert_dark_by_day(e, local(cfg, 2026, 6, 18, 12), local(cfg, 2026, 6, 21, 12))


def test_the_fall_back_night_moves_sunrise_before_a_morning_step():
    # New York, 1 November 2026: at 02:00 EDT the clocks go back, sunrise comes at
    # 06:26 EST, and a 06:30 step that was still in the night the day before
    # (sunrise 07:25 EDT) falls in daylight: skipped from that night on.
    steps = [
        {"at": "sunset", "level": 100},
        {"at": "23:00", "level": 50},
        {"at": "06:30", "level": 100},
        {"at": "sunrise", "level": 0},
    ]
    cfg = config(tz="EST5EDT,M3.2.0,M11.1.0", steps=steps, lat=40.71, lon=-74.01)
    e = Engine(cfg)
    before = transitions(e, local(cfg, 2026, 10, 30, 12), local(cfg, 2026, 10, 31, 12))
    assert [x for x in before if x[1] == 100][-1] == ("2026-10-31T06:30:00", 100)
    got = transitions(e, local(cfg, 2026, 10, 31, 12), local(cfg, 2026, 11, 1, 12))
    assert [lvl for _, lvl in got] == [100, 50, 0]
    assert got[-1][0].startswith("2026-11-01T06:26")
    assert skipped(e, 2026, 10, 30) == []
    assert skipped(e, 2026, 10, 31) == [3]
    assert_dark_by_day(e, local(cfg, 2026, 10, 30, 12), local(cfg, 2026, 11, 2, 12))


def test_69_6_north_through_the_weeks_around_polar_day():
    # Tromso: the nights shrink in May until the sun stops setting (18 May) and
    # come back late in July. Clock steps that fall outside a night are skipped,
    # and in the polar day nothing lights at all.
    cfg = config(tz="CET-1CEST,M3.5.0,M10.5.0/3", lat=69.65, lon=18.96)
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 5, 10, 12), local(cfg, 2026, 5, 11, 12))
    assert [lvl for _, lvl in got] == [100, 0]  # sunset 23:02, sunrise 02:18
    assert skipped(e, 2026, 5, 10) == [2, 3]
    assert_dark_by_day(e, local(cfg, 2026, 5, 1, 12), local(cfg, 2026, 5, 25, 12), stride=1200)
    for y, m, d in ((2026, 5, 20), (2026, 6, 21), (2026, 7, 22)):
        assert transitions(e, local(cfg, y, m, d, 12), local(cfg, y, m, d + 1, 12)) == []
        assert e.target(local(cfg, y, m, d, 23, 30))[0] == 0
        assert skipped(e, y, m, d) == [1, 2, 3, 4]
    got = transitions(e, local(cfg, 2026, 7, 26, 12), local(cfg, 2026, 7, 27, 12))
    assert [lvl for _, lvl in got] == [100, 0]


def test_a_program_without_an_off_step_ends_with_the_night_and_an_opt_in_lights_by_day():
    cfg = config(steps=[{"at": "sunset", "level": 100}, {"at": "01:00", "level": 40}])
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 6, 21, 12), local(cfg, 2026, 6, 22, 12))
    assert got == [("2026-06-21T19:01:46", 100), ("2026-06-22T01:00:00", 40), ("2026-06-22T04:52:07", 0)]
    assert e.describe(e.target(local(cfg, 2026, 6, 22, 9))[3]) == "default: end of the night"
    # A tunnel: 30 % by day, opted in; full at night.
    tunnel = [
        {"at": "sunset", "level": 100},
        {"at": "sunrise", "level": 30, "daylight": True},
        {"at": "10:00", "level": 20, "daylight": True},
    ]
    cfg = config(steps=tunnel)
    e = Engine(cfg)
    assert e.target(local(cfg, 2026, 6, 22, 9))[0] == 30
    assert e.target(local(cfg, 2026, 6, 22, 11))[0] == 20
    assert e.target(local(cfg, 2026, 6, 22, 22))[0] == 100
