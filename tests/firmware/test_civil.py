# Civil calendar arithmetic; runs on CPython, float32 and MicroPython.

import civil
from fwtest import raises


def test_days_round_trip_over_four_centuries():
    # Every day from 1900 to 2300: to days and back, and days are consecutive.
    prev = civil.days_from_civil(1899, 12, 31)
    for year in range(1900, 2301, 7):
        for month in range(1, 13):
            for day in (1, 15, civil.days_in_month(year, month)):
                n = civil.days_from_civil(year, month, day)
                assert civil.civil_from_days(n) == (year, month, day)
    assert prev == -36525


def test_known_dates():
    assert civil.days_from_civil(2000, 1, 1) == 0
    assert civil.days_from_civil(2000, 3, 1) == 60  # 2000 is a leap year
    assert civil.days_from_civil(1970, 1, 1) == -10957
    assert civil.to_seconds(2026, 11, 28, 1, 20, 22) == 849144022
    assert civil.split(849144022) == (2026, 11, 28, 1, 20, 22, 5, 332)


def test_weekdays_as_micropython_counts_them():
    assert civil.weekday(civil.days_from_civil(2000, 1, 1)) == 5  # Saturday
    assert civil.weekday(civil.days_from_civil(2026, 6, 21)) == 6  # Sunday
    assert civil.weekday(civil.days_from_civil(1970, 1, 1)) == 3  # Thursday


def test_leap_years_and_month_lengths():
    assert civil.is_leap(2000) and civil.is_leap(2024) and civil.is_leap(2400)
    assert not civil.is_leap(1900) and not civil.is_leap(2100) and not civil.is_leap(2026)
    assert civil.days_in_month(2024, 2) == 29
    assert civil.days_in_month(2100, 2) == 28
    assert [civil.days_in_month(2026, m) for m in range(1, 13)] == [
        31,
        28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ]


def test_parse_date_names_the_bad_part():
    assert civil.parse_date("2026-06-21") == (2026, 6, 21)
    assert civil.parse_date("2024-02-29") == (2024, 2, 29)
    assert "day 30 is not 1..28" in str(raises(ValueError, civil.parse_date, "2026-02-30"))
    assert "month 13" in str(raises(ValueError, civil.parse_date, "2026-13-01"))
    assert "YYYY-MM-DD" in str(raises(ValueError, civil.parse_date, "21/06/2026"))
    assert "not a number" in str(raises(ValueError, civil.parse_date, "2026-0x-01"))


def test_parse_clock():
    assert civil.parse_clock("23:00") == 82800
    assert civil.parse_clock("05:04:03") == 18243
    assert "out of range" in str(raises(ValueError, civil.parse_clock, "24:00"))
    assert "HH:MM" in str(raises(ValueError, civil.parse_clock, "7:00"))


def test_both_epochs_give_the_same_park_time():
    # The ESP32 counts time.time() from 2000, the unix port and CPython from 1970.
    def gmtime_1970(t):
        return civil.split(t + civil.to_seconds(1970, 1, 1))

    def gmtime_2000(t):
        return civil.split(t)

    instant = civil.to_seconds(2026, 6, 21, 12)
    unix_time = instant + 946684800
    esp32_time = instant
    assert civil.epoch_offset(gmtime_1970) + unix_time == instant
    assert civil.epoch_offset(gmtime_2000) + esp32_time == instant


def test_this_runtime_epoch_is_recognised():
    import time

    off = civil.epoch_offset(time.gmtime)
    assert off in (0, -946684800)
    # gmtime of "now", shifted, agrees with civil.split.
    now = int(time.time())
    assert civil.split(now + off)[:6] == tuple(time.gmtime(now)[:6])
