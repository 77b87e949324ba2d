"""Configurations a chip can run (issue 24): `parkctl config check`, the device's
own validation (the same parsers in the MicroPython interpreter) and the
simulator's machine.Pin/ADC agree on which pins each chip refuses for each use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parkctl.build import deployed_folders
from parkctl.runtime import FIRMWARE_PATHS, config_errors, micropython_binary, micropython_env
from test_cli_sun import parkctl

ROOT = Path(__file__).resolve().parents[1]
LAMP_CONFIG = json.loads((ROOT / "firmware" / "lamp" / "config.json").read_text())
KIOSK_CONFIG = json.loads((ROOT / "firmware" / "kiosk" / "config.json").read_text())
LAMP_ROLES = {
    "pwm": "out",
    "relay": "out",
    "current_adc": "adc",
    "light_adc": "adc",
    "i2c_sda": "out",
    "i2c_scl": "out",
    "button": "pull",
    "button_led": "out",
}
KIOSK_ROLES = {k: "in" if k == "face_rx" else "out" for k in ("face_tx", "face_rx", "lcd_sck", "lcd_mosi")}
CHIPS = ("esp32", "esp32s3")
# Lamp pins each chip accepts (the lamp's defaults are an ESP32 DevKitC's).
GOOD_PINS = {
    "esp32": {},
    "esp32s3": {
        "pwm": 38,
        "relay": 39,
        "current_adc": 1,
        "light_adc": 2,
        "i2c_sda": 8,
        "i2c_scl": 9,
        "button": 40,
        "button_led": 41,
    },
}

# The device's parser in the MicroPython interpreter, one configuration a line
# on stdin, its errors (or its warnings) a JSON line back.
_DEVICE = """
import sys, json
import lampconfig, kioskconfig
from configcheck import ConfigError
while True:
    line = sys.stdin.readline()
    if not line:
        break
    app, text = json.loads(line)
    try:
        cfg = (lampconfig if app == "lamp" else kioskconfig).loads(text)
        print(json.dumps({"ok": True, "warnings": list(cfg.warnings)}))
    except ConfigError as e:
        print(json.dumps({"ok": False, "errors": e.errors}))
"""


class Device:
    """The firmware's parsers running in MicroPython, asked one configuration at a time."""

    def __init__(self, tmp: Path) -> None:
        # The firmware as a board loads it (.mpy): compiled from source in the
        # 100k heap, what fitted depended on the checkout's path.
        path = deployed_folders([*FIRMWARE_PATHS, ROOT / "firmware" / "kiosk"], tmp)
        env = dict(micropython_env(), MICROPYPATH=":".join(str(p) for p in path))
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=100k", "-c", _DEVICE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    def check(self, app: str, config: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([app, json.dumps(config)]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the MicroPython interpreter stopped"
        if not line.startswith("{"):
            # Not an answer: what the interpreter said instead (a traceback), whole.
            self.proc.stdin.close()
            raise AssertionError(f"the device's parser failed on {config}:\n{line}{self.proc.stdout.read()}")
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    d = Device(tmp_path_factory.mktemp("mpy"))
    yield d
    d.close()


def _same(r: dict) -> dict:
    # MicroPython's dicts have no order: the pins are checked in another one.
    return {k: sorted(v) if isinstance(v, list) else v for k, v in r.items()}


def _host(app: str, config: dict) -> dict:
    """What `parkctl config check` and `config push` decide (the parser in CPython)."""
    from configcheck import ConfigError

    from sim.scenario import config_parser

    try:
        cfg = config_parser(app)(json.dumps(config))
    except ConfigError as e:
        return {"ok": False, "errors": e.errors}
    return {"ok": True, "warnings": list(cfg.warnings)}


def _with(base: dict, chip: str | None, pins: dict) -> dict:
    c = json.loads(json.dumps(base))
    if chip is not None:
        c["chip"] = chip
    c["pins"] = pins
    return c


