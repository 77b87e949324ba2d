# One local date's solar events, computed by the firmware's own sun module.
# Runs on CPython (imported by parkctl) and on MicroPython:
#   MICROPYPATH=firmware/lib micropython sun_day.py LAT LON YYYY-MM-DD TZ
# Answers one JSON object; bad input gives {"error": "..."}.

import json
import sys


def _number(text, what):
    try:
        return float(text)
    except ValueError:
        raise ValueError("%s %r is not a number" % (what, text))


def main(args):
    import civil
    import sun
    from posixtz import TZ

    try:
        lat = _number(args[0], "latitude")
        lon = _number(args[1], "longitude")
        y, m, d = civil.parse_date(args[2])
        tz = TZ(args[3])
        dawn, rise, set_, dusk, polar = sun.solar_day(tz, y, m, d, lat, lon)
    except ValueError as e:
        return {"error": str(e)}

    def local(t):
        return None if t is None else civil.format_datetime(tz.to_local(t))

    return {
        "civil_dawn": local(dawn),
        "sunrise": local(rise),
        "sunset": local(set_),
        "civil_dusk": local(dusk),
        "polar": polar,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
