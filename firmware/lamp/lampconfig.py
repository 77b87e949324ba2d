# The lamp controller's configuration: validation, defaults, atomic save, last good.
#
# A configuration is a JSON object (docs/lamp-config.md). `parse(obj)` returns a
# settings.Config or raises ConfigError listing every problem found, each as
# "path: reason" (`calendar[1].program.steps[2].at: unknown sun event "sunsett"`).
# configstore.Store keeps the configuration file.

import json

from civil import check_date, parse_clock
from posixtz import TZ, TZError
from configcheck import Checker, ConfigError, decode, join, network
from configcheck import kind as _kind
from settings import CLOCK, DEFAULT_FLASH, SUN, Config, Program, Rule, Step  # noqa: F401 - re-exported

# Named sun events: (elevation in degrees, True when the sun is going down).
SUN_EVENTS = {
    "sunset": (-0.833, True),
    "sunrise": (-0.833, False),
    "civil_dusk": (-6.0, True),
    "civil_dawn": (-6.0, False),
    "nautical_dusk": (-12.0, True),
    "nautical_dawn": (-12.0, False),
    "astronomical_dusk": (-18.0, True),
    "astronomical_dawn": (-18.0, False),
}

# What the photocell does while the time is valid (docs/lamp-config.md): nothing
# (it is the fail-safe when the time is not), light a dark day, or switch on and off.
PHOTOCELL_MODES = ("failsafe", "assist", "control")

# How far a site's clock may be from its mean solar time (_zone_fits says why).
MAX_ZONE_OFFSET = 4 * 3600

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_PINS = {
    # ESP32 DevKitC (docs/lamp-config.md has the wiring).
    "pwm": 25,
    "relay": 26,
    "relay_active": 0,  # coil off keeps the normally-closed contact closed: lit
    "current_adc": 34,
    "light_adc": 35,
    "i2c_sda": 21,
    "i2c_scl": 22,
    "button": 27,
    "button_led": 2,
}


# Used only when no configuration file can be read at all: full light all the
# time (by day too: opted in), DevKitC pins. The lamp fails lit rather than dark.
FALLBACK = {
    "site": {"name": "no configuration", "lat": 0.0, "lon": 0.0, "tz": "UTC0"},
    "default": {"steps": [{"at": "00:00", "level": 100, "daylight": True}]},
}


