# The lighting engine: named cases from the issue. CPython, float32, MicroPython.
# (tests/test_schedule_properties.py checks random configurations against an oracle.)

import gc
import json

import lampconfig
from civil import format_datetime, to_seconds
from fwtest import read
from schedule import OVERRIDE, SCHEDULE, Engine

SHIPPED = "firmware/lamp/config.json"


def config(tz=None, steps=None, lat=None, lon=None, **output):
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
    obj["output"].update(output)
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


def test_songjiang_winter_night():
    cfg = config()
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 12, 21, 12), local(cfg, 2026, 12, 22, 12))
    assert got == [
        ("2026-12-21T16:57:00", 100),  # sunset (skyfield: 16:56:59)
        ("2026-12-21T23:00:00", 50),
        ("2026-12-22T05:00:00", 100),
        ("2026-12-22T06:49:28", 0),  # sunrise
    ]
    level, fade, since, reason = e.target(local(cfg, 2026, 12, 21, 23, 30))
    assert level == 50 and fade == 60 and reason[0] == SCHEDULE
    assert e.describe(reason) == "default step 2 (23:00)"
    assert e.describe(e.target(local(cfg, 2026, 12, 22, 8))[3]) == "default step 4 (sunrise)"


def test_boot_at_any_moment_gives_the_running_level():
    # A power cut at 22:00 and power back at 01:00: a fresh engine at 01:00 says 50 %
    # at once, as one that ran all night does.
    cfg = config()
    running = Engine(cfg)
    t = local(cfg, 2026, 12, 21, 12)
    end = local(cfg, 2026, 12, 23, 12)
    while t < end:
        assert Engine(cfg).target(t)[0] == running.target(t)[0], format_datetime(t)
        t += 1777  # an odd stride: hits every hour of the night at different minutes
    assert Engine(cfg).target(local(cfg, 2026, 12, 22, 1))[0] == 50


def test_holiday_program_takes_the_whole_night():
    cfg = config()
    e = Engine(cfg)
    # October 1st is a holiday: its night runs from the evening of Oct 1 to the morning
    # of Oct 2, without the 23:00 dimming; Oct 7th's night too; Oct 8th's not.
    got = transitions(e, local(cfg, 2026, 10, 1, 12), local(cfg, 2026, 10, 2, 12))
    assert [lvl for _, lvl in got] == [100, 0]
    assert got[0][0].startswith("2026-10-01T17:")  # civil dusk - 20 min
    assert e.describe(e.target(local(cfg, 2026, 10, 1, 23, 30))[3]).startswith("holidays step 1")
    assert e.target(local(cfg, 2026, 10, 8, 23, 30))[0] == 50
    # "12-31..01-01" wraps over New Year.
    assert e.program_for(e.program_day(local(cfg, 2026, 12, 31, 20)))[0] == 0
    assert e.program_for(e.program_day(local(cfg, 2027, 1, 1, 20)))[0] == 0
    assert e.program_for(e.program_day(local(cfg, 2027, 1, 2, 20)))[0] == -1


STEPS_0230 = [
    {"at": "sunset", "level": 100},
    {"at": "02:30", "level": 40},
    {"at": "sunrise", "level": 0},
]


def test_cet_spring_forward_step_in_the_missing_hour():
    cfg = config(tz="CET-1CEST,M3.5.0,M10.5.0/3", steps=STEPS_0230, lat=52.52, lon=13.40)
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 3, 28, 12), local(cfg, 2026, 3, 29, 12))
    # 02:30 does not exist on 2026-03-29: the step fires at the change (03:00 CEST).
    assert [x for x in got if x[1] == 40] == [("2026-03-29T03:00:00", 40)]
    assert [lvl for _, lvl in got] == [100, 40, 0]


def test_cet_fall_back_step_in_the_repeated_hour_fires_once():
    cfg = config(tz="CET-1CEST,M3.5.0,M10.5.0/3", steps=STEPS_0230, lat=52.52, lon=13.40)
    e = Engine(cfg)
    start, end = local(cfg, 2026, 10, 24, 12), local(cfg, 2026, 10, 25, 12)
    got = transitions(e, start, end)
    assert [lvl for _, lvl in got] == [100, 40, 0]
    # The first 02:30 (CEST), 00:30 UTC.
    t40 = e.next_change(e.next_change(start))
    assert t40 == to_seconds(2026, 10, 25, 0, 30)


def test_every_dst_night_has_each_step_once():
    zones = (
        ("CET-1CEST,M3.5.0,M10.5.0/3", 52.52, 13.40, ((2026, 3, 28), (2026, 10, 24))),
        ("EST5EDT,M3.2.0,M11.1.0", 40.71, -74.01, ((2026, 3, 7), (2026, 10, 31))),
        ("AEST-10AEDT,M10.1.0,M4.1.0/3", -33.87, 151.21, ((2026, 4, 4), (2026, 10, 3))),
    )
    steps = [
        {"at": "sunset", "level": 100},
        {"at": "01:30", "level": 60},
        {"at": "02:00", "level": 50},
        {"at": "02:30", "level": 40},
        {"at": "03:00", "level": 30},
        {"at": "sunrise", "level": 0},
    ]
    for tz, lat, lon, nights in zones:
        cfg = config(tz=tz, steps=steps, lat=lat, lon=lon)
        e = Engine(cfg)
        for y, m, d in nights:
            got = transitions(e, local(cfg, y, m, d, 12), local(cfg, y, m, d + 1, 12))
            levels = [lvl for _, lvl in got]
            # Nothing twice, nothing skipped; in a gap several steps share the instant
            # of the change and the last of them wins.
            assert levels in ([100, 60, 50, 40, 30, 0], [100, 60, 30, 0]), (tz, y, m, d, got)
        # The last zone's engine and its day cache go before the next one is made:
        # in MicroPython's 100 KB heap the two together fragment it.
        e = cfg = got = None
        gc.collect()


