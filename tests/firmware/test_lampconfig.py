# The lamp configuration: the shipped default and every kind of error.
# CPython, float32, MicroPython.

import json

import lampconfig
from fwtest import near, raises, read

SHIPPED = "firmware/lamp/config.json"  # the tests run from the repository root


def good():
    return json.loads(read(SHIPPED))


def errors_of(obj):
    e = raises(lampconfig.ConfigError, lampconfig.parse, obj)
    return e.errors


def test_shipped_configuration_is_valid():
    cfg = lampconfig.parse(good())
    assert cfg.tz.std == 8 * 3600
    near(cfg.lat, 31.03, 1e-5)  # float32 on the ESP32: json gives 31.030000686...
    near(cfg.lon, 121.23, 1e-5)
    assert [s.text for s in cfg.default.steps] == ["sunset", "23:00", "05:00", "sunrise"]
    assert cfg.rules[0].name == "holidays"
    assert cfg.failsafe_level == 100
    assert cfg.pins["pwm"] == 25  # DevKitC defaults
    assert cfg.safe_mode_boots == 5


def test_safe_mode_boots():
    cfg = good()
    cfg["safe_mode_boots"] = 3
    assert lampconfig.parse(cfg).safe_mode_boots == 3
    for bad, why in (
        (0, "safe_mode_boots: 0 is outside 1..100"),
        (101, "safe_mode_boots: 101 is outside 1..100"),
        (2.5, "safe_mode_boots: must be a whole number of boots, not 2.5"),
        ("5", "safe_mode_boots: must be a number, not a string"),
    ):
        cfg["safe_mode_boots"] = bad
        assert errors_of(cfg) == [why]


def test_the_issue_example_error():
    cfg = good()
    cfg["calendar"].insert(
        0, {"name": "x", "weekdays": ["sat"], "program": {"steps": [{"at": "23:00", "level": 1}]}}
    )
    cfg["calendar"][1]["program"]["steps"].append({"at": "sunrise", "level": 0})
    cfg["calendar"][1]["program"]["steps"][2]["at"] = "sunsett"
    errs = errors_of(cfg)
    assert len(errs) == 1
    assert errs[0].startswith('calendar[1].program.steps[2].at: unknown sun event "sunsett"')


def test_every_error_is_listed_with_its_path():
    cfg = good()
    cfg["site"]["lat"] = 95
    cfg["site"]["tz"] = "CET-1CEST,M3.5.0"
    cfg["default"]["steps"][1]["at"] = "25:00"
    cfg["default"]["steps"][2]["level"] = 120
    cfg["default"]["steps"][3]["fade"] = "slow"
    cfg["output"]["min_level"] = 80
    cfg["output"]["max_level"] = 50
    cfg["photocell"]["off_lux"] = 10
    cfg["calendar"][0]["dates"][1] = "05-32"
    cfg["calendar"][0]["weekdays"] = ["funday"]
    cfg["colour"] = "warm"
    errs = errors_of(cfg)
    want = [
        "site.lat: 95 is outside -90..90",
        'site.tz: bad TZ "CET-1CEST,M3.5.0": expected "," before the DST end rule',
        "default.steps[1].at: time '25:00' is out of range",
        "default.steps[2].level: 120 is outside 0..100",
        "default.steps[3].fade: must be a number, not a string",
        "output.min_level: 80 is above max_level 50",
        "photocell.off_lux: must be above on_lux (30) for hysteresis",
        "calendar[0].dates[1]: day 32 is not 1..31",
        'calendar[0].weekdays[0]: unknown weekday "funday"',
        "colour: unknown setting",
    ]
    for w in want:
        assert any(e.startswith(w) for e in errs), (w, errs)
    assert len(errs) == len(want), errs


