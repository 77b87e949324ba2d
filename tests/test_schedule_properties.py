"""The lighting engine against a brute-force oracle, for random configurations,
places, time zones and dates (hypothesis). CPython only.

The oracle is written from the rules in docs/lamp-config.md, independently of
firmware/lamp/schedule.py: it lists every step instant of the nights around,
keeps those inside each night (or opted in to daylight), adds each night's end,
and the level at any second is that of the last step at or before it. The
engine must agree at every minute, its next-change answer must be exact to the
second, and a fresh engine (a boot) must give the oracle's level.
"""

from __future__ import annotations

import bisect
import re

import civil
import lampconfig
import posixtz
import pytest
import sun
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schedule import Engine

ZONES = [
    "CST-8",
    "UTC0",
    "<+0530>-5:30",
    "<-03>3",
    "CET-1CEST,M3.5.0,M10.5.0/3",
    "EST5EDT,M3.2.0,M11.1.0",
    "AEST-10AEDT,M10.1.0,M4.1.0/3",
    "NZST-12NZDT,M9.5.0,M4.1.0/3",
    "<-04>4<-03>,M9.1.6/24,M4.1.6/24",
    "<+13>-13",  # Samoa, Tonga: past the date line, so a day ahead of their solar time
]

# How far a site's clock may be from its mean solar time: 4 h (docs/lamp-config.md,
# "The site's time zone"; lampconfig.MAX_ZONE_OFFSET).
BOUND = 4 * 3600


def _away(tz, lon):
    """The zone's furthest offset (standard time or DST) from the mean solar time
    at `lon`, seconds, modulo a day."""
    return max(abs((off - lon * 240 + 43200) % 86400 - 43200) for off in (tz.std, tz.dst))


@st.composite
def sites(draw, lats):
    """A zone and a longitude where the zone's clock, in standard time and in DST,
    is within the bound of the solar time: what a real park has."""
    tz_text = draw(st.sampled_from(ZONES))
    tz = posixtz.TZ(tz_text)
    mid = (tz.std + tz.dst) / 2 / 240  # the longitude (degrees) the zone is centred on
    half = (BOUND - abs(tz.dst - tz.std) / 2) / 240 - 0.01
    lon = round((mid + draw(st.floats(-half, half)) + 180) % 360 - 180, 2)
    assert _away(tz, lon) <= BOUND
    return {"lat": draw(lats.map(lambda x: round(x, 2))), "lon": lon, "tz": tz_text}


