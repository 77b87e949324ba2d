"""The world's events in the simulator (sim/world.py), in both runtimes: what
happens when one fails on the simulator's side, and what a span leaves behind
when it ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from parkctl import cli, simcmd
from parkctl.brokers import Embedded
from parkctl.errors import SimulatorError
from parkctl.runtime import ROOT

CONFIG = ROOT / "sim" / "scenarios" / "songjiang-wifi.json"
LAMP_CONFIG = json.loads((ROOT / "firmware" / "lamp" / "config.json").read_text())


# --- a world event that fails on the simulator's side ----------------------------


class _WontComeBack(Embedded):
    """The embedded broker, which fails to start again once killed, as when its
    port was taken while it was down (what `broker down` once met)."""

    starts = 0

    def start(self) -> Embedded:
        self.starts += 1
        if self.starts > 1:
            raise RuntimeError(
                f"the embedded broker did not start on port {self.port}: address already in use"
            )
        return super().start()


def _broker_that_wont_come_back(monkeypatch) -> None:
    monkeypatch.setattr(simcmd, "_own_broker", lambda broker, sc: _WontComeBack().start())


def _outage_scenario(tmp_path: Path) -> Path:
    scn = tmp_path / "outage.scn"
    scn.write_text(
        f"config {CONFIG}\nstart 2026-12-21 21:50\nend 2026-12-21 22:30\nwifi up 21:50\n"
        "at 22:00 press button for 300ms\n"
        "broker down 22:01 - 22:02   # it will not come back\n"
        "expect 1 alarms at centre\n"
    )
    return scn


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_host_error_in_a_world_event_stops_the_run_and_names_the_event(tmp_path, monkeypatch, runtime):
    # The broker cannot be started again at the end of `broker down`. That is
    # the simulator failing, not the firmware: the run stops there, naming the
    # scenario line, the event, when, and the host's error; the firmware never
    # sees it (on the old code CPython showed "main.py stopped: RuntimeError"
    # and a watchdog reset, MicroPython a traceback of the host's).
    _broker_that_wont_come_back(monkeypatch)
    scn = _outage_scenario(tmp_path)
    with pytest.raises(SimulatorError) as failed:
        simcmd.run(scn, runtime)
    message = str(failed.value)
    assert message.startswith(f"{scn}:6: `broker down 22:01 - 22:02`: ")
    assert "its event `broker up` at 2026-12-21 22:02:00" in message
    assert "failed on the simulator's side, not in the firmware: RuntimeError: the embedded broker" in message
    assert message.endswith("address already in use")
    assert "main.py" not in message and "\n" not in message


def test_parkctl_sim_says_the_simulator_failed_in_one_line(tmp_path, monkeypatch, capsys):
    _broker_that_wont_come_back(monkeypatch)
    scn = _outage_scenario(tmp_path)
    status = cli.main(["sim", str(scn)])
    err = capsys.readouterr().err
    assert status == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"parkctl sim: the simulator failed: {scn}:6: `broker down 22:01 - 22:02`")
    assert "Traceback" not in err


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_fault_in_the_world_itself_is_not_blamed_on_the_firmware(runtime):
    # An event the world cannot apply (here one it does not know): the same
    # clear stop, in the runtime that runs the world.
    from sim.cpython import WorldEventFailed
    from sim.scenario import load

    sc = load(ROOT / "sim" / "scenarios" / "lamp-failure.scn")
    sc.events.append({"at": sc.start + 3600, "do": "meteor", "line": 42})
    with pytest.raises(WorldEventFailed) as failed:
        simcmd._run(sc, runtime, None, None, None, False)
    e = failed.value
    assert (e.what, e.line, e.t_us) == ("meteor", 42, (sc.start + 3600) * 1000000)
    assert e.error == "ValueError: unknown world event 'meteor'"
