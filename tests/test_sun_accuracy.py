"""The firmware's sun code, in float32 as on the ESP32, against skyfield/DE421.

Targets (issue #2): within 60 s of the reference for every day of a year up to
65 degrees of latitude, north and south; within 10 minutes up to 72 degrees.
Every event the reference has must be found, and no event invented, except on
days when the sun grazes the elevation: there the sun's extreme elevation that
day is within GRAZE degrees of the target, and whether it "crosses" depends on
a few arc-seconds that no model of the atmosphere can promise.
"""

from __future__ import annotations

import oracle
import pytest
from float32 import float32_firmware
from hypothesis import given, settings
from hypothesis import strategies as st

with float32_firmware():
    import civil as civil32
    import posixtz as posixtz32
    import sun as sun32

GRAZE = 0.05  # degrees
YEAR = 2026
KINDS = ((sun32.CIVIL, -6.0), (sun32.SUNRISE, None))  # ours, the oracle's horizon


def _zone(lon: float):
    """The whole-hour zone nearest the longitude's solar time, as real zones are
    (give or take a few hours): local noon is then near solar noon."""
    hours = round(lon / 15.0)
    return posixtz32.TZ(f"<{hours:+03d}>{-hours}")


def _year_of_events(lat: float, lon: float):
    """Our events of every local date of YEAR: {(elev, is_set): [times]}, and the
    transits."""
    tz = _zone(lon)
    events: dict[tuple[float, bool], list[int]] = {}
    extremes = []
    first = civil32.days_from_civil(YEAR, 1, 1)
    last = civil32.days_from_civil(YEAR + 1, 1, 1)
    with float32_firmware():
        for n in range(first, last):
            y, m, d = civil32.civil_from_days(n)
            noon, ev = sun32.events(sun32.day_anchor(tz, y, m, d), lat, lon, [k[0] for k in KINDS])
            extremes.append(noon)
            for (elev, _), (rise, _, set_, _) in zip(KINDS, ev, strict=True):
                if rise is not None:
                    events.setdefault((elev, False), []).append(rise)
                if set_ is not None:
                    events.setdefault((elev, True), []).append(set_)
    return events, extremes


def _grazing(lat: float, lon: float, t: int, elev: float) -> bool:
    """Is `t` within a day of a transit or lower transit where the sun's
    elevation is within GRAZE of `elev`?"""
    # The extreme elevations happen at transits; sample around t finely enough
    # (the sun's height changes little near an extreme).
    samples = [oracle.elevation(lat, lon, t + k * 900) for k in range(-96, 97)]
    top, bottom = max(samples), min(samples)
    return abs(top - elev) < GRAZE or abs(bottom - elev) < GRAZE


def _compare(lat: float, lon: float, tolerance: int):
    ours, _ = _year_of_events(lat, lon)
    t0 = civil32.to_seconds(YEAR, 1, 1) - 86400
    t1 = civil32.to_seconds(YEAR + 1, 1, 1) + 86400
    worst = 0
    problems = []
    for elev, horizon in KINDS:
        rises, sets = oracle.crossings(lat, lon, t0, t1, horizon)
        for is_set, ref in ((False, rises), (True, sets)):
            mine = sorted(ours.get((elev, is_set), []))
            # Each of ours has a reference event close by ...
            for t in mine:
                near = min(ref, key=lambda r, t=t: abs(r - t)) if ref else None
                err = abs(near - t) if near is not None else None
                if err is not None and err <= tolerance:
                    worst = max(worst, err)
                elif not _grazing(lat, lon, t, elev):
                    problems.append(("ours", elev, is_set, civil32.format_datetime(t), err))
            # ... and each reference event inside the year is one of ours.
            start, end = t0 + 86400 + 43200, t1 - 86400 - 43200
            for r in ref:
                if not start <= r <= end:
                    continue
                if mine and min(abs(r - t) for t in mine) <= tolerance:
                    continue
                if not _grazing(lat, lon, r, elev):
                    problems.append(("missed", elev, is_set, civil32.format_datetime(r)))
    return worst, problems


