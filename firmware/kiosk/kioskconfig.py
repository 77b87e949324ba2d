# The check-in kiosk's configuration (docs/kiosk-config.md): validated field by
# field as the lamp's is; a bad file names every problem and the last good one
# stays (configstore.Store).

from configcheck import Checker, ConfigError, decode, network
from posixtz import TZ, TZError

DEFAULT_PINS = {
    # ESP32-S3 DevKitC-1 with an ST7789 240x320 on SPI2 and the face module on UART1.
    "face_tx": 17,
    "face_rx": 18,
    "lcd_sck": 12,
    "lcd_mosi": 11,
    "lcd_dc": 9,
    "lcd_cs": 10,
    "lcd_rst": 14,
    "lcd_bl": 13,
    "buzzer": 21,
}
# How each pin is used (chips.parse: 0 driven, 1 read).
PIN_ROLES = {
    "face_tx": 0,
    "face_rx": 1,
    "lcd_sck": 0,
    "lcd_mosi": 0,
    "lcd_dc": 0,
    "lcd_cs": 0,
    "lcd_rst": 0,
    "lcd_bl": 0,
    "buzzer": 0,
}

# Used only when no configuration file can be read at all: the screen works,
# no network, check-ins kept on flash.
FALLBACK = {"site": {"name": "no configuration", "tz": "UTC0"}}


class Config:
    def __init__(self):
        self.site_id = "park"
        self.name = ""
        self.tz = TZ("UTC0")
        self.device = ""
        self.threshold = 0.8
        self.window_s = 300
        self.liveness = True
        self.retention_days = 14
        self.show_s = 3
        self.face_baud = 115200
        self.face_crc = False
        self.pins = {}
        self.warnings = []  # what the parser allowed but warns of


def parse(obj):
    """A validated Config from a decoded JSON object; ConfigError lists every problem."""
    c = Checker()
    root = c.obj(obj, "(top)")
    if c.errors:
        raise ConfigError(c.errors)
    c.unknown(root, "", ("site", "device", "network", "checkin", "face", "pins", "chip"))
    cfg = Config()
    site = c.obj(root.get("site"), "site")
    c.unknown(site, "site", ("id", "name", "tz"))
    cfg.site_id = c.word(site, "id", "site", "park")
    cfg.name = c.text(site, "name", "site", "") or ""
    tz_text = c.text(site, "tz", "site")
    if tz_text:
        try:
            cfg.tz = TZ(tz_text)
        except TZError as e:
            c.error("site.tz", str(e))
    elif tz_text is not None:
        c.error("site.tz", "must not be empty")
    cfg.device = c.word(root, "device", "", "")
    network(c, root, cfg)
    ck = c.obj(root.get("checkin"), "checkin", required=False)
    c.unknown(ck, "checkin", ("threshold", "window_s", "liveness", "retention_days", "show_s"))
    cfg.threshold = c.number(ck, "threshold", "checkin", 0.0, 1.0, 0.8)
    cfg.window_s = int(c.number(ck, "window_s", "checkin", 0, 86400, 300))
    cfg.liveness = c.flag(ck, "liveness", "checkin", True)
    cfg.retention_days = int(c.number(ck, "retention_days", "checkin", 1, 365, 14))
    cfg.show_s = int(c.number(ck, "show_s", "checkin", 1, 60, 3))
    face = c.obj(root.get("face"), "face", required=False)
    c.unknown(face, "face", ("baud", "crc"))
    cfg.face_baud = int(c.number(face, "baud", "face", 9600, 3000000, 115200))
    cfg.face_crc = c.flag(face, "crc", "face", False)
    cfg.pins = c.pins(root.get("pins"), DEFAULT_PINS)
    import chips  # the pins' table: forgotten with the parser (the lamp's settings.loads)

    chips.parse(c, root, cfg.pins, PIN_ROLES, "esp32s3")
    if c.errors:
        raise ConfigError(c.errors)
    cfg.warnings = c.warnings
    return cfg


def loads(text):
    return parse(decode(text))