@settings(max_examples=300)
@given(
    app=st.sampled_from(["lamp", "kiosk"]),
    chip=st.sampled_from([None, *CHIPS]),
    pins=st.data(),
)
def test_config_check_and_the_devices_validation_agree(device, app, chip, pins):
    roles = LAMP_ROLES if app == "lamp" else KIOSK_ROLES
    chosen = pins.draw(st.dictionaries(st.sampled_from(sorted(roles)), st.integers(0, 48), max_size=4))
    config = _with(LAMP_CONFIG if app == "lamp" else KIOSK_CONFIG, chip, chosen)
    assert _same(_host(app, config)) == _same(device.check(app, config))


def test_every_pin_of_every_chip_for_every_use(device):
    # Exhaustively, one pin at a time: refused with its path, its GPIO and why,
    # or accepted (with a warning for a strapping pin), the same on both sides.
    for chip in CHIPS:
        for key in LAMP_ROLES:
            for n in range(49):
                config = _with(LAMP_CONFIG, chip, dict(GOOD_PINS[chip], **{key: n}))
                host = _host("lamp", config)
                assert _same(host) == _same(device.check("lamp", config)), (chip, key, n)
                if host["ok"]:
                    continue
                assert len(host["errors"]) == 1 and f"GPIO {n}" in host["errors"][0], (chip, key, n, host)
                assert host["errors"][0].startswith(f"pins.{key}: ")


def test_the_shipped_configurations_pass_and_gpio_2_is_a_warning():
    lamp = _host("lamp", LAMP_CONFIG)
    assert lamp["ok"]
    assert lamp["warnings"] == [
        "pins.button_led: GPIO 2 is a strapping pin (read at reset to choose the boot mode): what is "
        "wired to it must not pull it the wrong way at power-on"
    ]
    assert _host("kiosk", KIOSK_CONFIG) == {"ok": True, "warnings": []}


def test_each_chips_facts():
    def errors(chip, **pins):
        return config_errors("lamp", _with(LAMP_CONFIG, chip, dict(GOOD_PINS[chip], **pins)))

    # ESP32: flash pins 6-11, input-only 34-39, analog inputs on ADC1 only.
    assert errors("esp32", relay=6) == [
        "pins.relay: GPIO 6 is wired to the module's flash/PSRAM: using it stops the chip"
    ]
    assert errors("esp32", pwm=34) == ["pins.pwm: GPIO 34 is input only: it cannot drive an output"]
    assert errors("esp32", button=36) == [
        "pins.button: GPIO 36 has no internal pull-up: the input would float"
    ]
    assert errors("esp32", current_adc=4) == [
        "pins.current_adc: GPIO 4 is on ADC2, which stops working while Wi-Fi is on; use an ADC1 pin (32-39)"
    ]
    assert errors("esp32", light_adc=32, current_adc=39) == []
    assert errors("esp32", relay=24) == ["pins.relay: the ESP32 has no GPIO 24"]
    # ESP32-S3: ADC1 is GPIO 1-10, ADC2 11-20; 26-37 the flash and octal PSRAM;
    # no input-only pins; 22-25 do not exist.
    assert errors("esp32s3", current_adc=5, light_adc=10) == []
    assert errors("esp32s3", current_adc=11)[0].endswith("use an ADC1 pin (1-10)")
    assert errors("esp32s3", current_adc=34) == [
        "pins.current_adc: GPIO 34 is wired to the module's flash/PSRAM: using it stops the chip"
    ]
    assert errors("esp32s3", relay=23) == ["pins.relay: the ESP32-S3 has no GPIO 23"]
    assert errors("esp32s3", pwm=46, relay=21, button=45) == []
    assert config_errors("lamp", dict(LAMP_CONFIG, chip="esp32s3x")) == [
        "chip: must be one of esp32, esp32s3"
    ]


# --- the simulator's machine ---------------------------------------------------


