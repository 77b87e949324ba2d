# Civil calendar arithmetic without CPython's datetime.
#
# Every instant inside the firmware is an int: seconds since 2000-01-01 00:00:00
# UTC ("park time"). That keeps the numbers below 2**30 (a small int on the
# ESP32, so no heap allocation) until 2034, and independent of the platform's
# epoch: MicroPython on the ESP32 counts from 2000, the unix port and CPython
# from 1970. Only `epoch_offset` looks at the platform.

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython

    def const(x):
        return x


SECONDS_PER_DAY = const(86400)
_MONTH_DAYS = b"\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"


def is_leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year, month):
    if month == 2 and is_leap(year):
        return 29
    return _MONTH_DAYS[month - 1]


def days_from_civil(year, month, day):
    """Days since 2000-01-01 of a proleptic Gregorian date (negative before it).

    Integer-only (H. Hinnant's algorithm, shifted to the 2000 epoch)."""
    if month <= 2:
        year -= 1
    era = year // 400
    yoe = year - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 730425


def civil_from_days(days):
    """(year, month, day) of a day count from `days_from_civil`."""
    z = days + 730425
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400
    if month <= 2:
        year += 1
    return year, month, day


def weekday(days):
    """0 = Monday .. 6 = Sunday, as MicroPython's time.localtime() counts.

    2000-01-01 was a Saturday."""
    return (days + 5) % 7


def day_of_year(year, month, day):
    """1 = January 1st."""
    return days_from_civil(year, month, day) - days_from_civil(year, 1, 1) + 1


def to_seconds(year, month, day, hour=0, minute=0, second=0):
    return days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second


def split(t):
    """(year, month, day, hour, minute, second, weekday, yearday) of park time t,
    the same 8-tuple shape as MicroPython's time.gmtime()."""
    days = t // SECONDS_PER_DAY
    rem = t - days * SECONDS_PER_DAY
    y, m, d = civil_from_days(days)
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, weekday(days), day_of_year(y, m, d))


def check_date(year, month, day):
    """Raise ValueError naming the bad part of a date."""
    if not 1 <= month <= 12:
        raise ValueError("month %d is not 1..12" % month)
    n = days_in_month(year, month)
    if not 1 <= day <= n:
        raise ValueError("day %d is not 1..%d in %04d-%02d" % (day, n, year, month))


def _digits(text, what):
    if not text or not text.isdigit():
        raise ValueError("%s %r is not a number" % (what, text))
    return int(text)


def parse_date(text):
    """'YYYY-MM-DD' -> (year, month, day); ValueError names what is wrong."""
    parts = text.split("-")
    if len(parts) != 3 or len(parts[0]) != 4 or len(parts[1]) != 2 or len(parts[2]) != 2:
        raise ValueError("date %r is not YYYY-MM-DD" % text)
    y = _digits(parts[0], "year")
    m = _digits(parts[1], "month")
    d = _digits(parts[2], "day")
    try:
        check_date(y, m, d)
    except ValueError as e:
        raise ValueError("date %s: %s" % (text, e))
    return y, m, d


def parse_clock(text):
    """'HH:MM' or 'HH:MM:SS' -> seconds after midnight (0..86399)."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or any(len(p) != 2 for p in parts):
        raise ValueError("time %r is not HH:MM or HH:MM:SS" % text)
    h = _digits(parts[0], "hour")
    mi = _digits(parts[1], "minute")
    s = _digits(parts[2], "second") if len(parts) == 3 else 0
    if h > 23 or mi > 59 or s > 59:
        raise ValueError("time %r is out of range 00:00:00..23:59:59" % text)
    return h * 3600 + mi * 60 + s


def format_datetime(t):
    """Park-time seconds (already shifted to local time if wanted) -> 'YYYY-MM-DDTHH:MM:SS'."""
    y, m, d, hh, mm, ss = split(t)[:6]
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (y, m, d, hh, mm, ss)


def format_date(days):
    y, m, d = civil_from_days(days)
    return "%04d-%02d-%02d" % (y, m, d)


def epoch_offset(gmtime):
    """Seconds to add to the platform's time.time() to get park time.

    `gmtime` is the platform's time.gmtime: its value at 0 names the epoch
    (1970 on CPython and the unix port, 2000 on the ESP32)."""
    g = gmtime(0)
    return to_seconds(g[0], g[1], g[2], g[3], g[4], g[5])
