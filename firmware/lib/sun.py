# Solar events (dawn, sunrise, sunset, dusk, any elevation) for a date and place.
#
# The solar position follows NOAA's solar calculator (Meeus, "Astronomical
# Algorithms", low-precision sun with nutation and aberration). Event times are
# refined by iterating on the sun's position at the event itself, not at noon:
# that is what keeps high-latitude answers within a minute.
#
# Written for float32 (the ESP32's MicroPython float): no Julian day numbers
# (2451545.0 has no fractional precision left in float32), days since J2000
# kept as an int plus a small float, the ~1 degree/day angles reduced exactly
# with integers, and instants kept as int seconds with float offsets < 1 day.

import math

from civil import days_from_civil

# Elevation of the sun's centre at each event, degrees. Sunrise and sunset:
# upper limb on a sea-level horizon (34' refraction + 16' semi-diameter).
SUNRISE = -0.833
CIVIL = -6.0
NAUTICAL = -12.0
ASTRONOMICAL = -18.0

# An event's status, beside its time.
HAPPENS = 0
ALWAYS_ABOVE = 1  # the sun stays above the elevation all that day (polar day)
ALWAYS_BELOW = -1  # it never reaches it (polar night)

_DEG = math.pi / 180.0
_HALF_DAY = 43200
_MAX_STEPS = 8


def _reduce(n, hi):
    # n * hi / 4096 mod 360, exactly, with small ints (n * hi < 2**30 to 2100).
    return (n * hi % 1474560) / 4096.0


def position(n, f):
    """The sun at n + f days after J2000.0 (2000-01-01 12:00 UTC; n an int, f a
    float of at most a few days). Returns (sin_decl, cos_decl, eqt_minutes)."""
    jc = n / 36525.0 + f / 36525.0
    jc2 = jc * jc
    # Mean longitude and mean anomaly, ~0.9856 degrees a day: the whole-day part
    # is reduced mod 360 in integers (4037/4096 is both rates' head), only the
    # small remainder goes through float arithmetic.
    whole = _reduce(n, 4037)
    l0 = 280.46646 + whole + n * 5.1656875e-5 + f * 0.98564736 + 3.032e-4 * jc2
    mr = (357.52911 + whole + n * 4.576875e-6 + f * 0.98560028 - 1.537e-4 * jc2) * _DEG
    l0r2 = 2.0 * l0 * _DEG
    e = 0.016708634 - jc * 4.2037e-5 - 1.267e-7 * jc2
    sm = math.sin(mr)
    s2m = math.sin(2.0 * mr)
    c = (
        sm * (1.914602 - jc * 0.004817 - 1.4e-5 * jc2)
        + s2m * (0.019993 - 1.01e-4 * jc)
        + math.sin(3.0 * mr) * 2.89e-4
    )
    omega = (125.04 - n * 0.05295377 - f * 0.05295377) * _DEG
    lam = (l0 + c - 0.00569 - 0.00478 * math.sin(omega)) * _DEG
    eps0 = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (5.9e-4 - jc * 1.813e-3))) / 60.0) / 60.0
    eps = (eps0 + 0.00256 * math.cos(omega)) * _DEG
    sd = math.sin(eps) * math.sin(lam)
    cd = math.sqrt(1.0 - sd * sd)
    y = math.tan(eps / 2.0)
    y *= y
    eqt = (
        y * math.sin(l0r2)
        - 2.0 * e * sm
        + 4.0 * e * y * sm * math.cos(l0r2)
        - 0.5 * y * y * math.sin(2.0 * l0r2)
        - 1.25 * e * e * s2m
    )
    return sd, cd, eqt * (4.0 / _DEG)


def _split(anchor):
    # Park time (int seconds since 2000-01-01 00:00 UTC) -> (J2000 day, seconds into it).
    k = anchor - _HALF_DAY
    n = k // 86400
    return n, k - n * 86400


def _wrap(deg):
    # Into [-180, 180).
    return (deg + 180.0) % 360.0 - 180.0