def test_structural_errors():
    assert errors_of([]) == ["(top): must be an object"]
    assert errors_of({}) == [
        "site: must be an object",
        "default: must be an object",
        "default.steps: missing",
    ]
    cfg = good()
    cfg["default"] = {"steps": []}
    assert errors_of(cfg) == ["default.steps: needs at least one step"]
    cfg = good()
    cfg["default"]["steps"][1] = {"at": "23:00", "offset": 5, "level": 10}
    assert errors_of(cfg) == ["default.steps[1].offset: only sun events take an offset"]
    cfg = good()
    cfg["default"]["steps"][0]["at"] = {"elevation": -3, "direction": "down"}
    assert errors_of(cfg) == ['default.steps[0].at.direction: must be "setting" or "rising"']
    cfg = good()
    cfg["calendar"][0]["dates"] = ["2027-02-11..2027-02-05"]
    assert errors_of(cfg) == ["calendar[0].dates[0]: ends before it starts"]
    cfg = good()
    del cfg["calendar"][0]["dates"]
    assert errors_of(cfg) == ["calendar[0]: needs dates or weekdays"]
    cfg = good()
    cfg["default"]["steps"][0]["level"] = True
    assert errors_of(cfg) == ["default.steps[0].level: must be a number, not true/false"]


def test_elevation_steps_and_offsets():
    cfg = good()
    cfg["default"]["steps"][0] = {
        "at": {"elevation": -3, "direction": "setting"},
        "offset": -15,
        "level": 100,
    }
    parsed = lampconfig.parse(cfg)
    st = parsed.default.steps[0]
    assert st.kind == lampconfig.SUN and st.elev == -3 and st.setting and st.offset == -900
    assert st.text == "elevation -3 setting-15min"


def test_fallback_is_valid_and_lit():
    cfg = lampconfig.parse(lampconfig.FALLBACK)
    assert [s.level for s in cfg.default.steps] == [100]


def test_network_section():
    cfg = good()
    cfg["network"] = {"ssid": "park-iot", "key": "secret", "ntp_interval": 1800}
    parsed = lampconfig.parse(cfg)
    assert (parsed.ssid, parsed.wifi_key, parsed.ntp_interval) == ("park-iot", "secret", 1800)
    assert lampconfig.parse(good()).ssid == ""  # no section: no Wi-Fi
    cfg["network"] = {"key": "secret", "ntp_interval": 5}
    assert errors_of(cfg) == ["network.ssid: missing", "network.ntp_interval: 5 is outside 60..86400"]


def test_tls_needs_the_brokers_ca_on_the_board():
    # TLS without checking the broker's certificate would let anyone on the way
    # pose as the centre: mqtts:// is refused without a CA file.
    cfg = good()
    cfg["network"] = {"ssid": "park-iot", "broker": "mqtts://centre.example"}
    assert errors_of(cfg) == [
        "network.ca: needed with mqtts://: the file on the board with the broker's CA certificate (DER)"
    ]
    cfg["network"]["ca"] = "ca.der"
    assert errors_of(cfg) == ["network.ca: must be a file on the board, a path starting with /"]
    cfg["network"]["ca"] = "/ca.der"
    parsed = lampconfig.parse(cfg)
    assert (parsed.broker_tls, parsed.broker_host, parsed.broker_port) == (True, "centre.example", 8883)
    assert parsed.broker_ca == "/ca.der"
    cfg["network"]["broker"] = "mqtt://centre.example"  # plain MQTT: the CA is not used
    assert not lampconfig.parse(cfg).broker_tls


def test_not_json():
    e = raises(lampconfig.ConfigError, lampconfig.loads, "{bad json")
    assert e.errors[0].startswith("(file): not valid JSON")


def test_the_site_needs_its_place_and_time_zone():
    # Regression (issue 21): a site without lat, lon or tz was accepted, as 0 N 0 E UTC.
    cfg = good()
    cfg["site"] = {"name": "somewhere"}
    assert errors_of(cfg) == ["site.lat: missing", "site.lon: missing", "site.tz: missing"]
    cfg["site"] = {"lat": 31.0, "lon": 121.2, "tz": ""}
    assert errors_of(cfg) == ["site.tz: must not be empty"]


