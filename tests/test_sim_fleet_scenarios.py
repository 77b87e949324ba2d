"""Every shipped lamp scenario holds for a fleet (`parkctl sim NAME --lamps 10`) as
it does for one lamp: the fleet runs the same firmware through the same scenario,
each lamp with a centre of its own when the scenario has the centre's statements
(docs/scenarios.md, "Fleets")."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from parkctl import simcmd
from parkctl.errors import UserError
from test_cli_sun import parkctl

from sim import fleet
from sim.scenario import load

SCENARIOS = Path(__file__).resolve().parents[1] / "sim" / "scenarios"
SHIPPED = sorted(p.stem for p in SCENARIOS.glob("*.scn"))
LAMP_SCENARIOS = [name for name in SHIPPED if load(SCENARIOS / f"{name}.scn").app == "lamp"]


def test_the_lamp_scenarios_are_the_shipped_ones_but_the_kiosks():
    assert "winter-night" in LAMP_SCENARIOS and "kiosk-morning" not in LAMP_SCENARIOS
    assert len(LAMP_SCENARIOS) == len(SHIPPED) - 1


@pytest.mark.parametrize("name", LAMP_SCENARIOS)
def test_every_shipped_lamp_scenario_holds_on_ten_lamps(name: str) -> None:
    results = simcmd.run_fleet(SCENARIOS / f"{name}.scn", 10)
    assert len(results) == 10
    failed = [(i, text, seen) for i, r in enumerate(results) for text, ok, seen in r.checks if not ok]
    assert failed == []
    assert all(r.checks for r in results)


def test_a_fleet_keeps_the_scenarios_own_rtc_offset():
    # Regression: each lamp's few seconds replaced `rtc off by +2h`, so
    # ntp-steps-back ran with a right clock and failed on every lamp.
    sc = load(SCENARIOS / "ntp-steps-back.scn").to_json(None)
    offsets = [fleet.variant(copy.deepcopy(sc), i)["board"]["clock_offset_s"] for i in range(11)]
    assert offsets == [7200 + k for k in range(-5, 6)]


def test_the_readme_fleet_example_runs(tmp_path):
    # README: `parkctl sim sim/scenarios/winter-night.scn --lamps 100`, here with 3:
    # it used to be refused ("the centre's statements are for one lamp").
    proc = parkctl("sim", str(SCENARIOS / "winter-night.scn"), "--lamps", "3")
    assert proc.returncode == 0, proc.stderr
    assert "3 lamps in one process" in proc.stdout and "0 failed" in proc.stdout


def test_a_kiosk_scenario_is_not_run_as_lamps():
    with pytest.raises(UserError, match="--lamps runs lamps; this is a kiosk's scenario"):
        simcmd.run_fleet(SCENARIOS / "kiosk-morning.scn", 2)