def _machine(tmp_path: Path, chip: str):
    """sim/vesp32's machine and network on a virtual board with `chip`."""
    import socket

    from sim import cpython

    image = tmp_path / f"flash-{chip}.img"
    if not image.exists():
        cpython.make_image(image, {"/hello.txt": b"hi"})
    modules = cpython.ModuleSystem(console=lambda line: None)
    fs = cpython.LittleFsVfs(image)
    modules.fs = fs
    hub = modules.load("_hub", as_firmware=False)
    hub.__dict__.update(net=socket)
    world_mod = modules.load("world", as_firmware=False)
    world = world_mod.World({"start": 0, "end": 10**6, "config": LAMP_CONFIG}, lambda *a: None)
    board = hub.Board(world, fs, b"\x01\x02\x03\x04\x05\x06", chip)
    world.board = board
    hub.__dict__["board"] = board
    machine = modules.load("machine", as_firmware=False)
    network = modules.load("network", as_firmware=False)
    return hub, machine, network


def _sim_refuses(hub, machine, network, n: int, role: str) -> type | None:
    """The exception the simulated chip raises when the firmware uses GPIO n
    that way (the board's own reset counts: the chip panics), or None."""
    try:
        if role == "adc":
            network.WLAN(network.STA_IF).active(True)
            machine.ADC(machine.Pin(n), atten=machine.ADC.ATTN_11DB).read_u16()
        else:
            machine.PWM(machine.Pin(n), freq=1000, duty_u16=0)
            machine.Pin(n, machine.Pin.OUT, value=0)
    except (ValueError, OSError) as e:
        return type(e)
    except hub.Reset:
        return hub.Reset
    return None


def _refused(chip: str, n: int, role: str) -> str | None:
    """Why the lamp's validation refuses GPIO n for an output (the relay) or an
    analog input (the current sense) on `chip`, or None."""
    key = "relay" if role == "out" else "current_adc"
    errors = config_errors("lamp", _with(LAMP_CONFIG, chip, dict(GOOD_PINS[chip], **{key: n})))
    return "; ".join(errors) or None


@pytest.mark.parametrize("chip", CHIPS)
def test_the_simulated_chip_refuses_what_validation_refuses(tmp_path, chip):
    import chips

    hub, machine, network = _machine(tmp_path, chip)
    for role in ("out", "adc"):
        for n in range(49):
            why = _refused(chip, n, role)
            refused = _sim_refuses(hub, machine, network, n, role)
            if chip == "esp32" and n == 20 and role == "out":
                # MicroPython's ESP32 port offers GPIO 20 (the PICO-V3 package has
                # it); the lamp's module has no pad for it: nothing is refused,
                # and nothing is driven. Validation refuses it all the same.
                assert why and refused is None
                continue
            assert (why is None) == (refused is None), (chip, n, role, why, refused)
            if why is None:
                continue
            # The exception types of MicroPython's esp32 port.
            k = chips.pins[chip][0][n] if n < len(chips.pins[chip][0]) else "."
            if k == "f" and chip == "esp32" and role == "out":
                assert refused is hub.Reset  # the flash's pin taken: a panic
            elif role == "adc" and k == "b":
                assert refused is OSError  # ADC2 while Wi-Fi runs: ESP_ERR_TIMEOUT
            elif role == "out" and k == "i":
                assert refused is OSError  # the PWM (LEDC) driver's ESP_ERR_INVALID_ARG
            else:
                assert refused is ValueError, (chip, n, role)  # "invalid pin"


