# Every level change of a lamp configuration over some days, computed by the
# firmware's own lighting engine. Runs on CPython (imported by parkctl) and on
# MicroPython, reading the configuration's JSON text on stdin:
#   MICROPYPATH=firmware/lib:firmware/lamp micropython lamp_schedule.py YYYY-MM-DD DAYS < config.json
# Answers JSON lines (the level at the start, then each change, and each step
# skipped on a night because it falls in daylight, with the level that stays);
# bad input gives one line {"error": "..."}.
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
    # Skipped steps, a night at a time, merged in time order with the changes.
    pending = []
    night = [engine.program_day(start) - 1]

    def skips_until(t):
        while night[0] <= engine.program_day(t) + 1:
            rule = engine.program_for(night[0])[0]
            for item in skipped(engine, night[0]):
                if start <= item[0] < end:
                    pending.append((item[0], rule) + item[1:])
            pending.sort()
            night[0] += 1
        while pending and pending[0][0] <= t:
            at, rule, i, where, bound = pending.pop(0)
            emit(
                {
                    "at": civil.format_datetime(tz.to_local(at)),
                    "level": engine.target(at)[0],
                    "reason": skip_reason(engine, rule, i, where, bound),
                }
            )

    t = start
    while True:
        t = engine.next_change(t)
        skips_until(t if t < end else end - 1)
        if t >= end:
            break
        new, _, _, reason = engine.target(t)
        if new != level:
            emit(
                {"at": civil.format_datetime(tz.to_local(t)), "level": new, "reason": engine.describe(reason)}
            )
            level = new


def skipped(engine, day):
    """[(t, step index, where, bound)] of the steps the engine skips on a program
    day's night: where -1 before the night, 1 after it, 0 no night at all; bound
    the step that ends the night there, -1 for the horizon (sunset, sunrise).

    Which steps are skipped is the engine's answer (those missing from its day);
    the night's ends are worked out again here, as docs/lamp-config.md says,
    only to tell why: the lamp has no use for the words."""
    import sun

    kept = [item[2] for item in engine.day_steps(day)]
    steps = engine.program_for(day)[1].steps
    tz = engine.cfg.tz
    start = engine._noon(day)
    first = engine._sun(day, sun.SUNRISE, True, start)
    last = engine._sun(day + 1, sun.SUNRISE, False, start)
    if last is None:
        last = engine._noon(day + 1)
    opener = closer = -1
    instants = []
    for i, st in enumerate(steps):
        if st.kind == 0:
            t = tz.to_utc((day if st.clock >= 43200 else day + 1) * 86400 + st.clock)
        else:
            t = engine._sun(day if st.setting else day + 1, st.elev, st.setting, start)
            if t is None:
                continue
            if t != start:
                t += st.offset
            if st.setting and (first is None or t < first):
                first, opener = t, i
            elif not st.setting and t > last:
                last, closer = t, i
        instants.append((t, i))
    out = []
    for t, i in instants:
        if i not in kept:
            where = 0 if first is None else (-1 if t < first else 1)
            out.append((t, i, where, opener if where < 0 else closer))
    return out


def skip_reason(engine, rule, i, where, bound):
    """Why step i of a rule's program (-1: the default) is skipped on a night:
    "default step 3 (05:00) skipped: after sunrise"."""
    steps = engine.cfg.default.steps if rule < 0 else engine.cfg.rules[rule].program.steps
    head = engine.describe(("schedule", rule, i, None))
    if where == 0:
        return head + " skipped: no night (the sun does not set)"
    side = "before " if where < 0 else "after "
    if bound < 0:
        return head + " skipped: " + side + ("sunset" if where < 0 else "sunrise")
    return head + " skipped: %sstep %d (%s)" % (side, bound + 1, steps[bound].text)


if __name__ == "__main__":
    main(sys.argv[1:], sys.stdin.read(), lambda obj: print(json.dumps(obj)))
