"""The alarm end to end, in the simulator, over a real broker: a press on the
pole reaches the centre, the centre's acknowledgement and resolution reach the
pole, and the centre's tools see and act on it. (Outages: test_alarm_outages.py.)
The firmware runs unmodified; the tests read the timeline and listen at the
broker themselves."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
from mqttsub import Subscriber
from parkctl import simcmd
from test_cli_sun import PARKCTL, parkctl

from sim.cmdsign import SIM_MASTER


def centre_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """A centre tool that commands the simulated lamps: signed with the
    simulator's master key, as the real centre's with the park's."""
    env = dict(os.environ, PARK_COMMAND_KEY=SIM_MASTER.hex())
    return subprocess.run([PARKCTL, *args], capture_output=True, text=True, timeout=120, env=env)


SCENARIOS = Path(__file__).resolve().parents[1] / "sim" / "scenarios"
WIFI_CONFIG = SCENARIOS / "songjiang-wifi.json"


def _timeline(result) -> list[tuple[int, str, str]]:
    return [(e.t, e.kind, e.text) for e in result.entries]


def _raised_on_device(result) -> list[str]:
    return [e.text.split()[2] for e in result.entries if e.text.startswith("event alarm_raised ")]


def test_alarm_night_with_the_embedded_broker():
    result = simcmd.run(SCENARIOS / "alarm-night.scn")
    assert result.ok, [c for c in result.checks if not c[1]]
    centre = [e.text for e in result.entries if e.kind == "centre"]
    first = _raised_on_device(result)[0]
    # The whole lifecycle, in order, as the centre saw it.
    lifecycle = [t for t in centre if t.startswith("alarm_") and t.endswith(first)]
    assert [t.split()[0] for t in lifecycle] == [
        "alarm_raised",
        "alarm_delivered",
        "alarm_acknowledged",
        "alarm_resolved",
    ]

    # The ring LED blinks until the acknowledgement, then stays lit until the
    # resolution, then goes off.
    def led(t0, t1):
        return [e.text for e in result.entries if e.kind == "led" and t0 <= e.t < t1]

    ack_at, resolve_at = (
        next(e.t for e in result.entries if e.text.startswith(f"sends {c}")) for c in ("ack", "resolve")
    )
    press = next(e.t for e in result.entries if e.text.startswith("button pressed"))
    assert led(press, ack_at).count("off") > 100  # blinking: 2 a second for two minutes
    assert "off" not in led(ack_at + 1, resolve_at)
    assert led(resolve_at, resolve_at + 1)[-1:] == ["off"]
    # Garbage on the command topic is refused with a reason and changes nothing: it
    # does not even carry an authenticator.
    assert "reply to None None: refused: no authenticator" in centre
    assert "reply to ack centre-1: ok" in centre


def test_the_press_shows_on_the_pole_at_once():
    result = simcmd.run(SCENARIOS / "alarm-night.scn")
    press = next(e.t for e in result.entries if e.text.startswith("button pressed"))
    mode = next(e for e in result.entries if e.text == "event mode alarm")
    # The same second as the press (debounce is 50 ms): the lamp flashes, the
    # timeline's level series shows full and the flash's low level.
    assert mode.t == press
    levels = {e.text for e in result.entries if e.kind == "level" and press <= e.t <= press + 5}
    assert {"100.0", "20.0"} <= levels


def test_same_scenario_same_timeline_with_a_real_broker():
    a = simcmd.run(SCENARIOS / "alarm-night.scn")
    b = simcmd.run(SCENARIOS / "alarm-night.scn")
    assert _timeline(a) == _timeline(b)


def test_both_runtimes_same_timeline_with_a_real_broker():
    # The centre runs in the host's process for both; MicroPython asks it over
    # its standard streams.
    a = simcmd.run(SCENARIOS / "alarm-night.scn", "cpython")
    b = simcmd.run(SCENARIOS / "alarm-night.scn", "micropython")
    assert any(k == "centre" and t.startswith("alarm_raised") for _, k, t in _timeline(b))
    assert _timeline(a) == _timeline(b)


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://host:99999"])
def test_bad_broker_url_is_refused(url):
    proc = parkctl("sim", "--broker", url, str(SCENARIOS / "alarm-night.scn"))
    assert proc.returncode == 2
    assert "broker" in proc.stderr and "Traceback" not in proc.stderr


