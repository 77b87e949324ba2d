# Checking a device's configuration (a decoded JSON object) field by field, for
# both apps: every problem is collected as "path: reason" and raised together
# in one ConfigError, so a technician fixes a file in one go. The network
# section is the same for the lamp and the kiosk, so it is read here once.

import json

from configstore import ConfigError  # noqa: F401 - the apps' parsers raise it from here
from topics import broker_url, topic_word


class Checker:
    def __init__(self):
        self.errors = []
        self.warnings = []  # "path: reason": allowed, but with a catch (chips.check)

    def error(self, path, reason):
        self.errors.append("%s: %s" % (path, reason))

    def obj(self, value, path, required=True):
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.error(path, "must be an object")
            return {}
        return value

    def unknown(self, d, path, known):
        for k in d:
            if k not in known:
                self.error(join(path, k), "unknown setting")

    def number(self, d, key, path, lo, hi, default=None):
        p = join(path, key)
        fallback = lo if default is None else default  # only used when an error is raised
        if key not in d:
            if default is None:
                self.error(p, "missing")
            return fallback
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.error(p, "must be a number, not %s" % kind(v))
            return fallback
        if not lo <= v <= hi:
            self.error(p, "%s is outside %s..%s" % (v, lo, hi))
            return fallback
        return v

    def text(self, d, key, path, default=None):
        p = join(path, key)
        if key not in d:
            if default is None:
                self.error(p, "missing")
            return default
        v = d[key]
        if not isinstance(v, str):
            self.error(p, "must be a string, not %s" % kind(v))
            return default
        return v

    def flag(self, d, key, path, default):
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            self.error(join(path, key), "must be true or false, not %s" % kind(v))
            return default
        return v

    def word(self, d, key, path, default):
        """Text that goes into MQTT topics: letters, digits, - and _."""
        v = self.text(d, key, path, default) or ""
        if (v or default) and not topic_word(v):  # empty only where the default is
            self.error(join(path, key), "must be letters, digits, - or _ (it is part of MQTT topics)")
        return v

    def pins(self, raw, defaults, limits=None):
        """The "pins" object: each pin a GPIO number (0..48), a default for each
        (what the chip can do with them: chips.check)."""
        pins = self.obj(raw, "pins", required=False)
        self.unknown(pins, "pins", tuple(defaults))
        out = {}
        for k in defaults:
            hi = limits.get(k, 48) if limits else 48
            out[k] = self.number(pins, k, "pins", 0, hi, defaults[k])
        return out


def decode(text):
    """A configuration file's JSON, or ConfigError saying why it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(["(file): not valid JSON: %s" % e])


def join(path, key):
    return key if not path else path + "." + key


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def network(c, root, cfg):
    """The "network" section into cfg: ssid, wifi_key, ntp_interval,
    broker_tls/host/port, broker_ca, mqtt_user, mqtt_password, keepalive."""
    net = c.obj(root.get("network"), "network", required=False)
    c.unknown(
        net, "network", ("ssid", "key", "ntp_interval", "broker", "ca", "user", "password", "keepalive")
    )
    cfg.ssid = c.text(net, "ssid", "network", "")
    cfg.wifi_key = c.text(net, "key", "network", "")
    if net and not cfg.ssid:
        c.error("network.ssid", "missing")
    cfg.ntp_interval = c.number(net, "ntp_interval", "network", 60, 86400, 3600)
    url = c.text(net, "broker", "network", "")
    cfg.broker_tls, cfg.broker_host, cfg.broker_port = False, "", 1883
    if url:
        try:
            cfg.broker_tls, cfg.broker_host, cfg.broker_port = broker_url(url)
        except ValueError as e:
            c.error("network.broker", str(e))
    # TLS without checking the broker's certificate would let anyone on the way
    # pose as the centre (resolve alarms, install a configuration): no default.
    cfg.broker_ca = c.text(net, "ca", "network", "")
    if cfg.broker_ca and cfg.broker_ca[0] != "/":
        c.error("network.ca", "must be a file on the board, a path starting with /")
    elif cfg.broker_tls and not cfg.broker_ca:
        c.error(
            "network.ca", "needed with mqtts://: the file on the board with the broker's CA certificate (DER)"
        )
    cfg.mqtt_user = c.text(net, "user", "network", "")
    cfg.mqtt_password = c.text(net, "password", "network", "")
    cfg.keepalive = c.number(net, "keepalive", "network", 10, 3600, 60)
