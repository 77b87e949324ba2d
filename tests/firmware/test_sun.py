# Solar events; runs on CPython, float32 and MicroPython.
# Reference times below are skyfield/DE421's (tests/oracle.py), to the second;
# tests/test_sun_accuracy.py compares a whole year at many latitudes.

import sun
from civil import format_datetime, to_seconds
from fwtest import near, raises
from posixtz import TZ

SONGJIANG = (31.03, 121.23)


def local_day(tz, y, m, d, lat, lon):
    out = []
    for t in sun.solar_day(tz, y, m, d, lat, lon)[:4]:
        out.append(None if t is None else tz.to_local(t))
    return out, sun.solar_day(tz, y, m, d, lat, lon)[4]


def assert_times(got, want, tol):
    for g, w in zip(got, want):
        if w is None:
            assert g is None, format_datetime(g)
        else:
            assert g is not None, "expected " + w
            y, mo, d = int(w[0:4]), int(w[5:7]), int(w[8:10])
            ref = to_seconds(y, mo, d, int(w[11:13]), int(w[14:16]), int(w[17:19]))
            near(g, ref, tol)


def test_songjiang_midsummer_and_midwinter():
    tz = TZ("CST-8")
    got, polar = local_day(tz, 2026, 6, 21, *SONGJIANG)
    assert polar is None
    assert_times(
        got,
        [
            "2026-06-21T04:24:01",
            "2026-06-21T04:51:54",
            "2026-06-21T19:01:45",
            "2026-06-21T19:29:38",
        ],
        10,
    )
    got, _ = local_day(tz, 2026, 12, 21, *SONGJIANG)
    assert_times(
        got,
        [
            "2026-12-21T06:22:15",
            "2026-12-21T06:48:58",
            "2026-12-21T16:56:59",
            "2026-12-21T17:23:42",
        ],
        10,
    )


def test_sydney_in_summer_time():
    tz = TZ("AEST-10AEDT,M10.1.0,M4.1.0/3")
    got, _ = local_day(tz, 2026, 12, 21, -33.87, 151.21)
    assert_times(
        got,
        [
            "2026-12-21T05:11:29",
            "2026-12-21T05:40:38",
            "2026-12-21T20:05:24",
            "2026-12-21T20:34:34",
        ],
        10,
    )


def test_white_night_dusk_falls_after_midnight():
    # Oslo at midsummer: the evening's civil dusk is at 00:27 the next day; it is
    # reported as that solar day's dusk, with its real date.
    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    got, polar = local_day(tz, 2026, 6, 21, 59.91, 10.75)
    assert polar is None
    assert format_datetime(got[3])[:13] == "2026-06-22T00"
    near(got[1], to_seconds(2026, 6, 21, 3, 53, 48), 10)
    near(got[2], to_seconds(2026, 6, 21, 22, 43, 49), 10)


def test_polar_day_and_night_are_reported_as_such():
    tz = TZ("UTC0")
    dawn, rise, set_, dusk, polar = sun.solar_day(tz, 2026, 6, 21, 70.0, 20.0)
    assert (dawn, rise, set_, dusk, polar) == (None, None, None, None, "day")
    dawn, rise, set_, dusk, polar = sun.solar_day(tz, 2026, 12, 21, 70.0, 20.0)
    assert rise is None and set_ is None and polar == "night"
    # Civil twilight still happens at noon in the polar night at 70 N.
    assert dawn is not None and dusk is not None and dawn < dusk
    dawn, rise, set_, dusk, polar = sun.solar_day(tz, 2026, 6, 21, -70.0, 20.0)
    assert polar == "night"
    assert sun.solar_day(tz, 2026, 12, 21, -70.0, 20.0)[4] == "day"
    # At the poles themselves.
    assert sun.solar_day(tz, 2026, 6, 21, 90.0, 0.0)[4] == "day"
    assert sun.solar_day(tz, 2026, 6, 21, -90.0, 0.0)[4] == "night"


def test_events_are_in_order_and_on_their_elevation():
    tz = TZ("UTC0")
    for lat in (-60.0, -33.0, 0.0, 31.0, 52.0, 64.0):
        for month in (1, 3, 6, 9, 12):
            anchor = sun.day_anchor(tz, 2026, month, 10)
            elevs = (sun.ASTRONOMICAL, sun.NAUTICAL, sun.CIVIL, sun.SUNRISE, 10.0)
            noon, ev = sun.events(anchor, lat, 13.4, elevs)
            prev_rise = None
            for elev, (rise, rs, set_, ss) in zip(elevs, ev):
                if rs != sun.HAPPENS:
                    continue
                assert rise < noon < set_
                if prev_rise is not None:
                    assert rise > prev_rise  # higher elevations are reached later
                prev_rise = rise
                # Our own position model puts the sun on the elevation then.
                near(sun.elevation(rise, lat, 13.4), elev, 0.01)
                near(sun.elevation(set_, lat, 13.4), elev, 0.01)


def test_solar_noon_is_the_highest_point():
    tz = TZ("CST-8")
    noon, _ = sun.events(sun.day_anchor(tz, 2026, 3, 20), *SONGJIANG, ())
    top = sun.elevation(noon, *SONGJIANG)
    assert top > sun.elevation(noon - 600, *SONGJIANG)
    assert top > sun.elevation(noon + 600, *SONGJIANG)
    near(top, 90.0 - 31.03 - 0.2, 0.5)  # equinox: 90 - latitude, give or take declination


def test_same_answer_from_either_epoch():
    # The board's clock counts from 2000 (ESP32) or 1970 (unix port); either
    # reading of the same instant gives the same solar day once converted.
    from civil import epoch_offset, split

    tz = TZ("CST-8")
    instant = to_seconds(2026, 6, 21, 12)
    for gmtime_epoch, platform_time in ((2000, instant), (1970, instant + 946684800)):
        base = to_seconds(gmtime_epoch, 1, 1)

        def gmtime(t, base=base):
            return split(t + base)

        park = platform_time + epoch_offset(gmtime)
        y, m, d = split(tz.to_local(park))[:3]
        assert sun.solar_day(tz, y, m, d, *SONGJIANG) == sun.solar_day(tz, 2026, 6, 21, *SONGJIANG)


def test_bad_places_are_refused():
    tz = TZ("UTC0")
    assert "latitude 95" in str(raises(ValueError, sun.solar_day, tz, 2026, 1, 1, 95.0, 0.0))
    assert "longitude -181" in str(raises(ValueError, sun.solar_day, tz, 2026, 1, 1, 0.0, -181.0))