def test_the_energy_section():
    # Without one: hours and cycles are counted, energy is not (no mains voltage).
    assert lampconfig.parse(_without_energy()).energy == (True, 0, 1, 0)
    cfg = lampconfig.parse(dict(good(), energy={"current_sense": False, "rated_watts": 120}))
    assert cfg.energy == (False, 0, 1, 120)

    def error(energy, path, bad):
        # The range's low end as text is the runtime's float (0.01 on float32: 0.0099999...).
        errors = errors_of(dict(good(), energy=energy))
        assert len(errors) == 1 and errors[0].startswith("energy.%s: %s" % (path, bad)), errors

    error({"power_factor": 0.9}, "mains_volts", "missing")
    error({"mains_volts": -230}, "mains_volts", "-230 is outside 1..1000")
    error({"mains_volts": 230, "power_factor": 1.2}, "power_factor", "1.2 is outside 0.0")
    error({"mains_volts": 230, "power_factor": 0}, "power_factor", "0 is outside 0.0")
    error({"current_sense": False}, "rated_watts", "missing")
    error({"current_sense": False, "rated_watts": -60}, "rated_watts", "-60 is outside 0.")
    error({"current_sense": False, "rated_watts": 0}, "rated_watts", "0 is outside 0.")
    assert errors_of(dict(good(), energy={"current_sense": "no", "volts": 230})) == [
        "energy.volts: unknown setting",
        "energy.current_sense: must be true or false, not a string",
        "energy.mains_volts: missing",
    ]


def _without_energy():
    obj = good()
    del obj["energy"]
    return obj


def test_a_zone_too_far_from_the_sites_solar_time_is_refused():
    # Regression (issue 22): 0 E on New Zealand's clock, 12 h from the solar time,
    # was taken, and the lamp burnt from sunset on 31 August 2026 to sunrise on 2
    # September (the engine took that date's sunset and the next morning's sunrise
    # from solar days two apart).
    cfg = good()
    cfg["site"] = {"lat": 0, "lon": 0, "tz": "NZST-12NZDT,M9.5.0,M4.1.0/3"}
    assert errors_of(cfg) == [
        "site.tz: NZST-12NZDT,M9.5.0,M4.1.0/3 is 12 h 00 min from the solar time at longitude 0.00"
        " (NZST is UTC+12:00, solar time there UTC+0:00); the schedule allows at most 4 h:"
        " check the zone, and the longitude's sign (east is positive)"
    ]
    # Songjiang with the longitude's sign lost; the DST offset counts as much as the
    # standard one (CET at 45 W is 4 h 00 min away, CEST 5 h).
    cfg["site"] = {"lat": 31.03, "lon": -121.23, "tz": "CST-8"}
    assert errors_of(cfg)[0].startswith(
        "site.tz: CST-8 is 7 h 55 min from the solar time at longitude -121.23"
    )
    cfg["site"] = {"lat": 40.0, "lon": -45.0, "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}
    assert (
        "is 5 h 00 min from" in errors_of(cfg)[0]
        and "(CEST is UTC+2:00, solar time there UTC-3:00)" in errors_of(cfg)[0]
    )
    # The furthest real parks are taken: western Xinjiang on China's clock (2 h 56 min),
    # Nome on Alaska's summer time (3 h 02 min), Galicia on CEST (2 h 34 min), and
    # Samoa, past the date line (a day ahead: 0 h 27 min).
    for lat, lon, tz in (
        (39.47, 75.99, "CST-8"),
        (64.5, -165.41, "AKST9AKDT,M3.2.0,M11.1.0"),
        (42.88, -8.54, "CET-1CEST,M3.5.0,M10.5.0/3"),
        (-13.83, -171.76, "<+13>-13"),
    ):
        cfg["site"] = {"lat": lat, "lon": lon, "tz": tz}
        assert lampconfig.parse(cfg).tz.text == tz