def test_the_simulated_esp32_raises_micropythons_errors(tmp_path):
    _, machine, network = _machine(tmp_path, "esp32")
    with pytest.raises(ValueError, match=r"^invalid pin$"):
        machine.Pin(45)
    with pytest.raises(ValueError, match=r"^pin can only be input$"):
        machine.Pin(34, machine.Pin.OUT)
    with pytest.raises(ValueError, match=r"^invalid pin$"):
        machine.ADC(machine.Pin(5))
    adc2 = machine.ADC(machine.Pin(4))
    adc2.read_u16()  # Wi-Fi off: ADC2 works
    network.WLAN(network.STA_IF).active(True)
    with pytest.raises(OSError) as e:
        adc2.read_u16()
    assert e.value.args[0] == 116  # ETIMEDOUT
    machine.ADC(machine.Pin(34)).read_u16()  # ADC1: Wi-Fi or not
    i2c = machine.I2C(0, scl=machine.Pin(35), sda=machine.Pin(21))
    assert i2c.scan() == []
    with pytest.raises(OSError):
        i2c.readfrom_mem(0x68, 0, 1)


# --- the issue's two examples, end to end ----------------------------------------


def test_config_check_refuses_the_issues_two_pins(tmp_path):
    bad = tmp_path / "lamp.json"
    bad.write_text(json.dumps(_with(LAMP_CONFIG, None, {"current_adc": 5, "button": 45})))
    proc = parkctl("config", "check", str(bad))
    assert proc.returncode == 1
    assert "2 error(s)" in proc.stderr
    assert "pins.current_adc: GPIO 5 has no ADC on the ESP32; use an ADC1 pin (32-39)" in proc.stderr
    assert "pins.button: the ESP32 has no GPIO 45" in proc.stderr
    proc = parkctl("config", "check", str(bad), "--json")
    assert proc.returncode == 1 and not json.loads(proc.stdout)["ok"]
    good = tmp_path / "shipped.json"
    good.write_text(json.dumps(LAMP_CONFIG))
    proc = parkctl("config", "check", str(good), "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["config_warnings"] == [
        "pins.button_led: GPIO 2 is a strapping pin (read at reset to choose the boot mode): what is "
        "wired to it must not pull it the wrong way at power-on"
    ]


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_configuration_the_chip_cannot_run_is_refused_by_the_lamp(mosquitto, tmp_path, runtime):
    # Sent from the centre as it is (not through `parkctl config push`, which
    # refuses it before it leaves): the lamp refuses it with the reasons, and
    # keeps running the configuration it has.
    from parkctl import simcmd
    from test_alarm_sim import WIFI_CONFIG

    bad = json.loads(WIFI_CONFIG.read_text())
    bad["network"]["broker"] = mosquitto.url
    bad["default"]["steps"][0]["level"] = 40  # what it would change, were it taken
    bad["pins"] = {"current_adc": 5, "button": 45}
    scenario = tmp_path / "bad-pins.scn"
    scenario.write_text(
        "\n".join(
            [
                f"config {WIFI_CONFIG}",
                "start 2026-12-21 18:00",
                "end 2026-12-21 19:30",
                "wifi up 18:00",
                f'at 19:00 centre sends {{"cmd": "config", "config": {json.dumps(bad)}}}',
                "expect level 100 +-1 at 18:50",
                "expect level 100 +-1 at 19:20",
                "expect no fault",
            ]
        )
        + "\n"
    )
    result = simcmd.run(scenario, runtime, broker=mosquitto.url)
    assert result.ok, [c for c in result.checks if not c[1]]
    replies = [e.text for e in result.entries if e.kind == "centre" and e.text.startswith("reply to ")]
    assert len(replies) == 1
    reason = replies[0].split(": ", 1)[1]
    assert reason.startswith("refused: ")
    assert "pins.current_adc: GPIO 5 has no ADC on the ESP32; use an ADC1 pin (32-39)" in reason
    assert "pins.button: the ESP32 has no GPIO 45" in reason
    # Nothing installed, no restart: the board ran on from its power-on.
    assert [e.text for e in result.entries if e.kind == "reset"] == ["power on"]
    console = [e.text for e in result.entries if e.kind == "console"]
    # The shipped pins' one catch, said at boot.
    assert any(line.startswith("config: warning: /config.json: pins.button_led: GPIO 2") for line in console)