clock_step = st.integers(0, 86399).map(lambda s: {"at": f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"})
sun_step = st.one_of(
    st.sampled_from(sorted(lampconfig.SUN_EVENTS)).map(lambda e: {"at": e}),
    st.tuples(st.integers(-10, 10), st.booleans()).map(
        lambda x: {"at": {"elevation": x[0], "direction": "setting" if x[1] else "rising"}}
    ),
).flatmap(lambda s: st.integers(-180, 180).map(lambda off: {**s, "offset": off}))
step = st.tuples(
    st.one_of(clock_step, sun_step),
    st.integers(0, 100),
    st.integers(0, 120),
    st.sampled_from([False] * 5 + [True]),
).map(lambda x: {**x[0], "level": x[1], "fade": x[2], **({"daylight": True} if x[3] else {})})
program = st.lists(step, min_size=1, max_size=6).map(lambda steps: {"steps": steps})
month_day = st.tuples(st.integers(1, 12), st.integers(1, 28)).map(lambda md: f"{md[0]:02d}-{md[1]:02d}")
rule = st.tuples(
    st.one_of(
        st.none(),
        st.lists(st.tuples(month_day, month_day).map(lambda r: f"{r[0]}..{r[1]}"), min_size=1, max_size=2),
    ),
    st.one_of(
        st.none(),
        st.lists(st.sampled_from(lampconfig.WEEKDAYS), min_size=1, max_size=3, unique=True),
    ),
    program,
).filter(lambda r: r[0] is not None or r[1] is not None)


@st.composite
def configs(draw):
    rules = []
    for i, (dates, weekdays, prog) in enumerate(draw(st.lists(rule, max_size=2))):
        r = {"name": f"rule{i}", "program": prog}
        if dates is not None:
            r["dates"] = dates
        if weekdays is not None:
            r["weekdays"] = weekdays
        rules.append(r)
    min_level = draw(st.integers(0, 30))
    obj = {
        "site": draw(sites(st.floats(-68, 68))),
        "default": draw(program),
        "calendar": rules,
        "output": {"min_level": min_level, "max_level": draw(st.integers(max(min_level, 1), 100))},
    }
    return lampconfig.parse(obj)


class Oracle:
    """Every step instant, by the rules as written, and a bisect."""

    def __init__(self, cfg, first_day, last_day):
        self.cfg = cfg
        items = []
        for day in range(first_day, last_day + 1):
            items.extend(self._day(day))
        items.sort()
        self.times = [x[0] for x in items]
        self.days = [x[1] for x in items]
        self.levels = [x[3] for x in items]

    def _limit(self, level):
        c = self.cfg
        if level <= 0 or level < c.min_level:
            return 0
        return min(level, c.max_level)

    def _program(self, day):
        _, m, d = civil.civil_from_days(day)
        wd = civil.weekday(day)
        for r in self.cfg.rules:
            if r.weekdays and not (r.weekdays >> wd) & 1:
                continue
            if r.dates is not None:
                hit = False
                for a, b in r.dates:
                    lo, hi = (a[1], a[2]), (b[1], b[2])
                    md = (m, d)
                    hit |= (lo <= md <= hi) if lo <= hi else (md >= lo or md <= hi)
                if not hit:
                    continue
            return r.program
        return self.cfg.default

    def _event(self, noon, date_noon, elev, setting):
        """One sun event as the rules say: its instant; `noon` (the program day's
        start) when the sun stays on the side the event leads to; None if never."""
        rise, rs, set_, ss = sun.events(date_noon, self.cfg.lat, self.cfg.lon, (elev,))[1][0]
        t, status = (set_, ss) if setting else (rise, rs)
        if t is not None:
            return t, True
        if (status == sun.ALWAYS_BELOW) == setting:
            return noon, False
        return None, False

    def _day(self, day):
        c = self.cfg
        tz = c.tz
        noon = tz.to_utc(day * 86400 + 43200)
        next_noon = tz.to_utc((day + 1) * 86400 + 43200)
        steps = self._program(day).steps
        # The night by the rules: sunset of the date to sunrise of the next (the
        # whole program day in a polar night, none in a polar day) ...
        dusk, _ = self._event(noon, noon, -0.833, True)
        dawn, _ = self._event(noon, next_noon, -0.833, False)
        if dawn is None:
            dawn = next_noon
        instants = []
        for i, s in enumerate(steps):
            if s.kind == lampconfig.CLOCK:
                date = day if s.clock >= 43200 else day + 1
                instants.append((tz.to_utc(date * 86400 + s.clock), i))
                continue
            t, happens = self._event(noon, noon if s.setting else next_noon, s.elev, s.setting)
            if t is None:
                continue
            if happens:
                t += s.offset
            instants.append((t, i))
            # ... stretched by the program's own sun steps.
            if s.setting and (dusk is None or t < dusk):
                dusk = t
            if not s.setting and t > dawn:
                dawn = t
        kept = sorted((t, i) for t, i in instants if steps[i].day or (dusk is not None and dusk <= t <= dawn))
        out = [(t, day, i, self._limit(steps[i].level)) for t, i in kept]
        # The level the night leaves at its end goes off then, unless opted in.
        before_end = [(t, i) for t, i in kept if t <= dawn]
        if before_end:
            t, i = before_end[-1]
            if self._limit(steps[i].level) > 0 and not steps[i].day:
                out.append((dawn, day, len(steps), 0))
        return out

    def level(self, t):
        """The latest step at or before t, looking back three nights as the rule
        says (docs/lamp-config.md): in a polar season a step that has not come
        for longer no longer counts, and the level is none (0)."""
        day = _program_day(self.cfg, t)
        k = bisect.bisect_right(self.times, t)
        while k:
            k -= 1
            if day - 3 <= self.days[k] <= day + 2:
                return self.levels[k]
        return 0


def _program_day(cfg, t):
    return (cfg.tz.to_local(t) - 43200) // 86400


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=configs(),
    day=st.integers(civil.days_from_civil(2024, 1, 1), civil.days_from_civil(2032, 12, 31)),
)
def test_next_change_agrees_with_the_minute_by_minute_oracle(cfg, day):
    start = cfg.tz.to_utc(day * 86400)
    end = start + 3 * 86400
    oracle = Oracle(cfg, _program_day(cfg, start) - 6, _program_day(cfg, end) + 6)
    engine = Engine(cfg)
    t = start
    while t < end:
        level = engine.target(t)[0]
        assert level == oracle.level(t), civil.format_datetime(t)
        assert level == 0 or cfg.min_level <= level <= cfg.max_level
        nxt = engine.next_change(t)
        assert nxt > t
        # Constant, by the oracle, at every minute until the change and the second before it ...
        m = t + 60
        while m < min(nxt, end):
            assert oracle.level(m) == level, (civil.format_datetime(m), civil.format_datetime(nxt))
            m += 60
        if nxt < end:
            assert oracle.level(nxt - 1) == level
        t = nxt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), t=st.integers(civil.to_seconds(2024, 1, 1), civil.to_seconds(2032, 12, 31)))
def test_boot_at_any_instant_gives_the_oracle_level(cfg, t):
    day = _program_day(cfg, t)
    oracle = Oracle(cfg, day - 6, day + 6)
    level = Engine(cfg).target(t)[0]
    assert level == oracle.level(t)
    assert level == 0 or cfg.min_level <= level <= cfg.max_level


# Programs of the shipped shape: an evening sun event lights the lamp, clock steps
# dim and raise it, a morning sun event switches it off; sometimes a holiday rule
# of the same shape. At places from 66 S to 66 N (polar days and white nights
# start just below 66 degrees).
EVENING = ("sunset", "civil_dusk", "nautical_dusk", "astronomical_dusk")
MORNING = ("sunrise", "civil_dawn", "nautical_dawn", "astronomical_dawn")


