# The lamp's configuration once validated: what lampconfig.parse makes and the
# firmware reads while it runs. Apart from the parser, so that the parser's code
# can leave the heap between configurations (loads, below) while these stay.

import sys

from posixtz import TZ

# The lamp app's files on flash, for main.py and safemode.py alike.
CONFIG = "/lamp.json"  # what the centre or a technician installed
DEFAULT_CONFIG = "/config.json"  # shipped with the app
KEY_FILE = "/cmd.key"  # the device's command key, hex (provisioning writes it)
COUNTER_FILE = "/cmd.ctr"  # the last command counter accepted (docs/security.md)
# Not "/journal": with / on sys.path (the board's cwd) a folder named like a module
# shadows it, and `import journal` would find the folder.
JOURNAL = "/events"
COUNTERS = "/counters"  # burning hours, energy, switch cycles: /counters.0 and .1 (counters.py)

# The configuration's parser and what only it imports (the checker, the pins'
# table, the TZ parser, the topic rules): loaded to parse, forgotten after it.
PARSER = ("lampconfig", "configcheck", "topics", "chips", "tzparse")


def loads(text=None):
    """The configuration in `text` (None: the fallback one), parsed by lampconfig,
    which is loaded for the parse and forgotten after it with what only it
    imports (PARSER): their code is needed only at boot and when a configuration
    arrives (docs/lamp-config.md)."""
    import lampconfig

    try:
        return lampconfig.parse(lampconfig.FALLBACK) if text is None else lampconfig.loads(text)
    finally:
        for name in PARSER:
            sys.modules.pop(name, None)


# Step kinds.
CLOCK = 0
SUN = 1


# The lamp while an alarm is open: full for 700 ms, 20 % for 300 ms, repeated.
DEFAULT_FLASH = [(100, 700), (20, 300)]


class Step:
    __slots__ = ("kind", "clock", "elev", "setting", "offset", "level", "fade", "text", "day")

    def __init__(self, kind, clock, elev, setting, offset, level, fade, text, day=False):
        self.kind = kind  # CLOCK or SUN
        self.clock = clock  # CLOCK: seconds after local midnight
        self.elev = elev  # SUN: elevation, degrees
        self.setting = setting  # SUN: the sun going down (evening) or up (morning)
        self.offset = offset  # seconds, added to the event
        self.level = level  # percent 0..100
        self.fade = fade  # seconds to reach the level
        self.text = text  # how the config wrote "at" (+ offset), for reasons
        self.day = day  # opted in to daylight: never skipped, and its level holds by day


class Program:
    __slots__ = ("name", "steps")

    def __init__(self, name, steps):
        self.name = name
        self.steps = steps


class Rule:
    __slots__ = ("name", "dates", "weekdays", "program")

    def __init__(self, name, dates, weekdays, program):
        self.name = name
        self.dates = dates  # list of (from, to) with (year or 0, month, day); None: any
        self.weekdays = weekdays  # bitmask, bit 0 = Monday; 0: any
        self.program = program


class Config:
    """A validated configuration; `parse` fills every field."""

    warnings = []  # what the parser allowed but warns of (a strapping pin): set (never added to) only if any

    def __init__(self):
        self.name = ""
        self.lat = 0.0
        self.lon = 0.0
        self.tz = TZ("UTC0")
        self.default = Program("default", [])
        self.rules = []
        # (before, after): every step of program day X lies within [noon(X) -
        # before, noon(X) + after] (lampconfig.parse works it out; the engine
        # searches no further).
        self.reach = (int(13 * 3600), int(37 * 3600))
        self.min_level = 0.0
        self.max_level = 100.0
        self.gamma = 1.0
        self.pwm_hz = 1000.0
        self.relay_min_interval = 60.0
        self.pc_on = 30.0
        self.pc_off = 60.0
        self.pc_delay = 120.0
        self.pc_level = 100.0
        self.pc_full_scale = 2000.0
        self.pc_mode = 0  # 0 fail-safe only, 1 assist, 2 control (lampconfig.PHOTOCELL_MODES)
        self.failsafe_level = 100.0
        self.safe_mode_boots = 5
        self.mon_lamp = 1.0
        self.mon_off = 0.05
        self.mon_full_scale = 5.0
        self.mon_warmup = 60.0
        self.mon_confirm = 30.0
        # (current sensed, mains volts, power factor, rated watts): energy from
        # the current at those volts (0: not counted), or without current sense
        # from the duty at the rated watts (docs/lamp-config.md)
        self.energy = (True, 0.0, 1.0, 0.0)  # type: tuple[bool, float, float, float]
        self.pins = {}
        self.ssid = ""  # no Wi-Fi when empty
        self.wifi_key = ""
        self.ntp_interval = 3600.0
        self.site_id = "park"
        self.device = ""  # empty: from the chip's id
        self.broker_host = ""  # empty: no MQTT
        self.broker_port = 1883
        self.broker_tls = False
        self.broker_ca = ""  # with TLS: the CA certificate's file on the board
        self.mqtt_user = ""  # empty: none
        self.mqtt_password = ""
        self.keepalive = 60.0
        self.debounce_ms = 50.0
        self.stuck_s = 30.0
        self.flash = DEFAULT_FLASH
