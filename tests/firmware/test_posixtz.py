# POSIX TZ strings: parsing, errors, local <-> UTC across DST changes.
# Runs on CPython, float32 and MicroPython.

from civil import format_datetime, to_seconds
from fwtest import raises
from posixtz import TZ, TZError


def local(tz, t):
    return format_datetime(tz.to_local(t))


def utc(y, mo, d, h=0, mi=0, s=0):
    return to_seconds(y, mo, d, h, mi, s)


def test_fixed_offsets():
    cst = TZ("CST-8")
    assert cst.offset(utc(2026, 6, 21)) == 8 * 3600
    assert local(cst, utc(2026, 6, 21, 20)) == "2026-06-22T04:00:00"
    india = TZ("<+0530>-5:30")
    assert india.std_name == "+0530"
    assert local(india, utc(2026, 1, 1)) == "2026-01-01T05:30:00"
    assert TZ("UTC0").offset(0) == 0
    assert TZ("<-03>3").offset(0) == -3 * 3600


def test_transitions_2026():
    def tr(text):
        return [format_datetime(t) for t in TZ(text).transitions(2026)]

    assert tr("CET-1CEST,M3.5.0,M10.5.0/3") == ["2026-03-29T01:00:00", "2026-10-25T01:00:00"]
    assert tr("EST5EDT,M3.2.0,M11.1.0") == ["2026-03-08T07:00:00", "2026-11-01T06:00:00"]
    # Southern hemisphere: DST starts in October and ends in April.
    assert tr("AEST-10AEDT,M10.1.0,M4.1.0/3") == ["2026-10-03T16:00:00", "2026-04-04T16:00:00"]
    # A DST name without rules takes the US rules, as glibc and newlib do.
    assert tr("EST5EDT") == tr("EST5EDT,M3.2.0,M11.1.0")
    assert TZ("CST-8").transitions(2026) is None


def test_julian_day_rules():
    # Jn never counts Feb 29th; n does.
    assert format_datetime(TZ("XXX0YYY,J60/0,J300/0").transitions(2024)[0]) == "2024-03-01T00:00:00"
    assert format_datetime(TZ("XXX0YYY,59/0,300/0").transitions(2024)[0]) == "2024-02-29T00:00:00"


def test_cet_to_local_across_both_changes():
    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    assert local(tz, utc(2026, 3, 29, 0, 59, 59)) == "2026-03-29T01:59:59"
    assert local(tz, utc(2026, 3, 29, 1)) == "2026-03-29T03:00:00"
    assert local(tz, utc(2026, 10, 25, 0, 59, 59)) == "2026-10-25T02:59:59"
    assert local(tz, utc(2026, 10, 25, 1)) == "2026-10-25T02:00:00"
    assert tz.is_dst(utc(2026, 7, 1)) and not tz.is_dst(utc(2026, 1, 1))


def test_repeated_hour_gives_first_then_later():
    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    wall = to_seconds(2026, 10, 25, 2, 30)
    assert tz.to_utc(wall) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert tz.to_utc(wall, later=True) == utc(2026, 10, 25, 1, 30)  # 02:30 CET
    ny = TZ("EST5EDT,M3.2.0,M11.1.0")
    wall = to_seconds(2026, 11, 1, 1, 30)
    assert ny.to_utc(wall) == utc(2026, 11, 1, 5, 30)
    assert ny.to_utc(wall, later=True) == utc(2026, 11, 1, 6, 30)


def test_missing_hour_maps_to_the_change():
    tz = TZ("CET-1CEST,M3.5.0,M10.5.0/3")
    change = utc(2026, 3, 29, 1)
    for minute in (0, 1, 30, 59):
        assert tz.to_utc(to_seconds(2026, 3, 29, 2, minute)) == change
    assert tz.to_utc(to_seconds(2026, 3, 29, 3, 0)) == change
    assert tz.to_utc(to_seconds(2026, 3, 29, 1, 59, 59)) == change - 1
    syd = TZ("AEST-10AEDT,M10.1.0,M4.1.0/3")
    assert syd.to_utc(to_seconds(2026, 10, 4, 2, 30)) == utc(2026, 10, 3, 16)


def test_southern_dst_spans_new_year():
    syd = TZ("AEST-10AEDT,M10.1.0,M4.1.0/3")
    assert syd.offset(utc(2026, 1, 1)) == 11 * 3600
    assert syd.offset(utc(2026, 6, 1)) == 10 * 3600
    assert syd.offset(utc(2026, 12, 31, 23)) == 11 * 3600
    assert local(syd, utc(2026, 4, 4, 15, 59, 59)) == "2026-04-05T02:59:59"
    assert local(syd, utc(2026, 4, 4, 16)) == "2026-04-05T02:00:00"


def test_round_trip_every_hour_of_a_year():
    for text in ("CET-1CEST,M3.5.0,M10.5.0/3", "AEST-10AEDT,M10.1.0,M4.1.0/3", "EST5EDT"):
        tz = TZ(text)
        t = utc(2026, 1, 1)
        end = utc(2027, 1, 1)
        while t < end:
            # Every instant comes back, using `later` for the second of two readings.
            back = tz.to_utc(tz.to_local(t))
            if back != t:
                assert tz.to_utc(tz.to_local(t), later=True) == t, (text, format_datetime(t))
            t += 1800


def test_bad_strings_name_the_bad_part():
    cases = (
        ("", "standard time name"),
        ("C-1", "standard time name needs 3 or more letters"),
        ("CET", "expected a UTC offset"),
        ("CET-25", "UTC offset hours must be 0..24"),
        ("CET-1CEST,M3.5.0,M10.5", "DST end needs Mmonth.week.day"),
        ("CET-1CEST,M13.5.0,M10.5.0", "DST start month must be 1..12"),
        ("CET-1CEST,M3.6.0,M10.5.0", "DST start week must be 1..5"),
        ("CET-1CEST,M3.5.7,M10.5.0", "DST start weekday must be 0..6"),
        ("CET-1CEST;M3.5.0", 'expected "," before the DST rules'),
        ("CET-1CEST,M3.5.0", 'expected "," before the DST end rule'),
        ("CET-1CEST,M3.5.0,M10.5.0/3x", "unexpected text"),
        ("<+05-5", 'no closing ">"'),
        ("CET-1CEST,J0,J100", "Julian day must be 1..365"),
        ("CET-1CEST,X3,M10.5.0", "must be Mm.w.d, Jn or n"),
    )
    for text, words in cases:
        e = raises(TZError, TZ, text)
        assert words in str(e), (text, str(e))
        assert text in str(e)
    assert "must be a string" in str(raises(TZError, TZ, 8))
