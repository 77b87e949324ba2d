# A lamp configuration over a whole year, by the firmware's own lighting engine:
# hours at each level, burning hours, energy at a rated power, the same lamp at
# full power from dusk to dawn, and hours lit in daylight. Runs on CPython
# (imported by parkctl) and on MicroPython, the configuration's JSON on stdin:
#   MICROPYPATH=firmware/lib:firmware/lamp micropython lamp_year.py YEAR WATTS PLOT < config.json
# Answers JSON lines: with PLOT 1, one per local date ({"date", "start", "changes":
# [[second of the day, level], ...], "sunrise", "sunset"} as seconds of the day or
# null); then the summary. Bad input gives one line {"error": "..."}.
# The level is the schedule's, steps taken at their instants (fades and the
# photocell left out); power is taken as proportional to the duty the output
# writes for it (output.py: the dimming curve, min_level), as the driver's
# draw follows its light: at 50 % on a gamma 2.2 curve, 22 % of full power.

import json
import sys


def _daylight(tz, lat, lon, date):
    """[(from, to)] park times the sun is up on a local date (sunrise to sunset)."""
    import sun

    midnight = tz.to_utc(date * 86400)
    end = tz.to_utc((date + 1) * 86400)
    sd = sun.SolarDay(tz.to_utc(date * 86400 + 43200), lat, lon)
    rise, rs = sd.crossing(sun.SUNRISE, False)
    set_, ss = sd.crossing(sun.SUNRISE, True)
    if rise is None and set_ is None:
        return [(midnight, end)] if rs == sun.ALWAYS_ABOVE else [], None, None
    a = midnight if rise is None else max(rise, midnight)
    b = end if set_ is None else min(set_, end)
    return ([(a, b)] if a < b else []), rise, set_


def _power(cfg, level):
    """The fraction of full power at a level: Output.duty's curve, min_level's floor."""
    x = (level if level > cfg.min_level else cfg.min_level) / 100.0
    return x**cfg.gamma if cfg.gamma != 1.0 else x


def main(args, text, emit):
    import civil
    import lampconfig
    from schedule import Engine

    try:
        year = int(args[0])
        if not 2000 <= year <= 2099:
            raise ValueError("year %d is not 2000..2099" % year)
        watts = float(args[1])
        if not 0 < watts <= 100000:
            raise ValueError("watts %s is not above 0 (and at most 100000)" % args[1])
        plot = args[2:3] == ["1"]
    except ValueError as e:
        emit({"error": str(e)})
        return
    try:
        cfg = lampconfig.loads(text)
    except lampconfig.ConfigError as e:
        emit({"error": "the configuration has %d error(s):\n  %s" % (len(e.errors), "\n  ".join(e.errors))})
        return
    del text
    tz = cfg.tz
    engine = Engine(cfg)
    first = civil.days_from_civil(year, 1, 1)
    last = civil.days_from_civil(year + 1, 1, 1)
    hours = {}  # level -> seconds
    lit_s = 0
    energy = 0.0  # watt-seconds
    daylight_s = 0
    lit_by_day_s = 0
    for date in range(first, last):
        day_start = tz.to_utc(date * 86400)
        day_end = tz.to_utc((date + 1) * 86400)
        light, rise, set_ = _daylight(tz, cfg.lat, cfg.lon, date)
        for a, b in light:
            daylight_s += b - a
        t = day_start
        level = engine.target(t)[0]
        start_level = level
        changes = []
        while t < day_end:
            nxt = engine.next_change(t)
            end = nxt if nxt < day_end else day_end
            dt = end - t
            hours[level] = hours.get(level, 0) + dt
            if level > 0:
                lit_s += dt
                energy += dt * watts * _power(cfg, level)
                for a, b in light:
                    lo = a if a > t else t
                    hi = b if b < end else end
                    if hi > lo:
                        lit_by_day_s += hi - lo
            t = end
            if t < day_end:
                new = engine.target(t)[0]
                if new != level:
                    changes.append([tz.to_local(t) - date * 86400, new])
                level = new
        if plot:
            emit(
                {
                    "date": "%04d-%02d-%02d" % civil.civil_from_days(date),
                    "start": start_level,
                    "changes": changes,
                    "sunrise": None if rise is None else tz.to_local(rise) - date * 86400,
                    "sunset": None if set_ is None else tz.to_local(set_) - date * 86400,
                }
            )
    total_s = tz.to_utc(last * 86400) - tz.to_utc(first * 86400)
    kwh = energy / 3600000.0
    full = watts * (total_s - daylight_s) / 3600000.0
    emit(
        {
            "year": year,
            "watts": watts,
            "hours_at_level": [[lvl, round(s / 3600.0, 2)] for lvl, s in sorted(hours.items())],
            "burning_hours": round(lit_s / 3600.0, 2),
            "kwh": round(kwh, 2),
            "dusk_to_dawn_kwh": round(full, 2),
            "saving_percent": round(100.0 * (1.0 - kwh / full), 1) if full > 0 else 0.0,
            "daylight_burning_hours": round(lit_by_day_s / 3600.0, 2),
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:], sys.stdin.read(), lambda obj: print(json.dumps(obj)))
