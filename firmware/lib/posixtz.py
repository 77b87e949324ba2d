# POSIX TZ strings (what ESP-IDF's setenv("TZ") takes): local <-> UTC.
#
#   std offset [dst [offset] [,start[/time],end[/time]]]
#
# Names are 3+ letters or <quoted> ("<+0530>"); offsets are [+-]hh[:mm[:ss]] and
# count WEST of Greenwich, so "CST-8" is UTC+8. Rules are Jn (1..365, Feb 29th
# never counted), n (0..365, counting Feb 29th) or Mm.w.d (month m, week w 1..5
# where 5 means the last, weekday d 0 = Sunday); /time is local time in force
# before the change, default 02:00, and may be negative or beyond 24 h (the
# POSIX.1-2024 extension glibc and newlib accept). A DST name with no rule takes
# the US rule M3.2.0,M11.1.0, as glibc and newlib do.
#
# Local times that do not map to exactly one instant (see docs/time.md):
# - the hour that repeats (clocks go back): the first occurrence, unless
#   `later` is asked for;
# - the hour that does not exist (clocks go forward): the instant of the
#   change, i.e. the first instant at which local time has passed the wall
#   time asked for (as cron does).
#
# All instants are park time: int seconds since 2000-01-01 00:00 UTC.

from civil import civil_from_days, days_from_civil, is_leap, weekday


class TZError(ValueError):
    pass


class TZ:
    """A parsed POSIX TZ string. Offsets are stored as local minus UTC, in seconds."""

    def __init__(self, text):
        # The parser is loaded only while a configuration is read, and forgotten
        # with the configuration's (settings.loads): a TZ in force needs none of it.
        from tzparse import parse

        self.std_name, self.std, self.dst_name, self.dst, self.start, self.end = parse(text)
        self.text = text

    def __repr__(self):
        return "TZ(%r)" % self.text

    @staticmethod
    def _rule_day(rule, year):
        """Days since 2000-01-01 of the day a rule picks in `year`."""
        kind, a, w, d = rule[0], rule[1], rule[2], rule[3]
        jan1 = days_from_civil(year, 1, 1)
        if kind == "J":
            # Jn never counts Feb 29th: day 60 is March 1st in every year.
            return jan1 + a - 1 + (1 if a >= 60 and is_leap(year) else 0)
        if kind == "N":
            return jan1 + a
        first = days_from_civil(year, a, 1)
        # weekday(): Monday = 0; POSIX d: Sunday = 0.
        day = first + (d - (weekday(first) + 1) % 7) % 7 + (w - 1) * 7
        if w == 5:
            nxt = days_from_civil(year + 1, 1, 1) if a == 12 else days_from_civil(year, a + 1, 1)
            while day >= nxt:
                day -= 7
        return day

    def transitions(self, year):
        """(dst_start, dst_end) in park time (UTC) for `year`, or None without DST.

        The start's wall time is in standard time, the end's in DST, as POSIX says."""
        if self.start is None:
            return None
        return self._changes(self.start, self.end, year)

    def _changes(self, start, end, year):
        s = self._rule_day(start, year) * 86400 + start[4] - self.std
        e = self._rule_day(end, year) * 86400 + end[4] - self.dst
        return s, e

    def _in_dst(self, t, year):
        s, e = self._changes(self.start, self.end, year)
        if s < e:
            return s <= t < e
        return not (e <= t < s)  # southern hemisphere: DST spans New Year

    def offset(self, t):
        """Local minus UTC, in seconds, at park time t (UTC)."""
        if self.start is None:
            return self.std
        # The rule year is the local (standard-time) year; transitions are never
        # within a day of New Year in real zones, so that is unambiguous.
        year = _year_of(t + self.std)
        return self.dst if self._in_dst(t, year) else self.std

    def is_dst(self, t):
        return self.start is not None and self.offset(t) == self.dst and self.dst != self.std

    def to_local(self, t):
        """Park time (UTC) -> local wall time, as park-time-shaped seconds."""
        return t + self.offset(t)

    def to_utc(self, local, later=False):
        """Local wall time -> park time (UTC).

        Repeated wall times give the first instant (the last with later=True);
        wall times in a gap give the instant of the change."""
        a = local - self.std
        if self.start is None:
            return a
        b = local - self.dst
        ok_a = self.offset(a) == self.std
        ok_b = self.offset(b) == self.dst
        if ok_a and ok_b:
            return max(a, b) if later else min(a, b)
        if ok_a:
            return a
        if ok_b:
            return b
        # A gap: the change happens between the two readings of the wall time.
        lo, hi = (a, b) if a < b else (b, a)
        year = _year_of(local)
        for y in (year - 1, year, year + 1):
            for c in self._changes(self.start, self.end, y):
                if lo <= c <= hi:
                    return c
        return lo  # unreachable for a consistent rule


def _year_of(t):
    return civil_from_days(t // 86400)[0]
