# The lighting engine: what level now, why, and when it next changes.
#
# Each "program day" D runs from local noon of date D to local noon of D+1, so a
# night belongs to the date it starts on and the calendar picks one program for
# the whole night. A step's instant on program day D:
#   - a clock time at or after 12:00 is on date D, before 12:00 on date D+1;
#   - an evening sun event (sun going down: sunset, dusk...) is on date D, a
#     morning one (sunrise, dawn...) on date D+1, each from the solar day whose
#     noon is nearest local noon of its date (one solar day, not two equally
#     near: lampconfig refuses a site whose clock is more than 4 h from its solar
#     time); then the offset is added;
#   - a sun event that does not happen that day (polar day or night): an event
#     that would make it dark is taken to have happened at the start of the
#     program day when the sun stays below it (it is dark all day), and never
#     happens when the sun stays above it; the other way round for events that
#     make it light.
# A program governs one night (docs/lamp-config.md, "Programs bounded by the
# night"): sunset to sunrise, widened only by the program's own sun steps; a
# step outside it that night is skipped (unless opted in to daylight), and a
# level its steps leave lit goes off when it ends.
# The level at instant t is that of the latest step at or before t, over all
# program days, after the output limits (0, or min_level..max_level). Nothing
# depends on when the engine was last asked, so a boot, a power cut or a clock
# step gives the right level at once; a missed step cannot exist.

import sun
from civil import civil_from_days, weekday

# Why a level is what it is: reason[0].
SCHEDULE = "schedule"
OVERRIDE = "override"
NONE = "none"

_NOON = 43200
_BACK = 3  # program days looked at before the current one
_AHEAD = 3  # and after it
_CACHE = 8  # program days kept computed


