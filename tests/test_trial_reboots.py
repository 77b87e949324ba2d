"""The configuration trial's deadline survives reboots (issue 24): a configuration
from the centre that makes the board reset before it reaches the centre is
rolled back within the trial time counted across boots, and after at most
TRIAL_BOOTS boots, however often the board resets and the power goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from parkctl import simcmd
from test_alarm_sim import WIFI_CONFIG

INSTALL = 19 * 3600  # the centre sends the configuration at 19:00
TRIAL_S = 600  # firmware/lib/configtrial.py TRIAL_MS
ROLLED_BACK = "event config no contact with the centre with the new configuration"
AT_BOOT = ROLLED_BACK + " in "  # said by the boot that finds the trial spent


def _clock(s: int) -> str:
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _scenario(tmp_path: Path, broker: str, every_s: int, extra: list[str]) -> Path:
    config = json.loads(WIFI_CONFIG.read_text())
    config["network"]["broker"] = broker
    # The new configuration can never reach the centre (nobody at that port),
    # and its level after sunset says when it is in force.
    stranded = json.loads(json.dumps(config))
    stranded["default"]["steps"][0]["level"] = 40
    stranded["network"]["broker"] = "mqtt://127.0.0.1:1"
    resets = [f"at {_clock(t)} board resets" for t in range(INSTALL + every_s, INSTALL + 1500, every_s)]
    lines = [
        f"config {WIFI_CONFIG}",
        "start 2026-12-21 18:00",
        "end 2026-12-21 19:40",
        "wifi up 18:00",
        f'at 19:00 centre sends {{"cmd": "config", "config": {json.dumps(stranded)}}}',
        *resets,
        *extra,
        "expect level 100 +-1 at 18:55",
        "expect level 40 +-1 at 19:00:20",
        "expect level 100 +-1 at 19:35",
    ]
    path = tmp_path / "trial-resets.scn"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rollback(result) -> tuple[int, str]:
    """When the rollback at boot was said (seconds after 19:00), and what it said."""
    said = [e for e in result.entries if e.kind == "console" and e.text.startswith(ROLLED_BACK)]
    assert len(said) == 1, [e.text for e in result.entries if e.kind == "console" and "config" in e.text]
    start = min(e.t for e in result.entries)  # 18:00
    return said[0].t - start - 3600, said[0].text


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_configuration_that_resets_the_board_every_30_s_is_rolled_back_after_10_boots(
    mosquitto, tmp_path, runtime
):
    # Power cuts among the resets, one of them in the middle of a flash write.
    cuts = ["power off 19:02:10 - 19:02:25", "power cut at flash op 3 after 19:03:01 - 19:03:04"]
    result = simcmd.run(_scenario(tmp_path, mosquitto.url, 30, cuts), runtime, broker=mosquitto.url)
    assert result.ok, [c for c in result.checks if not c[1]]
    after, text = _rollback(result)
    assert after <= TRIAL_S
    assert text.startswith(AT_BOOT + "10 boots")  # TRIAL_BOOTS
    # Nothing of the trial is left: no rollback is said again at the later resets.
    resets = [e for e in result.entries if e.kind == "reset" and e.text == "hard reset"]
    assert len(resets) > 40


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_configuration_that_resets_the_board_every_100_s_is_rolled_back_within_the_trial_time(
    mosquitto, tmp_path, runtime
):
    result = simcmd.run(
        _scenario(tmp_path, mosquitto.url, 100, ["power off 19:04:50 - 19:05:10"]),
        runtime,
        broker=mosquitto.url,
    )
    assert result.ok, [c for c in result.checks if not c[1]]
    after, text = _rollback(result)
    # Fewer boots than TRIAL_BOOTS, but their time on trial adds up to TRIAL_MS:
    # the boot that reaches it rolls back and restarts with the last good one.
    assert after <= TRIAL_S
    assert text == ROLLED_BACK + ": rolled back"
    start = min(e.t for e in result.entries)
    boots = [
        e
        for e in result.entries
        if e.kind == "reset" and INSTALL < e.t - start + 18 * 3600 <= INSTALL + after
    ]
    assert len([e for e in boots if e.text in ("soft reset", "hard reset", "power on")]) < 10
