# Every level change of a lamp configuration over some days, computed by the
# firmware's own lighting engine. Runs on CPython (imported by parkctl) and on
# MicroPython, reading the configuration's JSON text on stdin:
#   MICROPYPATH=firmware/lib:firmware/lamp micropython lamp_schedule.py YYYY-MM-DD DAYS < config.json
# Answers JSON lines (the level at the start, then each change); bad input gives
# one line {"error": "..."}.
# (Not named schedule.py: MicroPython puts the script's folder first on its path,
# and the firmware module it imports is called schedule.)

import json
import sys


def main(args, text, emit):
    """emit(obj) gets the level in force at the start, then each transition: one
    at a time, so a year of them never has to fit in a 100 KB heap."""
    import civil
    import lampconfig
    from schedule import Engine

    try:
        y, m, d = civil.parse_date(args[0])
        days = int(args[1])
        if not 1 <= days <= 366:
            raise ValueError("days %d is not 1..366" % days)
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
    start = tz.to_utc(civil.days_from_civil(y, m, d) * 86400)
    end = tz.to_utc((civil.days_from_civil(y, m, d) + days) * 86400)
    level, _, _, reason = engine.target(start)
    emit({"at": civil.format_datetime(tz.to_local(start)), "level": level, "reason": engine.describe(reason)})
    t = start
    while True:
        t = engine.next_change(t)
        if t >= end:
            break
        new, _, _, reason = engine.target(t)
        if new != level:
            emit(
                {"at": civil.format_datetime(tz.to_local(t)), "level": new, "reason": engine.describe(reason)}
            )
            level = new


if __name__ == "__main__":
    main(sys.argv[1:], sys.stdin.read(), lambda obj: print(json.dumps(obj)))