class _Sky:
    """The sun seen from one place, around one anchor instant.

    Instants are the anchor (int park time) plus s float seconds, |s| < ~1 day,
    so no float ever holds a full timestamp."""

    def __init__(self, anchor, lat, lon):
        self.noon = None
        self.n, self.rem = _split(anchor)
        self.lon = lon
        self.sl = math.sin(lat * _DEG)
        self.cl = math.cos(lat * _DEG)

    def at(self, s):
        """(sin_decl, cos_decl, hour_angle_degrees) at anchor + s."""
        sd, cd, eqt = position(self.n, (self.rem + s) / 86400.0)
        # True solar time: J2000 days start at noon UTC, so the UTC time of day
        # in minutes is (rem + s) / 60 + 720.
        h = _wrap(((self.rem + s) / 60.0 + 720.0 + eqt + 4.0 * self.lon) / 4.0 - 180.0)
        return sd, cd, h

    def transit(self):
        """Seconds from the anchor to the nearest upper transit (solar noon).

        Also keeps the sun's (sin_decl, cos_decl, 0.0) there in `self.noon`, for
        the first step of `event`."""
        s = 0.0
        for _ in range(_MAX_STEPS):
            sd, cd, h = self.at(s)
            self.noon = (sd, cd, 0.0)
            step = -h * 240.0
            s += step
            # Each step shrinks the error some 3000 times (the equation of time
            # moves < 30 s a day): after a step under 20 s it is below 0.01 s.
            if -20.0 < step < 20.0:
                break
        return s

    def cos_hour_angle(self, sd, cd, elev):
        den = self.cl * cd
        num = math.sin(elev * _DEG) - self.sl * sd
        if den < 1e-7:  # at a pole: the sun circles at one elevation all day
            return 2.0 if num > 0.0 else -2.0
        return num / den

    def event(self, t0, elev, setting):
        """(seconds from the anchor, status) of the sun crossing `elev` before
        (rising) or after (setting) the transit at t0."""
        s = t0
        near_lower = False
        for k in range(_MAX_STEPS):
            # Declination and hour angle at the current estimate: the target
            # hour angle moves with the declination, so both are re-evaluated.
            # (At the transit they are known already: at most 20 s and 0.01
            # degrees of hour angle away, which the next step absorbs.)
            sd, cd, h = self.noon if k == 0 and self.noon else self.at(s)
            ch = self.cos_hour_angle(sd, cd, elev)
            if ch >= 1.0 or ch <= -1.0:
                if near_lower:
                    return None, ALWAYS_BELOW if ch >= 1.0 else ALWAYS_ABOVE
                # A grazing crossing happens near the lower transit, half a day
                # away, where the declination differs: judge it there.
                near_lower = True
                s = t0 + (43200.0 if setting else -43200.0)
                continue
            near_lower = True
            target = math.acos(ch) / _DEG
            if not setting:
                target = -target
            step = _wrap(target - h) * 240.0
            s += step
            # A rising belongs before its transit, a setting after it.
            if (s < t0) if setting else (s > t0):
                s = t0
            # The declination's drift shrinks the error ~100 times a step away
            # from the poles: after a step under 2 s it is well under a second.
            if -2.0 < step < 2.0:
                break
        return s, HAPPENS


def _check_place(lat, lon):
    if not -90.0 <= lat <= 90.0:
        raise ValueError("latitude %s is outside -90..90" % lat)
    if not -180.0 <= lon <= 180.0:
        raise ValueError("longitude %s is outside -180..180" % lon)


def _round(anchor, s):
    return anchor + int(math.floor(s + 0.5))


def day_anchor(tz, year, month, day):
    """Park time (UTC) of local noon on a local date."""
    return tz.to_utc(days_from_civil(year, month, day) * 86400 + _HALF_DAY)


class SolarDay:
    """The solar day whose noon is nearest `anchor` (park time, UTC): its transit is
    found once, and any number of crossings computed from it."""

    def __init__(self, anchor, lat, lon):
        _check_place(lat, lon)
        self.anchor = anchor
        self._sky = _Sky(anchor, lat, lon)
        self._t0 = None

    def _transit(self):
        if self._t0 is None:
            self._t0 = self._sky.transit()
        return self._t0

    def transit(self):
        """Solar noon, park time."""
        return _round(self.anchor, self._transit())

    def crossing(self, elev, setting):
        """The setting through `elev` after the transit, or the rising before it:
        (park time or None, status)."""
        s, status = self._sky.event(self._transit(), elev, setting)
        return (None if s is None else _round(self.anchor, s)), status


def events(anchor, lat, lon, elevs):
    """For the solar day whose noon is nearest `anchor` (park time, UTC), the
    rising and setting through each elevation in `elevs` (degrees).

    Returns (transit, [(rise, rise_status, set, set_status), ...]), instants as
    int park time, None where the status is not HAPPENS."""
    day = SolarDay(anchor, lat, lon)
    return day.transit(), [day.crossing(e, False) + day.crossing(e, True) for e in elevs]


def solar_day(tz, year, month, day, lat, lon):
    """Civil dawn, sunrise, sunset, civil dusk (park time, UTC, or None) and
    polar ("day", "night" or None) of a local date.

    The events are those of the solar day whose noon is nearest local noon: at
    extreme places a sunset can fall just after local midnight, and then it is
    reported with the next date."""
    _, ev = events(day_anchor(tz, year, month, day), lat, lon, (CIVIL, SUNRISE))
    civil, rise = ev
    polar = None
    if rise[0] is None and rise[2] is None:
        polar = "day" if rise[1] == ALWAYS_ABOVE else "night"
    return civil[0], rise[0], rise[2], civil[2], polar


def elevation(t, lat, lon):
    """The sun's geometric elevation, degrees, at park time t (UTC)."""
    sky = _Sky(t, lat, lon)
    sd, cd, h = sky.at(0.0)
    se = sky.sl * sd + sky.cl * cd * math.cos(h * _DEG)
    if se > 1.0:
        se = 1.0
    elif se < -1.0:
        se = -1.0
    return math.asin(se) / _DEG