def test_centre_tools_see_the_open_alarm_and_a_silent_lamp(mosquitto, tmp_path):
    # A night that ends with an alarm open and the lamp gone: what the broker
    # retained is what `parkctl monitor` and `parkctl alarms` show.
    scn = tmp_path / "open.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 22:10\n"
        "wifi up 18:00\nat 22:03 press button for 300ms\nexpect 1 alarms at centre\n"
    )
    result = simcmd.run(scn, broker=mosquitto.url)
    assert result.ok
    aid = _raised_on_device(result)[0]
    device = aid.rsplit("-", 2)[0]

    proc = parkctl("alarms", "--broker", mosquitto.url, "--json")
    assert proc.returncode == 0, proc.stderr
    alarms = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(a["id"], a["device"], a["state"], a["presses"], a["online"]) for a in alarms] == [
        (aid, device, "delivered", 1, False)
    ]
    proc = parkctl("monitor", "--broker", mosquitto.url, "--once", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (row["device"], row["status"], row["mode"], row["level"]) == (device, "offline", "alarm", 100)
    # The lamp is off: an acknowledgement waits at the broker, and the tool says so.
    proc = centre_tool("ack", aid, "--broker", mosquitto.url, "--timeout", "0.5")
    assert proc.returncode == 2
    assert "did not reply" in proc.stderr and "Traceback" not in proc.stderr
    # Live: a line per lamp at once, and again at every change (a status arriving).
    live = subprocess.Popen(
        [PARKCTL, "monitor", "--broker", mosquitto.url, "--json"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert live.stdout is not None
        first = json.loads(live.stdout.readline())
        assert (first["device"], first["status"]) == (device, "offline")
        sub = Subscriber(mosquitto.port, [])
        sub.client.publish(f"park/park/lamp/{device}/status", "online", 1, retain=True).wait_for_publish(10)
        sub.close()
        while True:
            row = json.loads(live.stdout.readline())
            if row["status"] == "online":
                break
    finally:
        live.terminate()
        live.wait(60)
    # Bad input: a malformed id, an unknown lamp, an unreachable broker.
    for args, message in (
        (["ack", "nonsense", "--broker", mosquitto.url], "not an alarm id"),
        (["resolve", "lamp-ffff-1-2", "--broker", mosquitto.url], "no device"),
        (["alarms", "--broker", "mqtt://127.0.0.1:1"], "cannot reach the broker"),
    ):
        proc = parkctl(*args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)


def test_the_embedded_broker_can_be_killed_too(tmp_path):
    text = (
        (SCENARIOS / "alarm-night.scn")
        .read_text()
        .replace("at 22:04 centre garbage", "broker down 22:03:30 - 22:04:30")
    )
    result = simcmd.run(_write(tmp_path, text), broker="embedded")
    assert result.ok, [c for c in result.checks if not c[1]]


def _write(folder: Path, text: str) -> Path:
    path = folder / "s.scn"
    path.write_text(text.replace("config songjiang-wifi.json", f"config {WIFI_CONFIG}"))
    return path


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        ("broker down 22:00\n", [], "broker down T - T"),
        ("broker sleeps 22:00 - 22:10\n", [], "broker hangs T"),
        ("broker hangs 22:00 - 22:10\n", [], "needs --broker mosquitto"),
        ("broker down 22:00 - 22:10\n", ["--broker", "mqtt://127.0.0.1:1883"], "not one at a URL"),
    ],
)
def test_broker_statements_are_checked(tmp_path, lines, args, message):
    scn = tmp_path / "b.scn"
    scn.write_text(f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 23:00\n" + lines)
    proc = parkctl("sim", *args, str(scn))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_end_to_end_with_the_centre_tools(mosquitto, tmp_path):
    # The lamp runs in real time (x2) against Mosquitto; the test is the centre,
    # with paho and `parkctl`: press -> alarm at a subscriber -> parkctl ack ->
    # ring LED steady -> parkctl resolve -> the lamp back on its schedule.
    scn = tmp_path / "e2e.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 22:00\nend 2026-12-21 22:00:40\nwifi up 22:00\n"
        "at 22:00:04 press button for 300ms\n"
    )
    sub = Subscriber(mosquitto.port, ["park/+/lamp/+/event", "park/+/lamp/+/state"])
    sim = subprocess.Popen(
        [PARKCTL, "sim", str(scn), "--realtime", "2", "--broker", mosquitto.url, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        raised = sub.wait_for(lambda t, p: t.endswith("/event") and json.loads(p)["type"] == "alarm_raised")
        aid = json.loads(raised[1])["id"]
        proc = centre_tool("ack", aid, "--broker", mosquitto.url)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"{aid}: acknowledged"
        sub.wait_for(
            lambda t, p: (
                t.endswith("/state") and (json.loads(p)["alarm"] or {}).get("state") == "acknowledged"
            )
        )
        proc = centre_tool("resolve", aid, "--broker", mosquitto.url)
        assert proc.returncode == 0, proc.stderr
        sub.wait_for(lambda t, p: t.endswith("/state") and json.loads(p)["alarm"] is None)
        out, err = sim.communicate(timeout=120)
    finally:
        if sim.poll() is None:
            sim.kill()
        sub.close()
    assert sim.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    timeline = [(x["t"], x["kind"], x["text"]) for x in lines if "t" in x]
    texts = [x for _, _, x in timeline]
    i_ack = texts.index(f"event alarm_acknowledged {aid}")
    i_resolve = texts.index(f"event alarm_resolved {aid}")
    # Blinking before the acknowledgement (250 ms on, 250 off): when the lamp was
    # unacknowledged for a whole second or more. In real time the tool's ack can
    # come sooner (a starved simulator's clock jumps to the wall's when it runs
    # again), and an ack inside the first 250 ms rightly leaves it steady: the
    # blinking itself is test_an_alarm_blinks_until_acknowledged's, in simulated time.
    i_raise = texts.index(f"event alarm_raised {aid}")
    span = dt.datetime.fromisoformat(timeline[i_ack][0]) - dt.datetime.fromisoformat(timeline[i_raise][0])
    if span >= dt.timedelta(seconds=2):  # whole seconds in the timeline: at least 1 s
        assert [x for _, k, x in timeline[i_raise:i_ack] if k == "led"].count("off") >= 1
    # Steady on after it; off at the resolution.
    assert "off" not in [x for _, k, x in timeline[i_ack:i_resolve] if k == "led"]
    assert [x for _, k, x in timeline[i_resolve:] if k == "led"][-1:] == ["off"]
    # Back on the schedule: full light before 23:00, steady (the flash was 100/20).
    assert "event mode schedule" in texts[i_resolve:]
    assert [float(x) for _, k, x in timeline if k == "level"][-1] == 100.0
    last = json.loads([p for t, p, _ in sub.messages if t.endswith("/state")][-1])
    assert (last["mode"], last["applied"], last["alarm"]) == ("schedule", 100, None)


def test_button_abuse_never_resets_or_reconfigures(tmp_path):
    # Chatter, spikes, a 45 s hold and a burst of presses: one alarm (the
    # presses add to it), one stuck fault and its clearing, no reset, the
    # configuration untouched (Tasmota resets to defaults on a 40 s hold).
    scn = tmp_path / "abuse.scn"
    lines = [f"config {WIFI_CONFIG}", "start 2026-12-21 18:00", "end 2026-12-21 20:00", "wifi up 18:00"]
    lines += [f"at 19:00:{s:02d} button noise {2 + s % 5}ms" for s in range(0, 20, 2)]
    lines += ["at 19:01 press button for 45s"]
    lines += [f"at 19:03:{s:02d} press button for 150ms" for s in range(0, 40, 1)]
    lines += ["expect 1 alarms at centre", "expect mode alarm at 19:10"]
    scn.write_text("\n".join(lines) + "\n")
    result = simcmd.run(scn)
    assert result.ok, [c for c in result.checks if not c[1]]
    texts = [x for _, k, x in _timeline(result) if k in ("console", "reset")]
    assert [x for _, k, x in _timeline(result) if k == "reset"] == ["power on"]
    assert texts.count("event button_stuck held over 30 s") == 1
    assert texts.count("event button_stuck_cleared released") == 1
    assert not [x for x in texts if x.startswith(("event config", "event restart"))]
