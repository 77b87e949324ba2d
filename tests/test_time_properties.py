"""Properties of the firmware's calendar and time-zone code, with CPython's
datetime and zoneinfo (the IANA database) as oracles. CPython-only: hypothesis."""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

import civil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posixtz import TZ

PARK_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

# POSIX strings and the IANA zones that follow them in these years.
ZONES = [
    ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin", 2000, 2037),
    ("EST5EDT,M3.2.0,M11.1.0", "America/New_York", 2008, 2037),
    ("AEST-10AEDT,M10.1.0,M4.1.0/3", "Australia/Sydney", 2009, 2037),
    ("CST-8", "Asia/Shanghai", 1992, 2037),
    ("<+0530>-5:30", "Asia/Kolkata", 1946, 2037),
]


def _zone_available(name: str) -> bool:
    try:
        ZoneInfo(name)
    except Exception:
        return False
    return True


@given(st.dates(dt.date(1600, 1, 1), dt.date(2400, 12, 31)))
def test_days_agree_with_datetime(day):
    n = civil.days_from_civil(day.year, day.month, day.day)
    assert n == (day - dt.date(2000, 1, 1)).days
    assert civil.civil_from_days(n) == (day.year, day.month, day.day)
    assert civil.weekday(n) == day.weekday()
    assert civil.day_of_year(day.year, day.month, day.day) == day.timetuple().tm_yday
    assert civil.days_in_month(day.year, day.month) == calendar.monthrange(day.year, day.month)[1]


@given(st.integers(-(6 * 10**10), 2 * 10**11))  # years 99 to 8337: what datetime handles
def test_split_agrees_with_gmtime(t):
    got = civil.split(t)
    want = (PARK_EPOCH + dt.timedelta(seconds=t)).timetuple()
    assert got == tuple(want[:8])
    assert civil.to_seconds(*got[:6]) == t


@pytest.mark.parametrize(("posix", "iana", "first", "last"), ZONES)
@settings(max_examples=300)
@given(data=st.data())
def test_offsets_agree_with_the_iana_database(posix, iana, first, last, data):
    if not _zone_available(iana):
        pytest.skip(f"no IANA data for {iana} on this machine")
    zone = ZoneInfo(iana)
    tz = TZ(posix)
    lo = int((dt.datetime(first, 1, 1, tzinfo=dt.UTC) - PARK_EPOCH).total_seconds())
    hi = int((dt.datetime(last, 12, 31, tzinfo=dt.UTC) - PARK_EPOCH).total_seconds())
    t = data.draw(st.integers(lo, hi))
    # Also aim at the changes themselves, where mistakes live.
    year = civil.split(t)[0]
    changes = tz.transitions(year)
    if changes:
        t = data.draw(st.sampled_from([t, *(c + d for c in changes for d in (-1, 0, 1))]))
    when = PARK_EPOCH + dt.timedelta(seconds=t)
    offset = when.astimezone(zone).utcoffset()
    assert offset is not None
    assert tz.offset(t) == int(offset.total_seconds())


@pytest.mark.parametrize(("posix", "iana", "first", "last"), ZONES)
@settings(max_examples=300)
@given(data=st.data())
def test_local_to_utc_agrees_with_the_iana_database(posix, iana, first, last, data):
    if not _zone_available(iana):
        pytest.skip(f"no IANA data for {iana} on this machine")
    zone = ZoneInfo(iana)
    tz = TZ(posix)
    wall = data.draw(st.datetimes(dt.datetime(first, 1, 1), dt.datetime(last, 12, 31)))
    wall = wall.replace(microsecond=0)
    local = civil.to_seconds(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)
    first_utc = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    second_utc = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
    exists = first_utc.astimezone(zone).replace(tzinfo=None) == wall
    if exists:
        # Ambiguous or not: fold 0 is the first instant, fold 1 the second.
        assert tz.to_utc(local) == int((first_utc - PARK_EPOCH).total_seconds())
        assert tz.to_utc(local, later=True) == int((second_utc - PARK_EPOCH).total_seconds())
    else:
        # In a gap our rule is "the instant of the change": between zoneinfo's two
        # readings, and local time there is the first wall time past `wall`.
        got = tz.to_utc(local)
        readings = sorted(int((u - PARK_EPOCH).total_seconds()) for u in (first_utc, second_utc))
        assert readings[0] <= got <= readings[1]
        assert tz.to_local(got) > local
        assert tz.to_local(got - 1) < local


@given(
    std=st.integers(-12 * 4, 14 * 4).map(lambda q: q * 900),
    start=st.tuples(st.integers(1, 12), st.integers(1, 5), st.integers(0, 6), st.integers(0, 5)),
    end=st.tuples(st.integers(1, 12), st.integers(1, 5), st.integers(0, 6), st.integers(0, 5)),
    t=st.integers(0, 40 * 365 * 86400),
)
def test_every_instant_round_trips(std, start, end, t):
    # Any zone with DST: each instant, turned into wall time and back, is found again
    # (as the first or the second reading of that wall time).
    if start[0] == end[0]:
        return  # a rule starting and ending in one month: not a real zone, not worth it
    sign = "-" if std > 0 else ""
    a = abs(std)
    rule = ",M{}.{}.{}/{},M{}.{}.{}/{}".format(*start, *end)
    text = f"AAA{sign}{a // 3600}:{a // 60 % 60:02d}BBB{rule}"
    tz = TZ(text)
    local = tz.to_local(t)
    assert t in (tz.to_utc(local), tz.to_utc(local, later=True)), text