def _step(c, raw, path):
    d = c.obj(raw, path)
    c.unknown(d, path, ("at", "offset", "level", "fade", "daylight"))
    at = d.get("at")
    p = join(path, "at")
    kind, clock, elev, setting, text = CLOCK, 0, 0.0, False, ""
    if at is None:
        c.error(p, "missing")
    elif isinstance(at, str):
        text = at
        if at in SUN_EVENTS:
            kind = SUN
            elev, setting = SUN_EVENTS[at]
        elif ":" in at:
            try:
                clock = parse_clock(at)
            except ValueError as e:
                c.error(p, str(e))
        else:
            c.error(
                p,
                'unknown sun event "%s" (one of %s, or HH:MM[:SS])' % (at, ", ".join(sorted(SUN_EVENTS))),
            )
    elif isinstance(at, dict):
        kind = SUN
        c.unknown(at, p, ("elevation", "direction"))
        elev = c.number(at, "elevation", p, -20.0, 20.0, 0.0)
        direction = c.text(at, "direction", p, "")
        if direction not in ("setting", "rising"):
            c.error(join(p, "direction"), 'must be "setting" or "rising"')
        setting = direction == "setting"
        text = "elevation %s %s" % (elev, direction)
    else:
        c.error(p, "must be HH:MM[:SS], a sun event or {elevation, direction}, not %s" % _kind(at))
    offset = c.number(d, "offset", path, -720, 720, 0)
    if offset and kind == CLOCK:
        c.error(join(path, "offset"), "only sun events take an offset")
    level = c.number(d, "level", path, 0, 100)
    fade = c.number(d, "fade", path, 0, 3600, 0)
    day = c.flag(d, "daylight", path, False)
    off_s = int(round(offset * 60))
    if off_s:
        text += "%+dmin" % (off_s // 60) if off_s % 60 == 0 else "%+ds" % off_s
    return Step(kind, clock, elev, setting, off_s, level, int(fade), text, day)


def _program(c, raw, path, name):
    d = c.obj(raw, path)
    c.unknown(d, path, ("steps",))
    steps = d.get("steps")
    p = join(path, "steps")
    out = []
    if not isinstance(steps, list):
        c.error(p, "missing" if steps is None else "must be a list")
    elif not steps:
        c.error(p, "needs at least one step")
    elif len(steps) > 24:
        c.error(p, "at most 24 steps")
    else:
        for i, s in enumerate(steps):
            out.append(_step(c, s, "%s[%d]" % (p, i)))
    return Program(name, out)


def _month_day(text):
    # "MM-DD" -> (0, m, d); "YYYY-MM-DD" -> (y, m, d).
    parts = text.split("-")
    if len(parts) == 2 and len(parts[0]) == 2 and len(parts[1]) == 2:
        y, m, d = 0, parts[0], parts[1]
    elif len(parts) == 3 and len(parts[0]) == 4 and len(parts[1]) == 2 and len(parts[2]) == 2:
        y, m, d = parts[0], parts[1], parts[2]
    else:
        raise ValueError('"%s" is not MM-DD or YYYY-MM-DD' % text)
    try:
        y, m, d = int(y), int(m), int(d)
    except ValueError:
        raise ValueError('"%s" is not MM-DD or YYYY-MM-DD' % text)
    check_date(y or 2000, m, d)  # 2000 is a leap year: "02-29" is allowed
    return (y, m, d)


def _rule(c, raw, path):
    d = c.obj(raw, path)
    c.unknown(d, path, ("name", "dates", "weekdays", "program"))
    name = c.text(d, "name", path, "") or path
    dates = None
    if "dates" in d:
        p = join(path, "dates")
        if not isinstance(d["dates"], list) or not d["dates"]:
            c.error(p, "must be a non-empty list")
        else:
            dates = []
            for i, item in enumerate(d["dates"]):
                pi = "%s[%d]" % (p, i)
                if not isinstance(item, str):
                    c.error(pi, "must be a string")
                    continue
                ends = item.split("..")
                try:
                    if len(ends) > 2:
                        raise ValueError("one range is FROM..TO")
                    a = _month_day(ends[0])
                    b = _month_day(ends[-1])
                    if (a[0] == 0) != (b[0] == 0):
                        raise ValueError("both ends need a year, or neither")
                    if a[0] and a > b:
                        raise ValueError("ends before it starts")
                    dates.append((a, b))
                except ValueError as e:
                    c.error(pi, str(e))
    weekdays = 0
    if "weekdays" in d:
        p = join(path, "weekdays")
        if not isinstance(d["weekdays"], list) or not d["weekdays"]:
            c.error(p, "must be a non-empty list")
        else:
            for i, w in enumerate(d["weekdays"]):
                if w not in WEEKDAYS:
                    c.error(
                        "%s[%d]" % (p, i),
                        "unknown weekday %s (one of %s)" % (json.dumps(w), ", ".join(WEEKDAYS)),
                    )
                else:
                    weekdays |= 1 << WEEKDAYS.index(w)
    if dates is None and not weekdays and "dates" not in d and "weekdays" not in d:
        c.error(path, "needs dates or weekdays")
    program = _program(c, d.get("program"), join(path, "program"), name)
    return Rule(name, dates, weekdays, program)


def parse(obj, chip=False):
    """A validated Config from a decoded JSON object; ConfigError lists every
    problem. chip: the pins checked against what the chip can do with them
    (chips.py), as loads() does for every file and every configuration sent;
    without it, the "chip" setting is not looked at (the engine's own tests
    and the simulator's world build configurations this way)."""
    c = Checker()
    root = c.obj(obj, "(top)")
    if c.errors:
        raise ConfigError(c.errors)
    c.unknown(
        root,
        "",
        (
            "site",
            "default",
            "calendar",
            "output",
            "photocell",
            "failsafe_level",
            "safe_mode_boots",
            "monitor",
            "energy",
            "pins",
            "network",
            "device",
            "alarm",
            "chip",
        ),
    )
    cfg = Config()
    site = c.obj(root.get("site"), "site")
    # The place and its time zone decide every night: required (only said
    # missing when there is a site object to miss them from).
    given = isinstance(root.get("site"), dict)
    c.unknown(site, "site", ("id", "name", "lat", "lon", "tz"))
    cfg.site_id = c.word(site, "id", "site", "park")
    cfg.device = c.word(root, "device", "", "")
    cfg.name = c.text(site, "name", "site", "")
    cfg.lat = c.number(site, "lat", "site", -90, 90, None if given else 0.0)
    n = len(c.errors)
    cfg.lon = c.number(site, "lon", "site", -180, 180, None if given else 0.0)
    lon_ok = len(c.errors) == n
    tz_text = c.text(site, "tz", "site", None if given else "")
    if tz_text:
        try:
            cfg.tz = TZ(tz_text)
            if lon_ok:
                _zone_fits(c, cfg.tz, cfg.lon)
        except TZError as e:
            c.error("site.tz", str(e))
    elif "tz" in site:
        c.error("site.tz", "must not be empty")
    cfg.default = _program(c, root.get("default"), "default", "default")
    cfg.rules = []
    cal = root.get("calendar", [])
    if not isinstance(cal, list):
        c.error("calendar", "must be a list")
    elif len(cal) > 32:
        c.error("calendar", "at most 32 rules")
    else:
        for i, r in enumerate(cal):
            cfg.rules.append(_rule(c, r, "calendar[%d]" % i))
    out = c.obj(root.get("output"), "output", required=False)
    c.unknown(out, "output", ("min_level", "max_level", "curve", "gamma", "pwm_hz", "relay_min_interval"))
    cfg.min_level = c.number(out, "min_level", "output", 0, 100, 0)
    cfg.max_level = c.number(out, "max_level", "output", 1, 100, 100)
    if cfg.min_level > cfg.max_level:
        c.error("output.min_level", "%s is above max_level %s" % (cfg.min_level, cfg.max_level))
    curve = c.text(out, "curve", "output", "linear")
    if curve not in ("linear", "gamma"):
        c.error("output.curve", 'must be "linear" or "gamma"')
    cfg.gamma = c.number(out, "gamma", "output", 1.0, 4.0, 2.2) if curve == "gamma" else 1.0
    cfg.pwm_hz = c.number(out, "pwm_hz", "output", 100, 40000, 1000)
    cfg.relay_min_interval = c.number(out, "relay_min_interval", "output", 0, 3600, 60)
    pc = c.obj(root.get("photocell"), "photocell", required=False)
    c.unknown(pc, "photocell", ("mode", "on_lux", "off_lux", "delay", "level", "full_scale_lux"))
    mode = c.text(pc, "mode", "photocell", "failsafe")
    if mode in PHOTOCELL_MODES:
        cfg.pc_mode = PHOTOCELL_MODES.index(mode)
    else:
        c.error("photocell.mode", "must be one of %s" % ", ".join(PHOTOCELL_MODES))
    cfg.pc_on = c.number(pc, "on_lux", "photocell", 0, 100000, 30)
    cfg.pc_off = c.number(pc, "off_lux", "photocell", 0, 100000, 60)
    if cfg.pc_off <= cfg.pc_on:
        c.error("photocell.off_lux", "must be above on_lux (%s) for hysteresis" % cfg.pc_on)
    cfg.pc_delay = c.number(pc, "delay", "photocell", 0, 3600, 120)
    cfg.pc_level = c.number(pc, "level", "photocell", 0, 100, 100)
    cfg.pc_full_scale = c.number(pc, "full_scale_lux", "photocell", 1, 200000, 2000)
    cfg.failsafe_level = c.number(root, "failsafe_level", "", 1, 100, 100)
    # Boots in a row that never become healthy before safe mode (bootcount.py).
    n = c.number(root, "safe_mode_boots", "", 1, 100, 5)
    if n != int(n):
        c.error("safe_mode_boots", "must be a whole number of boots, not %s" % n)
    cfg.safe_mode_boots = int(n)
    mon = c.obj(root.get("monitor"), "monitor", required=False)
    c.unknown(mon, "monitor", ("lamp_amps", "off_amps", "full_scale_amps", "warmup", "confirm"))
    cfg.mon_lamp = c.number(mon, "lamp_amps", "monitor", 0.01, 100, 1.0)
    cfg.mon_off = c.number(mon, "off_amps", "monitor", 0, 100, 0.05)
    if cfg.mon_off >= cfg.mon_lamp:
        c.error("monitor.off_amps", "must be below lamp_amps (%s)" % cfg.mon_lamp)
    cfg.mon_full_scale = c.number(mon, "full_scale_amps", "monitor", 0.1, 1000, 5.0)
    cfg.mon_warmup = c.number(mon, "warmup", "monitor", 0, 3600, 60)
    cfg.mon_confirm = c.number(mon, "confirm", "monitor", 1, 3600, 30)
    en = c.obj(root.get("energy"), "energy", required=False)
    c.unknown(en, "energy", ("current_sense", "mains_volts", "power_factor", "rated_watts"))
    sense = c.flag(en, "current_sense", "energy", True)
    # Once there is an energy section: with current sense the mains voltage is
    # required, without it the lamp's rated power (settings.Config.energy).
    cfg.energy = (
        sense,
        c.number(en, "mains_volts", "energy", 1, 1000, None if en and sense else 0),
        c.number(en, "power_factor", "energy", 0.01, 1, 1),
        c.number(en, "rated_watts", "energy", 0.1, 10000, 0 if sense else None),
    )
    network(c, root, cfg)
    al = c.obj(root.get("alarm"), "alarm", required=False)
    c.unknown(al, "alarm", ("debounce_ms", "stuck_s", "flash"))
    cfg.debounce_ms = c.number(al, "debounce_ms", "alarm", 5, 1000, 50)
    cfg.stuck_s = c.number(al, "stuck_s", "alarm", 1, 3600, 30)
    cfg.flash = _flash(c, al["flash"]) if al and "flash" in al else DEFAULT_FLASH
    cfg.pins = c.pins(root.get("pins"), DEFAULT_PINS, {"relay_active": 1})
    if chip:
        import chips  # the pins' table: forgotten with the parser (settings.loads)

        # How each pin is used (chips.parse: 0 driven, 2 read with a pull-up,
        # 3 analog); the lamp's chip is an ESP32-WROOM-32.
        roles = {"pwm": 0, "relay": 0, "current_adc": 3, "light_adc": 3, "i2c_sda": 0, "i2c_scl": 0}
        roles.update(button=2, button_led=0)
        chips.parse(c, root, cfg.pins, roles, "esp32")
    if c.errors:
        raise ConfigError(c.errors)
    if c.warnings:
        cfg.warnings = c.warnings
    cfg.reach = _reach(cfg)
    return cfg


def _hm(seconds):
    sign = "-" if seconds < 0 else "+"
    m = (abs(seconds) + 30) // 60
    return "%s%d:%02d" % (sign, m // 60, m % 60)


def _zone_fits(c, tz, lon):
    """The zone's clock, in standard time and in DST, must be within
    MAX_ZONE_OFFSET of the site's mean solar time, modulo a day (so a zone past
    the date line, Samoa's UTC+13 at 172 W, is 0.5 h away). docs/lamp-config.md,
    "The site's time zone", says why: the engine takes a date's sun events from
    the solar day whose noon is nearest local noon; twelve hours away that is two
    solar days at once, the equation of time picks one or the other from one date
    to the next, and a night takes its sunset and its sunrise from solar days two
    apart (lit through a whole day) or from the same one (a night lost). No real
    park is past about 3 h 10 min (western Xinjiang on China's UTC+8): further
    than 4 h is a mistake in the zone or in the longitude's sign."""
    solar = int(round(lon * 240))  # local mean solar time minus UTC, seconds
    worst = None
    for name, off in ((tz.std_name, tz.std), (tz.dst_name, tz.dst)):
        away = (off - solar + 43200) % 86400 - 43200
        if name and abs(away) > MAX_ZONE_OFFSET and (worst is None or abs(away) > worst[0]):
            worst = (abs(away), name, off)
    if worst is not None:
        away, name, off = worst
        away = (away + 30) // 60
        c.error(
            "site.tz",
            "%s is %d h %02d min from the solar time at longitude %.2f (%s is UTC%s, solar time there UTC%s);"
            " the schedule allows at most %d h: check the zone, and the longitude's sign (east is positive)"
            % (tz.text, away // 60, away % 60, lon, name, _hm(off), _hm(solar), MAX_ZONE_OFFSET // 3600),
        )


def _reach(cfg):
    """(before, after) for the engine (settings.Config.reach). A setting event is
    within half a day after a transit that is within half a day of local noon; a
    rising one within a day before the next noon; clock times within the program
    day; then the offsets, and an hour for a clock change."""
    most = 0
    for p in [cfg.default] + [rule.program for rule in cfg.rules]:
        for st in p.steps:
            most = max(most, abs(st.offset))
    return (12 * 3600 + most + 3600, 36 * 3600 + most + 3600)


def _flash(c, raw):
    path = "alarm.flash"
    if not isinstance(raw, list) or not 1 <= len(raw) <= 8:
        c.error(path, "must be a list of 1 to 8 [level, ms] pairs")
        return DEFAULT_FLASH
    out = []
    for i, p in enumerate(raw):
        ok = isinstance(p, list) and len(p) == 2
        ok = ok and all(isinstance(x, int) and not isinstance(x, bool) for x in p)
        if not ok or not (0 <= p[0] <= 100 and 50 <= p[1] <= 10000):
            c.error("%s[%d]" % (path, i), "must be [level 0..100, ms 50..10000]")
            return DEFAULT_FLASH
        out.append((p[0], p[1]))
    return out


def loads(text):
    return parse(decode(text), True)