@st.composite
def shipped_shape(draw):
    on = {"at": draw(st.sampled_from(EVENING)), "offset": draw(st.integers(-60, 60)), "level": 100}
    off = {"at": draw(st.sampled_from(MORNING)), "offset": draw(st.integers(-60, 60)), "level": 0}
    clocks = draw(st.lists(st.tuples(clock_step, st.integers(0, 100)), max_size=3))
    return {"steps": [on] + [{**c, "level": lvl, "fade": 60} for c, lvl in clocks] + [off]}


@st.composite
def shipped_configs(draw):
    obj = {
        "site": draw(sites(st.floats(-66, 66))),
        "default": draw(shipped_shape()),
        "calendar": [],
        "output": {"min_level": 10},
    }
    if draw(st.booleans()):
        dates = draw(st.tuples(month_day, month_day).map(lambda r: f"{r[0]}..{r[1]}"))
        obj["calendar"] = [{"name": "holidays", "dates": [dates], "program": draw(shipped_shape())}]
    return lampconfig.parse(obj)


def _allowances(cfg, first_day, last_day):
    """[(from, to)]: where the program's own on and off events let the lamp burn
    with the sun up: from its on event to sunset, from sunrise to its off event."""
    out = []
    for day in range(first_day, last_day + 1):
        noon = cfg.tz.to_utc(day * 86400 + 43200)
        next_noon = cfg.tz.to_utc((day + 1) * 86400 + 43200)
        steps = Oracle(cfg, day, day)._program(day).steps
        on, off = steps[0], steps[-1]
        sunset = sun.events(noon, cfg.lat, cfg.lon, (-0.833,))[1][0][2]
        sunrise = sun.events(next_noon, cfg.lat, cfg.lon, (-0.833,))[1][0][0]
        t_on = sun.events(noon, cfg.lat, cfg.lon, (on.elev,))[1][0][2]
        t_off = sun.events(next_noon, cfg.lat, cfg.lon, (off.elev,))[1][0][0]
        if t_on is not None and sunset is not None:
            out.append((t_on + on.offset, sunset))
        if t_off is not None and sunrise is not None:
            out.append((sunrise, t_off + off.offset))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=shipped_configs(),
    day=st.integers(civil.days_from_civil(2024, 1, 1), civil.days_from_civil(2032, 12, 31)),
)
def test_the_lamp_never_burns_in_daylight_beyond_its_own_on_and_off(cfg, day):
    start = cfg.tz.to_utc(day * 86400)
    end = start + 2 * 86400
    first, last = _program_day(cfg, start) - 4, _program_day(cfg, end) + 1
    allowed = _allowances(cfg, first, last)
    oracle = Oracle(cfg, first - 3, last + 3)
    engine = Engine(cfg)
    t = start
    while t < end:
        level = engine.target(t)[0]
        assert level == oracle.level(t), civil.format_datetime(t)
        # Up by a margin (a few seconds of the sun's motion) past the horizon
        # that sunrise and sunset are reckoned at.
        if level and sun.elevation(t, cfg.lat, cfg.lon) > -0.833 + 0.05:
            assert any(a <= t <= b for a, b in allowed), (civil.format_datetime(cfg.tz.to_local(t)), level)
        t += 120


# A site whose zone is further than the bound from its solar time is refused, by the
# parser the device, `parkctl config check` and the centre's configurations all go
# through, naming the zone, the longitude and how far; within it, it is taken.
NIGHT = {"steps": [{"at": "sunset", "level": 100}, {"at": "sunrise", "level": 0}]}


@settings(max_examples=300)
@given(tz_text=st.sampled_from(ZONES), lon=st.floats(-180, 180).map(lambda x: round(x, 2)))
# Issue 22: 0 E on New Zealand's clock (12 h from the solar time) was taken, and
# the lamp burnt from sunset on 31 August 2026 to sunrise on 2 September.
@example(tz_text="NZST-12NZDT,M9.5.0,M4.1.0/3", lon=0.0)
def test_a_zone_too_far_from_the_sites_solar_time_is_refused_with_the_reason(tz_text, lon):
    obj = {"site": {"lat": 0.0, "lon": lon, "tz": tz_text}, "default": NIGHT}
    away = _away(posixtz.TZ(tz_text), lon)
    if away <= BOUND - 60:
        assert lampconfig.parse(obj).tz.text == tz_text
    elif away > BOUND + 60:
        with pytest.raises(lampconfig.ConfigError) as e:
            lampconfig.parse(obj)
        [err] = e.value.errors
        assert err.startswith(f"site.tz: {tz_text} is ") and f"at longitude {lon:.2f} (" in err, err
        assert "at most 4 h" in err and "the longitude's sign" in err
        figure = re.search(r" is (\d+) h (\d\d) min from the solar time", err)
        assert figure, err
        h, m = figure.groups()
        assert abs(int(h) * 60 + int(m) - away / 60) <= 1, (err, away)