def test_polar_night_keeps_a_sunset_program_lit():
    # 70 N in December: the sun never rises, so "sunset" has happened from the start
    # of each night and "sunrise" never comes: lit all day, dimmed by clock steps only.
    cfg = config(tz="CET-1CEST,M3.5.0,M10.5.0/3", lat=70.0, lon=19.0)
    e = Engine(cfg)
    start, end = local(cfg, 2026, 12, 18, 12), local(cfg, 2026, 12, 22, 12)
    t = start
    while t < end:
        assert e.target(t)[0] in (50, 100), format_datetime(cfg.tz.to_local(t))
        t += 600
    assert e.target(local(cfg, 2026, 12, 20, 12))[0] == 100  # noon, in the dark
    assert e.target(local(cfg, 2026, 12, 20, 23, 30))[0] == 50
    # And in the midnight sun there is no night: neither the sun steps nor the clock
    # steps switch it on.
    t = local(cfg, 2026, 6, 18, 12)
    while t < local(cfg, 2026, 6, 24, 12):
        assert e.target(t)[0] == 0, format_datetime(cfg.tz.to_local(t))
        t += 600


def test_offsets_that_cross_midnight():
    # "sunset + 8 h" in Songjiang's summer (sunset 19:01) is 03:01 the next day.
    cfg = config(steps=[{"at": "sunset", "offset": 480, "level": 100}, {"at": "sunrise", "level": 0}])
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 6, 21, 12), local(cfg, 2026, 6, 22, 12))
    assert got == [("2026-06-22T03:01:46", 100), ("2026-06-22T04:52:07", 0)]


def test_output_limits():
    cfg = config(
        steps=[
            {"at": "sunset", "level": 100},
            {"at": "23:00", "level": 5},
            {"at": "sunrise", "level": 0},
        ],
        min_level=10,
        max_level=80,
    )
    e = Engine(cfg)
    assert e.target(local(cfg, 2026, 12, 21, 20))[0] == 80
    assert e.target(local(cfg, 2026, 12, 21, 23, 30))[0] == 0  # below min_level: off


def test_override_wins_until_it_expires():
    cfg = config()
    e = Engine(cfg)
    t = local(cfg, 2026, 12, 21, 21)
    e.set_override(20, t + 1800, "centre")
    level, _, _, reason = e.target(t + 60)
    assert level == 20 and reason[0] == OVERRIDE
    assert e.describe(reason) == "override by centre"
    assert e.next_change(t + 60) == t + 1800
    assert e.target(t + 1800)[0] == 100
    # An override level is limited too, and one into the same level as the schedule
    # changes nothing when it ends.
    e.set_override(100, t + 600, "technician")
    assert e.next_change(t) == local(cfg, 2026, 12, 21, 23)


def test_elevation_step():
    cfg = config(
        steps=[
            {"at": {"elevation": 3, "direction": "setting"}, "level": 30},
            {"at": "civil_dusk", "level": 100},
            {"at": "civil_dawn", "level": 30},
            {"at": {"elevation": 3, "direction": "rising"}, "level": 0},
        ]
    )
    e = Engine(cfg)
    got = transitions(e, local(cfg, 2026, 12, 21, 12), local(cfg, 2026, 12, 22, 12))
    assert [lvl for _, lvl in got] == [30, 100, 30, 0]
    assert got[0][0] < "2026-12-21T16:57" and got[-1][0] > "2026-12-22T06:49"


def test_a_step_that_stops_coming_expires_after_three_nights_and_next_change_says_when():
    # At 68 S the sun stops reaching 9 degrees in late April 2024: the only step
    # ("elevation 9 rising") comes for the last time, and three nights later the
    # level in force is none. next_change must announce that instant, or a lamp
    # would hold the old level until some later wake-up (found by hypothesis).
    # (A level set by day needs the step's daylight opt-in, or the night's end takes it.)
    # On the zone's own meridian: 0 E on CST-8 (8 h from its solar time) is refused.
    cfg = config(
        tz="CST-8",
        lat=-68.0,
        lon=120.0,
        steps=[{"at": {"elevation": 9, "direction": "rising"}, "level": 100, "daylight": True}],
    )
    e = Engine(cfg)
    start = local(cfg, 2024, 4, 10, 12)
    assert e.target(start)[0] == 100
    # The points next_change gives where the level stays (ask again) are left out.
    got = transitions(e, start, local(cfg, 2024, 5, 10, 12))
    changes = [x for i, x in enumerate(got) if x[1] != (got[i - 1][1] if i else 100)]
    # Once: none from the start of the fourth program day after the last rise (22 Apr).
    assert changes == [("2024-04-26T12:00:00", 0)], got
