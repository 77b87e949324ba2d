"""`parkctl schedule` and `parkctl config check`, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_sun import parkctl

CONFIG = str(Path(__file__).resolve().parents[1] / "firmware" / "lamp" / "config.json")


def schedule(runtime: str, *args: str) -> list[dict]:
    proc = parkctl("schedule", "--config", CONFIG, *args, "--runtime", runtime, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_schedule_json_for_a_winter_night():
    rows = schedule("cpython", "--date", "2026-12-21")
    assert rows == [
        {"at": "2026-12-21T05:00:00", "level": 100, "reason": "default step 3 (05:00)"},
        {"at": "2026-12-21T06:48:58", "level": 0, "reason": "default step 4 (sunrise)"},
        {"at": "2026-12-21T16:57:00", "level": 100, "reason": "default step 1 (sunset)"},
        {"at": "2026-12-21T23:00:00", "level": 50, "reason": "default step 2 (23:00)"},
    ]


def test_both_interpreters_give_the_same_schedule():
    assert schedule("micropython", "--date", "2026-09-28", "--days", "7") == schedule(
        "cpython", "--date", "2026-09-28", "--days", "7"
    )


def test_a_whole_year_fits_micropythons_heap():
    # Regression: the answer used to be built whole, and a week overflowed 100 KB.
    year = schedule("micropython", "--date", "2026-01-01", "--days", "366")
    assert len(year) > 1300  # about four a night, two on holidays
    assert year == schedule("cpython", "--date", "2026-01-01", "--days", "366")


def test_schedule_table():
    proc = parkctl("schedule", "--config", CONFIG, "--date", "2026-10-01")
    assert proc.returncode == 0
    assert "in force" in proc.stdout and "holidays step 1" in proc.stdout


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_schedule_with_a_bad_configuration_lists_every_error(tmp_path, runtime):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"site": {"lat": 95, "lon": 0, "tz": "CET"}, "default": {"steps": [{"at": "x"}]}})
    )
    proc = parkctl("schedule", "--config", str(bad), "--date", "2026-12-21", "--runtime", runtime)
    assert proc.returncode == 2
    assert "site.lat: 95 is outside -90..90" in proc.stderr
    assert 'site.tz: bad TZ "CET"' in proc.stderr
    assert 'default.steps[0].at: unknown sun event "x"' in proc.stderr
    assert "default.steps[0].level: missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_schedule_bad_arguments(tmp_path):
    proc = parkctl("schedule", "--config", str(tmp_path / "none.json"), "--date", "2026-12-21")
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    proc = parkctl("schedule", "--config", CONFIG, "--date", "2026-12-32")
    assert proc.returncode == 2 and "day 32" in proc.stderr
    proc = parkctl("schedule", "--config", CONFIG, "--date", "2026-12-01", "--days", "0")
    assert proc.returncode == 2 and "days 0 is not 1..366" in proc.stderr


def test_config_check(tmp_path):
    proc = parkctl("config", "check", CONFIG)
    assert proc.returncode == 0
    assert "ok (G60 park, Songjiang, CST-8" in proc.stdout
    bad = tmp_path / "bad.json"
    obj = json.loads(Path(CONFIG).read_text())
    obj["calendar"][0]["program"]["steps"][1]["at"] = "sunsett"
    obj["output"]["gamma"] = 9
    bad.write_text(json.dumps(obj))
    proc = parkctl("config", "check", str(bad))
    assert proc.returncode == 1
    assert "2 error(s)" in proc.stderr
    assert 'calendar[0].program.steps[1].at: unknown sun event "sunsett"' in proc.stderr
    assert "output.gamma: 9 is outside 1.0..4.0" in proc.stderr
    proc = parkctl("config", "check", str(bad), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False
    bad.write_text("{")
    proc = parkctl("config", "check", str(bad))
    assert proc.returncode == 1 and "not valid JSON" in proc.stderr


def test_config_check_refuses_a_zone_too_far_from_the_sites_solar_time(tmp_path):
    # Issue 22: the zone and the longitude named, and how far apart they are.
    far = tmp_path / "far.json"
    obj = json.loads(Path(CONFIG).read_text())
    obj["site"].update(lat=0, lon=0, tz="NZST-12NZDT,M9.5.0,M4.1.0/3")
    far.write_text(json.dumps(obj))
    proc = parkctl("config", "check", str(far))
    assert proc.returncode == 1 and "1 error(s)" in proc.stderr
    assert (
        "site.tz: NZST-12NZDT,M9.5.0,M4.1.0/3 is 12 h 00 min from the solar time at longitude 0.00"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_config_check_reads_a_kiosks_configuration_with_the_kiosks_parser(tmp_path):
    proc = parkctl("config", "check", "firmware/kiosk/config.json", "--app", "kiosk")
    assert proc.returncode == 0 and "ok (a kiosk at G60 park, CST-8, threshold 0.8" in proc.stdout
    proc = parkctl("config", "check", "firmware/kiosk/config.json")  # as a lamp's: no schedule
    assert proc.returncode == 1 and "default: must be an object" in proc.stderr
    bad = tmp_path / "kiosk.json"
    bad.write_text(json.dumps({"site": {"tz": "CST-8"}, "checkin": {"threshold": 3, "liveness": 1}}))
    proc = parkctl("config", "check", str(bad), "--app", "kiosk", "--json")
    assert proc.returncode == 1
    errors = json.loads(proc.stdout)["errors"]
    assert errors == [
        "checkin.threshold: 3 is outside 0.0..1.0",
        "checkin.liveness: must be true or false, not a number",
    ]


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_schedule_in_june_skips_the_morning_step_and_says_so(runtime):
    # Regression (issue 21): the 05:00 step came after the 04:52 sunrise and lit the
    # lamp at full power all day.
    rows = schedule(runtime, "--date", "2026-06-21")
    assert rows == [
        {"at": "2026-06-21T04:51:54", "level": 0, "reason": "default step 4 (sunrise)"},
        {"at": "2026-06-21T05:00:00", "level": 0, "reason": "default step 3 (05:00) skipped: after sunrise"},
        {"at": "2026-06-21T19:01:46", "level": 100, "reason": "default step 1 (sunset)"},
        {"at": "2026-06-21T23:00:00", "level": 50, "reason": "default step 2 (23:00)"},
    ]


def test_config_check_warns_of_steps_skipped_on_some_nights(tmp_path):
    proc = parkctl("config", "check", CONFIG, "--from", "2026-01-01")
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: default step 3 (05:00) is skipped on 57 night(s) (after sunrise): 2026-05-15..2026-07-10"
        in proc.stdout
    )
    proc = parkctl("config", "check", CONFIG, "--from", "2026-01-01", "--json")
    assert json.loads(proc.stdout)["warnings"] == [
        {
            "step": "default step 3 (05:00)",
            "why": "after sunrise",
            "nights": 57,
            "dates": ["2026-05-15..2026-07-10"],
        }
    ]
    # A step that never falls in daylight is not warned of.
    obj = json.loads(Path(CONFIG).read_text())
    obj["default"]["steps"][2]["at"] = "04:00"
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(obj))
    proc = parkctl("config", "check", str(ok), "--from", "2026-01-01", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["warnings"] == []
    proc = parkctl("config", "check", CONFIG, "--from", "2026-13-01")
    assert proc.returncode == 2 and "--from 2026-13-01" in proc.stderr


def test_schedule_says_why_a_step_is_skipped(tmp_path):
    obj = json.loads(Path(CONFIG).read_text())
    obj["site"] = {"lat": 69.65, "lon": 18.96, "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}  # Tromso
    obj["calendar"] = []
    path = tmp_path / "tromso.json"
    path.write_text(json.dumps(obj))
    proc = parkctl("schedule", "--config", str(path), "--date", "2026-05-10", "--json")
    reasons = [row["reason"] for row in json.loads(proc.stdout)]
    assert "default step 2 (23:00) skipped: before sunset" in reasons  # sunset 23:02
    proc = parkctl("schedule", "--config", str(path), "--date", "2026-06-21", "--json")
    rows = json.loads(proc.stdout)
    assert {r["reason"] for r in rows} == {
        "default step 2 (23:00) skipped: no night (the sun does not set)",
        "default step 3 (05:00) skipped: no night (the sun does not set)",
        "default step 4 (sunrise) skipped: no night (the sun does not set)",
    }
    assert {r["level"] for r in rows} == {0}
    # A morning sun step after sunrise ends the night there.
    obj = json.loads(Path(CONFIG).read_text())
    obj["calendar"] = []
    obj["default"]["steps"] = [
        {"at": "sunset", "level": 100},
        {"at": "05:30", "level": 30},
        {"at": "sunrise", "offset": 30, "level": 0},
    ]
    path.write_text(json.dumps(obj))
    proc = parkctl("schedule", "--config", str(path), "--date", "2026-06-22", "--json")
    reasons = [row["reason"] for row in json.loads(proc.stdout)]
    assert "default step 2 (05:30) skipped: after step 3 (sunrise+30min)" in reasons


def test_config_check_refuses_a_site_without_its_place_or_time_zone(tmp_path):
    obj = json.loads(Path(CONFIG).read_text())
    del obj["site"]["lat"], obj["site"]["tz"]
    bad = tmp_path / "nowhere.json"
    bad.write_text(json.dumps(obj))
    proc = parkctl("config", "check", str(bad))
    assert proc.returncode == 1
    assert "site.lat: missing" in proc.stderr and "site.tz: missing" in proc.stderr


def test_a_years_summary_in_both_interpreters_and_its_plot(tmp_path):
    def summary(runtime, config=CONFIG, *more):
        proc = parkctl(
            "schedule",
            "--config",
            config,
            "--year",
            "2026",
            "--summary",
            "--runtime",
            runtime,
            "--json",
            *more,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    got = summary("cpython", CONFIG, "--plot", str(tmp_path / "year.png"))
    assert got == summary("micropython")
    assert (tmp_path / "year.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert got["daylight_burning_hours"] == 0  # no step opted in to daylight
    assert {lvl for lvl, _ in got["hours_at_level"]} == {0, 50, 100}
    assert sum(h for _, h in got["hours_at_level"]) == 8760
    assert abs(got["burning_hours"] - 4316.5) < 1  # about dusk to dawn
    # Level 50 from 23:00 to 05:00 (or sunrise) on the shipped gamma 2.2 curve: the
    # driver gets 21.8 % duty, and draws that share of its power (the lamp's own
    # energy meter agrees: tests/test_counters_sim.py).
    assert 35 < got["saving_percent"] < 40
    assert got["kwh"] == round(
        100 * (got["hours_at_level"][1][1] * 0.5**2.2 + got["hours_at_level"][2][1]) / 1000, 2
    )
    # A tunnel lit by day, opted in: its daylight hours are counted.
    obj = json.loads(Path(CONFIG).read_text())
    obj["calendar"] = []
    obj["default"]["steps"] = [
        {"at": "sunset", "level": 100},
        {"at": "sunrise", "level": 20, "daylight": True},
    ]
    tunnel = tmp_path / "tunnel.json"
    tunnel.write_text(json.dumps(obj))
    got = summary("cpython", str(tunnel))
    assert got["burning_hours"] == 8760 and got["daylight_burning_hours"] > 4000
    proc = parkctl("schedule", "--config", CONFIG, "--summary")
    assert proc.returncode == 2 and "--year" in proc.stderr


@pytest.mark.parametrize(
    "energy, error",
    [
        ({"power_factor": 0.9}, "energy.mains_volts: missing"),
        ({"mains_volts": 230, "power_factor": 1.2}, "energy.power_factor: 1.2 is outside 0.01..1"),
        ({"mains_volts": 230, "power_factor": 0}, "energy.power_factor: 0 is outside 0.01..1"),
        ({"current_sense": False}, "energy.rated_watts: missing"),
        ({"current_sense": False, "rated_watts": -60}, "energy.rated_watts: -60 is outside 0.1..10000"),
    ],
)
def test_config_check_refuses_a_bad_energy_section(tmp_path, energy, error):
    obj = json.loads(Path(CONFIG).read_text())
    obj["energy"] = energy
    bad = tmp_path / "energy.json"
    bad.write_text(json.dumps(obj))
    proc = parkctl("config", "check", str(bad))
    assert proc.returncode == 1
    assert error in proc.stderr and "Traceback" not in proc.stderr
