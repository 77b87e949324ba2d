"""`parkctl diag` as a field technician reads it (docs/diagnostics.md): the status
in the order they check things, with names and the park's local time; exit status
1 for a configuration that `config validate` finds wrong, 2 for what the board
refuses (README.md, "Exit status")."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from parkctl.build import build
from parkctl.diag import Port, local_time, status_view
from parkctl.vboard import VirtualBoard
from test_deploy import parkctl

ROOT = Path(__file__).resolve().parents[1]

# A lamp's `status` answer as the firmware gives it (keys in no order: MicroPython's
# dicts have none).
LAMP = {
    "version": "v1.4-3-gabc",
    "uptime_s": 93784,
    "reset_cause": 3,
    "relay": "closed",
    "manifest": "0123456789abcdef0123",
    "ts": 1798115405,  # 2026-12-24 12:30:05 UTC
    "mode": "schedule",
    "level": 50,
    "applied": 50,
    "reason": "default step 2 (23:00)",
    "time_valid": True,
    "time_source": "ntp",
    "lux": 3,
    "dark": True,
    "photocell_problem": None,
    "amps": 0.25,
    "faults": ["lamp_failure"],
    "device": "lamp-g60-007",
    "alarm": {
        "id": "lamp-g60-007-4-2",
        "state": "acknowledged",
        "presses": 2,
        "test": False,
        "raised": 1798115000,
    },
    "pending": 3,
    "boot": 4,
    "app": "lamp",
    "heap_free": 40960,
    "flash_free": 1887436,
    "wifi": True,
    "mqtt": "connected",
    "console_errors": 0,
    "burning_s": 15594352,
    "energy_wh": 615619,
    "switch_cycles": 365,
    "counters_problem": None,
    "new_field": 7,
}


def test_status_reads_in_the_order_a_technician_checks_with_names_and_local_time():
    rows = status_view(LAMP, "CST-8")
    names = [k for k, _ in rows]
    order = ["mode", "level", "faults", "alarm", "Wi-Fi", "time", "last reset", "version"]
    assert [names.index(k) for k in order] == sorted(names.index(k) for k in order)
    view = dict(rows)
    assert view["last reset"] == "watchdog (the loop hung)"  # not `reset_cause 3`
    assert view["time"] == "2026-12-24 20:30:05 CST (UTC+8), from ntp"  # not a Unix ts
    assert view["alarm"] == (
        "lamp-g60-007-4-2 acknowledged, 2 press(es), raised 2026-12-24 20:23:20 CST (UTC+8)"
    )
    assert view["faults"] == "lamp_failure" and view["uptime"] == "1 d 2 h 03 min"
    assert view["undelivered"] == "3 event(s) waiting for the centre"
    assert names[-1] == "new_field" and view["new_field"] == "7"  # nothing hidden
    assert view["counters"] == "4,331.8 burning hours, 615.6 kWh, 365 switch cycles"
    assert names.index("photocell") < names.index("counters") < names.index("faults")


def test_the_counters_say_what_is_not_metered_and_what_went_wrong():
    lamp = dict(
        LAMP, energy_wh=None, counters_problem="/counters.1 unreadable: counting on from the other copy"
    )
    assert dict(status_view(lamp, "CST-8"))["counters"] == (
        "4,331.8 burning hours, energy not metered, 365 switch cycles"
        " (problem: /counters.1 unreadable: counting on from the other copy)"
    )


def test_local_time_names_the_zone_in_summer_and_winter():
    berlin = "CET-1CEST,M3.5.0,M10.5.0/3"
    assert local_time(1782302400, berlin) == "2026-06-24 14:00:00 CEST (UTC+2)"
    assert local_time(1798113600, berlin) == "2026-12-24 13:00:00 CET (UTC+1)"
    assert local_time(1798113600, None) == "2026-12-24 12:00:00 UTC"
    assert local_time(None, berlin) == "not known"


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualBoard]:
    tmp = tmp_path_factory.mktemp("diagview")
    b = build("lamp", tmp / "build", chip="vboard")
    flash = tmp / "flash.img"
    shutil.copyfile(b.image, flash)
    with VirtualBoard("lamp", flash) as vb:
        with Port(vb.port) as p:
            p.ask("status", timeout=60)  # the firmware runs
        yield vb


def test_diag_status_on_a_board(board: VirtualBoard) -> None:
    r = parkctl("diag", "--port", board.port, "status", "--timeout", "15")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "reset_cause" not in out and "power-on" in out
    assert "CST (UTC+8)" in out  # the shipped configuration's zone
    assert out.index("mode") < out.index("faults") < out.index("alarm") < out.index("Wi-Fi")
    assert out.index("Wi-Fi") < out.index("time") < out.index("last reset") < out.index("version")
    # Piped (as here), a row stays whole: rich wrapped at 80 columns.
    assert re.search(r"│ time +│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST \(UTC\+8\), from \w+ +│", out), out
    assert re.search(r"│ version +│ \S+ \(build [0-9a-f]{12}\) +│", out), out
    r = parkctl("diag", "--port", board.port, "status", "--json", "--timeout", "15")
    data = json.loads(r.stdout)
    assert data["reset_cause"] == 1 and isinstance(data["ts"], int)  # --json unchanged
    # The lamp's counters (a board just built: nothing counted on its flash yet).
    assert (data["burning_s"], data["switch_cycles"], data["counters_problem"]) == (0, 0, None)
    assert data["energy_wh"] == 0  # the shipped configuration meters energy (energy.mains_volts)
    assert re.search(r"│ counters +│ [\d.,]+ burning hours, [\d.,]+ kWh, \d+ switch cycles +│", out), out


def test_diag_exit_status_for_an_invalid_configuration_and_a_refusal(board: VirtualBoard, tmp_path) -> None:
    bad = json.loads((ROOT / "firmware" / "lamp" / "config.json").read_text())
    bad["site"]["lat"] = 95
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    r = parkctl("diag", "--port", board.port, "config", "validate", str(path), "--timeout", "15")
    # Regression: an invalid file exited 0, its errors in a table on stdout.
    assert r.returncode == 1 and "site.lat: 95 is outside -90..90" in r.stderr, (r.stdout, r.stderr)
    r = parkctl("diag", "--port", board.port, "time", "set", "1999-01-01T00:00:00Z", "--timeout", "15")
    # Regression: a value the board refuses exited 1, where the README says 2.
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "the board refused" in r.stderr
    r = parkctl("diag", "--port", board.port, "face", "--timeout", "15")
    assert r.returncode == 2 and "unknown command 'face'" in r.stderr
