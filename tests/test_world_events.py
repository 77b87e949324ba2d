"""The world's events in the simulator (sim/world.py), in both runtimes: what
happens when one fails on the simulator's side, and what a span leaves behind
when it ends."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parkctl import cli, simcmd
from parkctl.brokers import Embedded
from parkctl.errors import SimulatorError
from parkctl.runtime import ROOT, micropython_binary

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
    monkeypatch.setattr(simcmd, "_own_broker", lambda broker, sc, **kw: _WontComeBack().start())


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


# --- what a span leaves behind ---------------------------------------------------

START = 851155200  # 2026-12-21 08:00 UTC, in seconds since 2000

# The world alone (no board), through its events to the end of a scenario, in
# MicroPython: prints the timeline's world notes and the Wi-Fi at the end.
_MP_DRIVER = """
import json, sys
import _hub
from world import World
sc = json.loads(sys.stdin.read())
notes = []
world = World(sc, lambda t, kind, text: notes.append([t // 1000000, kind, text]))
try:
    world.advance(world.end_us)
except _hub.Stop:
    pass
print(json.dumps([notes, world.wifi]))
"""


def _world_cpython(sc: dict) -> tuple[list, bool]:
    from sim import cpython

    modules = cpython.ModuleSystem(console=lambda line: None)
    hub = modules.load("_hub", as_firmware=False)
    world_mod = modules.load("world", as_firmware=False)
    notes: list = []
    world = world_mod.World(sc, lambda t, kind, text: notes.append([t // 1000000, kind, text]))
    with pytest.raises(hub.Stop):
        world.advance(world.end_us)
    return notes, world.wifi


def _world_micropython(sc: dict) -> tuple[list, bool]:
    path = os.pathsep.join(str(ROOT / p) for p in ("sim", "sim/vesp32", "firmware/lamp", "firmware/lib"))
    proc = subprocess.run(
        [micropython_binary(), "-c", _MP_DRIVER],
        input=json.dumps(sc),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, MICROPYPATH=path),
    )
    assert proc.returncode == 0, proc.stderr
    notes, wifi = json.loads(proc.stdout)
    return notes, wifi


def _wifi_at(notes: list, initially: bool, t: int) -> bool:
    """The Wi-Fi once every event at or before t has happened."""
    state = initially
    for when, kind, text in notes:
        if when > t:
            break
        if kind == "world" and text in ("Wi-Fi up", "Wi-Fi down"):
            state = text == "Wi-Fi up"
    return state


spans = st.lists(st.tuples(st.integers(0, 3600), st.integers(1, 3 * 3600)), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None)
@given(spans=spans, initially=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_wifi_is_up_after_every_flapping_span_in_both_runtimes(spans, initially, seed):
    # Wi-Fi flapping from T0 to T1 is up at T1 and stays up until something
    # else happens, whatever it was before and however the flaps fell; each
    # state in between lasted 5 to 60 s. The same in both runtimes (the world
    # runs in each). On the old code the last flap left it down half the time.
    events, ends = [], []
    t = START
    for gap, length in spans:
        t0 = t + gap
        t += gap + length
        events.append({"at": t0, "do": "wifi_flap", "until": t, "line": len(events) + 1})
        ends.append((t0, t))
    sc = {
        "start": START,
        "end": t + 600,
        "seed": seed,
        "config": LAMP_CONFIG,
        "board": {"wifi": "up" if initially else "down"},
        "events": events,
    }
    notes, wifi = _world_cpython(sc)
    assert wifi
    for i, (t0, t1) in enumerate(ends):
        after = ends[i + 1][0] if i + 1 < len(ends) else sc["end"]
        assert _wifi_at(notes, initially, t1), f"Wi-Fi down at the end of flapping span {i + 1}"
        changes = [n for n in notes if t1 < n[0] <= after and n[2] in ("Wi-Fi up", "Wi-Fi down")]
        assert not changes, f"Wi-Fi changed after flapping span {i + 1} ended: {changes}"
        flaps = [n[0] for n in notes if t0 < n[0] <= t1 and n[2] in ("Wi-Fi up", "Wi-Fi down")]
        for a, b in zip([t0, *flaps], flaps, strict=False):
            assert b - a <= 60 and (b - a >= 5 or b == t1), (a, b)
    assert _world_micropython(sc) == (notes, wifi)


outages = st.lists(st.tuples(st.integers(0, 4 * 3600), st.integers(1, 3600)), min_size=1, max_size=6)


@settings(max_examples=25, deadline=None)
@given(outages=outages, flapping=st.booleans())
def test_overlapping_wifi_outages_nest_in_both_runtimes(tmp_path_factory, outages, flapping):
    # `wifi down T - T` spans that overlap: the link is down while any of them
    # lasts and back when the last ends (on the old code the first one's end
    # brought it back in the middle of the next). A flapping span across them
    # does not bring the link up during an outage either.
    import datetime as dt

    from sim.scenario import load

    t0 = dt.datetime(2026, 12, 21, 12, 0, 0)

    def at(s: int) -> str:
        return (t0 + dt.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S")

    lines = [f"config {CONFIG}", f"start {at(0)}", f"end {at(6 * 3600)}", "wifi up", "seed 3"]
    lines += [f"wifi down {at(a)} - {at(a + n)}" for a, n in outages]
    if flapping:
        lines.append(f"wifi flapping {at(1800)} - {at(2 * 3600)}")
    scn = tmp_path_factory.mktemp("outages") / "o.scn"
    scn.write_text("\n".join(lines) + "\n")
    sc = load(scn)
    data = sc.to_json()
    notes, _ = _world_cpython(data)
    start = sc.start
    spans = [(start + a, start + a + n) for a, n in outages]
    for t in sorted({x + d for s in spans for x in s for d in (-1, 0, 1)}):
        if flapping and start + 1800 <= t <= start + 2 * 3600:
            if any(a <= t < b for a, b in spans):
                assert not _wifi_at(notes, True, t), t - start
            continue  # up or down at random, but for the outages
        assert _wifi_at(notes, True, t) == (not any(a <= t < b for a, b in spans)), t - start
    assert _world_micropython(data)[0] == notes


def test_a_broker_killed_while_it_hangs_comes_back_at_the_end_of_its_span(tmp_path):
    # `broker hangs` inside a `broker down` span hangs a broker that is dead;
    # the end of the span must still start it again (the old code only resumed
    # a hung one, and the broker stayed dead for the rest of the night).
    scn = tmp_path / "hang.scn"
    scn.write_text(
        f"config {CONFIG}\nstart 2026-12-21 21:50\nend 2026-12-21 22:30\nwifi up 21:50\n"
        "broker down 22:01 - 22:03\n"
        "broker hangs 22:02\n"
        "at 22:10 press button for 300ms\n"
        "expect an alarm at centre by 22:12\n"
    )
    result = simcmd.run(scn, broker="mosquitto")
    assert result.ok, [c for c in result.checks if not c[1]]


def test_broker_spans_that_overlap_are_refused_naming_both_lines(tmp_path):
    from sim.scenario import ScenarioError, load

    scn = tmp_path / "twice.scn"
    scn.write_text(
        f"config {CONFIG}\nstart 2026-12-21 21:50\nend 2026-12-21 23:30\n"
        "broker down 22:00 - 22:30\n"
        "broker down 22:20 - 22:40\n"
    )
    with pytest.raises(ScenarioError, match=r"twice.scn:5: this broker span overlaps the one on line 4"):
        load(scn)
    # One after the other, and an open-ended hang before a kill, are fine.
    scn.write_text(
        f"config {CONFIG}\nstart 2026-12-21 21:50\nend 2026-12-21 23:30\n"
        "broker down 22:00 - 22:30\nbroker down 22:30 - 22:40\n"
        "broker hangs 22:50\nbroker down 23:00 - 23:10\n"
    )
    load(scn)


@pytest.mark.parametrize(
    "second", ["power off 23:20 - 23:50", "power off 23:40 - 23:45", "power off 23:00 - 23:10"]
)
def test_power_cuts_that_overlap_or_touch_are_refused_naming_both_lines(tmp_path, second):
    # On the old code the first cut's end brought the power back in the middle
    # of the second (and where two touch, which comes first was the file's order).
    from sim.scenario import ScenarioError, load

    scn = tmp_path / "cuts.scn"
    scn.write_text(
        f"config {CONFIG}\nstart 2026-12-21 21:50\nend 2026-12-22 01:30\n"
        f"power off 23:10 - 23:40\n{second}\npower off 23:41 - 23:42\n"
    )
    with pytest.raises(ScenarioError, match=r"cuts.scn:5: this power cut overlaps the one on line 4"):
        load(scn)