LATITUDES_60S = [
    -65.0,
    -60.0,
    -50.0,
    -40.0,
    -31.0,
    -20.0,
    -10.0,
    0.0,
    10.0,
    23.4,
    31.03,
    45.0,
    55.0,
    62.0,
    65.0,
]
LATITUDES_10MIN = [-72.0, -69.0, -67.0, 66.0, 68.0, 70.0, 72.0]


@pytest.mark.parametrize("lat", LATITUDES_60S)
def test_within_60_seconds_up_to_65_degrees(lat):
    lon = (lat * 7.3) % 360.0 - 180.0  # a different longitude for each latitude
    worst, problems = _compare(lat, lon, 60)
    assert not problems, problems[:10]
    assert worst <= 60


@pytest.mark.parametrize("lat", LATITUDES_10MIN)
def test_within_10_minutes_up_to_72_degrees(lat):
    lon = (lat * 7.3) % 360.0 - 180.0
    worst, problems = _compare(lat, lon, 600)
    assert not problems, problems[:10]
    assert worst <= 600


@settings(max_examples=40, deadline=None)
@given(
    lat=st.floats(-65.0, 65.0),
    lon=st.floats(-180.0, 180.0),
    day=st.integers(civil32.days_from_civil(2000, 1, 1), civil32.days_from_civil(2050, 12, 31)),
)
def test_random_places_and_dates_2000_to_2050(lat, lon, day):
    y, m, d = civil32.civil_from_days(day)
    tz = _zone(lon)
    with float32_firmware():
        anchor = sun32.day_anchor(tz, y, m, d)
        _, ev = sun32.events(anchor, lat, lon, [k[0] for k in KINDS])
    for (elev, horizon), (rise, _, set_, _) in zip(KINDS, ev, strict=True):
        rises, sets = oracle.crossings(lat, lon, anchor - 2 * 86400, anchor + 2 * 86400, horizon)
        for t, ref in ((rise, rises), (set_, sets)):
            if t is None:
                # No crossing that solar day: the reference has none within 12 h
                # of it either, unless the sun grazes the elevation.
                assert not any(abs(r - anchor) < 12 * 3600 for r in ref) or _grazing(lat, lon, anchor, elev)
                continue
            err = min(abs(r - t) for r in ref) if ref else None
            assert (err is not None and err <= 60) or _grazing(lat, lon, t, elev), (elev, err)


def test_float32_harness_catches_float32_unsafe_arithmetic():
    # A Julian day number has no fraction left in float32: the classic way to
    # break sun code on an ESP32. The harness must show it; the firmware avoids it.
    from float32 import compile_float32, f32

    src = "jd = 2451545.0 + 0.3\nfrac = jd - 2451545.0\n"
    scope: dict = {"__f32__": f32}
    exec(compile_float32(src, "<naive>"), scope)
    assert scope["frac"] == 0.25
    plain: dict = {}
    exec(src, plain)
    assert abs(plain["frac"] - 0.3) < 1e-9


def test_float32_and_float64_builds_differ_but_agree_to_a_second():
    import sun as sun64
    from posixtz import TZ

    tz64, tz32 = TZ("CST-8"), posixtz32.TZ("CST-8")
    with float32_firmware():
        p32 = sun32.position(9700, 0.123)
    p64 = sun64.position(9700, 0.123)
    assert p32 != p64  # the build really is float32
    for month in range(1, 13):
        with float32_firmware():
            a = sun32.solar_day(tz32, 2026, month, 15, 31.03, 121.23)
        b = sun64.solar_day(tz64, 2026, month, 15, 31.03, 121.23)
        for x, y in zip(a[:4], b[:4], strict=True):
            assert x is not None and y is not None  # every event happens in Songjiang
            assert abs(x - y) <= 1
