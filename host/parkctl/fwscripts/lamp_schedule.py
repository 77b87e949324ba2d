# Every level change of a lamp configuration over some days, computed by the
# firmware's own lighting engine. Runs on CPython (imported by parkctl) and on
# MicroPython, reading the configuration's JSON text on stdin:
#   MICROPYPATH=firmware/lib:firmware/lamp micropython lamp_schedule.py YYYY-MM-DD DAYS < config.json
# Answers one JSON object; bad input gives {"error": "..."}.
# (Not named schedule.py: MicroPython puts the script's folder first on its path,
# and the firmware module it imports is called schedule.)

import json
import sys


def main(args, text):
    import civil
    import lampconfig
    from schedule import Engine

    try:
        y, m, d = civil.parse_date(args[0])
        days = int(args[1])
        if not 1 <= days <= 366:
            raise ValueError("days %d is not 1..366" % days)
    except ValueError as e:
        return {"error": str(e)}
    try:
        cfg = lampconfig.loads(text)
    except lampconfig.ConfigError as e:
        return {"error": "the configuration has %d error(s):\n  %s" % (len(e.errors), "\n  ".join(e.errors))}
    tz = cfg.tz
    engine = Engine(cfg)
    start = tz.to_utc(civil.days_from_civil(y, m, d) * 86400)
    end = tz.to_utc((civil.days_from_civil(y, m, d) + days) * 86400)
    level, _, _, reason = engine.target(start)
    first = {
        "at": civil.format_datetime(tz.to_local(start)),
        "level": level,
        "reason": engine.describe(reason),
    }
    out = []
    t = start
    while True:
        t = engine.next_change(t)
        if t >= end:
            break
        new, _, _, reason = engine.target(t)
        if new != level:
            out.append(
                {
                    "at": civil.format_datetime(tz.to_local(t)),
                    "level": new,
                    "reason": engine.describe(reason),
                }
            )
            level = new
    return {"start": first, "transitions": out}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:], sys.stdin.read())))
