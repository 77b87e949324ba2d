"""Safe mode on the virtual board (issue 24): the app as `parkctl build` makes it
(.mpy files on a littlefs image), the real MicroPython interpreter, the
technician's console through `parkctl diag`'s own Port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from parkctl.diag import Port
from parkctl.vboard import VirtualBoard
from serialline import Line
from test_vboard import RUNNING, _fs, lamp_image

ROOT = Path(__file__).resolve().parents[1]
SAFE = rb"event safe_mode 5 boots in a row never became healthy"


def _with_files(image: Path, files: dict[str, str], remove: tuple[str, ...] = ()) -> None:
    fs = _fs(image)
    for name in remove:
        fs.remove(name)
    for name, text in files.items():
        with fs.open(name, "w") as f:
            f.write(text)
    image.write_bytes(bytes(fs.context.buffer))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return lamp_image(tmp_path / "flash.img")


S3_PINS = {"pwm": 38, "relay": 39, "current_adc": 1, "light_adc": 2, "i2c_sda": 8, "i2c_scl": 9}
S3_PINS.update(button=40, button_led=41)
TRIGGERS = {
    # controller.mpy as the build made it, replaced by a source file that raises.
    "import": (
        {"controller.py": "raise ValueError('the build is broken')\n"},
        ("controller.mpy",),
        "ValueError: the build is broken (at controller.py:1",
    ),
    # A buffer at import that the heap cannot give.
    "memory": ({"counters.py": "_BUF = bytearray(1 << 40)\n"}, ("counters.mpy",), "MemoryError: "),
    # Pins an ESP32-S3 has, for the lamp's ESP32: valid for the chip it names.
    "pins": (
        {
            "lamp.json": json.dumps(
                dict(
                    json.loads((ROOT / "firmware/lamp/config.json").read_text()), chip="esp32s3", pins=S3_PINS
                )
            )
        },
        (),
        "ValueError: pin can only be input",
    ),
}


@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_a_boot_that_keeps_failing_puts_the_board_in_safe_mode_and_diag_shows_why(
    image: Path, trigger: str
) -> None:
    files, remove, said = TRIGGERS[trigger]
    _with_files(image, files, remove)
    b = VirtualBoard("lamp", image)
    ln = Line(b.port)  # before the power comes (test_vboard's `powered` says why)
    with b:
        try:
            ln.expect(SAFE, timeout=120)
            ln.close()
            with Port(b.port) as p:
                status = p.ask("status", timeout=30)["data"]
                why = p.ask("safemode", timeout=30)["data"]
                unknown = p.ask("selftest", timeout=30)
            assert status["mode"] == "safe_mode"
            assert status["level"] == 100  # the shipped configuration's fail-safe level
            failure = status["safe_mode"]["failure"]
            assert failure.startswith(said), failure
            assert why == {"safe_mode": True, "failed_boots": 5, "limit": 5, "failure": failure}
            assert not unknown["ok"]  # nothing of the app's but the config command
        finally:
            ln.close()


def test_safemode_leave_on_the_console_restarts_the_app(image: Path) -> None:
    # Five failed boots counted (the cause since fixed, say by a technician's deploy).
    _with_files(image, {"boots.bad": "5 5\nMemoryError: memory allocation failed (at counters.py:1)"})
    b = VirtualBoard("lamp", image)
    ln = Line(b.port)
    with b:
        try:
            ln.expect(SAFE, timeout=120)
            with Port(b.port) as p:
                left = p.ask("safemode leave", timeout=30)["data"]
            assert left == {"safe_mode": False, "restart_in_s": 2}
            ln.expect(RUNNING, timeout=120)  # the app's loop, with its schedule
            with Port(b.port) as p:
                status = p.ask("status", timeout=30)["data"]
                count = p.ask("safemode", timeout=30)["data"]
            assert status["mode"] != "safe_mode"
            assert count["safe_mode"] is False and count["failed_boots"] == 0
        finally:
            ln.close()