class Engine:
    def __init__(self, cfg):
        self.cfg = cfg
        self._days = {}  # program day -> sorted [(t, day, step_index, level, fade, rule_index)]
        self._override = None  # (level, until, source)
        self._suns = {}  # local date -> sun.SolarDay: a date's transit serves two program days

    # --- calendar -------------------------------------------------------

    def program_for(self, day):
        """(rule index or -1 for the default, Program) in force on program day `day`."""
        y, m, d = civil_from_days(day)
        wd = weekday(day)
        for i, rule in enumerate(self.cfg.rules):
            if rule.weekdays and not rule.weekdays & (1 << wd):
                continue
            if rule.dates is not None and not _date_matches(rule.dates, y, m, d):
                continue
            return i, rule.program
        return -1, self.cfg.default

    # --- steps ----------------------------------------------------------

    def limit(self, level):
        cfg = self.cfg
        if level <= 0 or level < cfg.min_level:
            return 0
        if level > cfg.max_level:
            return cfg.max_level
        return level

    def day_steps(self, day):
        steps = self._days.get(day)
        if steps is not None:
            return steps
        if len(self._days) >= _CACHE:
            # Drop the day furthest from this one: time mostly moves forward.
            far = max(self._days, key=lambda k: abs(k - day))
            del self._days[far]
        steps = self._compute(day)
        self._days[day] = steps
        return steps

    def _sun(self, date, elev, setting, start):
        """A sun event on a local date: its park time; `start` when the sun stays
        on the side it leads to (already dark, or light); None when it never comes."""
        suns = self._suns
        sd = suns.get(date)
        if sd is None:
            if len(suns) > 2 * _CACHE:
                suns.clear()
            sd = suns[date] = sun.SolarDay(self._noon(date), self.cfg.lat, self.cfg.lon)
        t, status = sd.crossing(elev, setting)
        if t is None and (status == sun.ALWAYS_BELOW) == setting:
            return start
        return t

    def _compute(self, day):
        cfg = self.cfg
        tz = cfg.tz
        rule, program = self.program_for(day)
        start = self._noon(day)
        # The night: sunset to sunrise (polar night: the whole program day; polar
        # day: none), widened by the program's own sun steps (an evening one
        # before sunset opens it, a morning one after sunrise closes it).
        sunset = self._sun(day, sun.SUNRISE, True, start)
        sunrise = self._sun(day + 1, sun.SUNRISE, False, start)
        first = sunset
        last = self._noon(day + 1) if sunrise is None else sunrise
        out = []
        steps = program.steps
        for i, st in enumerate(steps):
            if st.kind == 0:  # clock time
                t = tz.to_utc((day if st.clock >= _NOON else day + 1) * 86400 + st.clock)
            else:
                if st.elev == sun.SUNRISE:
                    t = sunset if st.setting else sunrise
                else:
                    t = self._sun(day if st.setting else day + 1, st.elev, st.setting, start)
                if t is None:
                    continue  # never happens
                if t != start:
                    t += st.offset
                if st.setting:
                    if first is None or t < first:
                        first = t
                elif t > last:
                    last = t
            # Steps at the same instant (several in a DST gap) apply in the
            # config's order, and a later program day's after an earlier one's.
            out.append((t, day, i, self.limit(st.level), st.fade, rule))
        out.sort()
        # Steps outside the night are skipped (parkctl's lamp_schedule.py says
        # why), unless opted in to daylight; and a night ends dark: a level its
        # steps leave lit goes off at its end, unless the step that set it is
        # opted in.
        kept = []
        lit = None
        for item in out:
            t = item[0]
            if steps[item[2]].day or (first is not None and first <= t <= last):
                kept.append(item)
                if t <= last:
                    lit = item
        if lit is not None and lit[3] > 0 and not steps[lit[2]].day:
            kept.append((last, day, len(steps), 0, lit[4], rule))
        return kept

    def _noon(self, day):
        return self.cfg.tz.to_utc(day * 86400 + _NOON)

    def program_day(self, t):
        return (self.cfg.tz.to_local(t) - _NOON) // 86400

    # --- the two questions ----------------------------------------------

    def scheduled(self, t):
        """(level, fade, since, reason) from the schedule alone at park time t."""
        best = self._latest(t)
        if best is None:
            return 0, 0, None, (NONE, -1, -1, None)
        return best[3], best[4], best[0], (SCHEDULE, best[5], best[2], None)

    def _latest(self, t):
        """The step in force at t: (t, day, step index, level, fade, rule index)."""
        # The latest step at or before t, over the program days from two after
        # t's back to _BACK before it; a day is skipped when all its steps
        # are surely after t, and the search stops once a day's steps are surely
        # all before the best found so far. Usually three days are computed.
        before, after = self.cfg.reach
        day = self.program_day(t)
        best = None
        for d in range(day + 2, day - _BACK - 1, -1):
            noon = self._noon(d)
            if noon - before > t:
                continue
            if best is not None and noon + after < best[0]:
                break
            for item in self.day_steps(d):
                if item[0] <= t and (best is None or item > best):
                    best = item
        return best

    def _sooner(self, t, level, at):
        """`at`, or earlier the instant the step in force at t falls out of the
        nights looked back (no step for that long: a polar season), if the level
        changes there."""
        best = self._latest(t)
        if best is None:
            return at
        expiry = self._noon(best[1] + _BACK + 1)
        if t < expiry < at and self.scheduled(expiry)[0] != level:
            return expiry
        return at

    def target(self, t):
        """(level, fade, since, reason): the level in force at park time t.

        reason is (source, rule index or -1, step index, detail): `describe`
        turns it into words."""
        ov = self._override
        if ov is not None:
            if t < ov[1]:
                return ov[0], 0, None, (OVERRIDE, -1, -1, ov[2])
            self._override = None
        return self.scheduled(t)

    def _next_scheduled(self, t, level):
        before, after = self.cfg.reach
        day = self.program_day(t)
        steps = []
        for d in range(day - _BACK, day + _AHEAD + 1):
            noon = self._noon(d)
            if noon + after <= t:
                continue  # all of that day's steps are before t
            for item in self.day_steps(d):
                if item[0] > t:
                    steps.append(item)
            steps.sort()
            # The first step that changes the level (of several at one instant,
            # the last counts), final once the next day's steps surely come after.
            nxt = self._noon(d + 1) - before
            for k, item in enumerate(steps):
                if item[0] >= nxt:
                    break
                if (k + 1 == len(steps) or steps[k + 1][0] != item[0]) and item[3] != level:
                    return self._sooner(t, level, item[0])
        # No change within the window: look again from its end.
        return self._sooner(t, level, self._noon(day + _AHEAD))

    def next_change(self, t):
        """The first instant after t at which the level may differ from now.

        Usually a real change; after a long unchanging stretch (polar night) it
        may be a point at which to ask again, where the level stays the same."""
        level = self.target(t)[0]
        ov = self._override
        if ov is not None and t < ov[1]:
            if self.scheduled(ov[1])[0] != level:
                return ov[1]
            return self._next_scheduled(ov[1], level)
        return self._next_scheduled(t, level)

    # --- overrides ------------------------------------------------------

    def set_override(self, level, until, source):
        """Hold `level` until park time `until` (from the centre or a technician)."""
        self._override = (self.limit(level), until, source)

    def clear_override(self):
        self._override = None

    def describe(self, reason):
        source, rule, step, detail = reason
        if source == OVERRIDE:
            return "override by %s" % detail
        if source != SCHEDULE:
            return source if detail is None else "%s: %s" % (source, detail)
        program = self.cfg.default if rule < 0 else self.cfg.rules[rule].program
        name = "default" if rule < 0 else self.cfg.rules[rule].name
        if step >= len(program.steps):
            return "%s: end of the night" % name
        return "%s step %d (%s)" % (name, step + 1, program.steps[step].text)


def _date_matches(ranges, y, m, d):
    for a, b in ranges:
        if a[0]:  # full dates
            if a <= (y, m, d) <= b:
                return True
            continue
        md = (m, d)
        lo, hi = (a[1], a[2]), (b[1], b[2])
        if lo <= hi:
            if lo <= md <= hi:
                return True
        elif md >= lo or md <= hi:  # wraps over New Year: "12-24..01-02"
            return True
    return False
