"""The alarm end to end, in the simulator, over a real broker: a press on the
pole reaches the centre, the centre's acknowledgement and resolution reach the
pole, and no alarm is lost to Wi-Fi outages or power cuts. The firmware runs
unmodified; the tests read the timeline and listen at the broker themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mqttsub import Subscriber
from parkctl import simcmd
from test_cli_sun import parkctl

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
    # Garbage on the command topic is refused with a reason and changes nothing.
    assert "reply to None None: refused: not JSON" in centre
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


def test_every_alarm_reaches_mosquitto_once_after_dedupe(mosquitto, tmp_path):
    # Wi-Fi flaps, a press while it is down, a power cut before it can be sent,
    # a second press after: the centre gets both, each with its own id.
    scn = tmp_path / "outages.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 23:59\nseed 5\n"
        "wifi up 18:00\n"
        "wifi down 22:00 - 22:20\n"
        "at 22:03 press button for 300ms\n"
        "power off 22:05 - 22:06\n"
        "at 22:30 centre ack\n"
        "at 22:31 centre resolve\n"
        "at 22:40 press button for 2s\n"
        "expect 2 alarms at centre\n"
        "expect an alarm at centre by 22:25\n"
        # Back from the power cut, the pole shows the open alarm again.
        "expect mode alarm at 22:07\n"
        "expect mode schedule at 22:35\n"
    )
    sub = Subscriber(mosquitto.port, ["park/+/lamp/+/event", "park/+/lamp/+/state", "park/+/lamp/+/status"])
    try:
        result = simcmd.run(scn, broker=mosquitto.url)
        sub.sync()
    finally:
        sub.close()
    assert result.ok, [c for c in result.checks if not c[1]]
    centre = [e.text for e in result.entries if e.kind == "centre"]
    assert "reply to ack centre-1: ok" in centre and "reply to resolve centre-2: ok" in centre
    events = [json.loads(p) for t, p, _ in sub.messages if t.endswith("/event")]
    by_id: dict[str, dict] = {}
    for ev in events:
        assert {"id", "device", "type", "ts"} <= set(ev)
        by_id.setdefault(ev["id"], ev)
    raised = sorted(i for i, ev in by_id.items() if ev["type"] == "alarm_raised")
    assert raised == sorted(_raised_on_device(result))
    assert len(raised) == 2
    # The second alarm was never acknowledged: the retained state says it is open.
    states = [json.loads(p) for t, p, retain in sub.messages if t.endswith("/state")]
    assert states[-1]["alarm"]["id"] == _raised_on_device(result)[-1]
    assert states[-1]["alarm"]["state"] == "delivered"
    # Switched off at the end without a goodbye: the broker says offline for it.
    statuses = [p for t, p, _ in sub.messages if t.endswith("/status")]
    assert statuses[-1] == b"offline"


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
    proc = parkctl("ack", aid, "--broker", mosquitto.url, "--timeout", "0.5")
    assert proc.returncode == 2
    assert "did not reply" in proc.stderr and "Traceback" not in proc.stderr
    # Bad input: a malformed id, an unknown lamp, an unreachable broker.
    for args, message in (
        (["ack", "nonsense", "--broker", mosquitto.url], "not an alarm id"),
        (["resolve", "lamp-ffff-1-2", "--broker", mosquitto.url], "no lamp"),
        (["alarms", "--broker", "mqtt://127.0.0.1:1"], "cannot reach the broker"),
    ):
        proc = parkctl(*args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)


def test_broker_killed_mid_delivery_and_back_two_minutes_later(tmp_path):
    # The broker hangs just before the press (the raise is written to a
    # connection nobody reads), is killed with it unacknowledged, and comes back
    # two minutes later: the alarm arrives, once, sent again from the lamp's
    # in-flight table (DUP).
    scn = tmp_path / "kill.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 23:00\nwifi up 18:00\n"
        "broker hangs 22:02:59\n"
        "at 22:03 press button for 300ms\n"
        "broker down 22:03:10 - 22:05:10\n"
        "at 22:08 centre ack\n"
        "expect 1 alarms at centre\n"
        "expect an alarm at centre by 22:06\n"
    )
    result = simcmd.run(scn, broker="mosquitto")
    assert result.ok, [c for c in result.checks if not c[1]]
    timeline = _timeline(result)
    killed = next(t for t, k, x in timeline if k == "broker" and x == "killed")
    back = next(t for t, k, x in timeline if k == "broker" and x == "back")
    assert back - killed == 120
    delivered = [t for t, k, x in timeline if x.startswith("event alarm_delivered")]
    assert len(delivered) == 1 and delivered[0] >= back
    assert any(k == "centre" and x == "reply to ack centre-1: ok" for _, k, x in timeline)


def test_the_embedded_broker_can_be_killed_too():
    text = (
        (SCENARIOS / "alarm-night.scn")
        .read_text()
        .replace("at 22:04 centre garbage", "broker down 22:03:30 - 22:04:30")
    )
    result = simcmd.run(_write(text), broker="embedded")
    assert result.ok, [c for c in result.checks if not c[1]]


def _write(text: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "s.scn"
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
    import subprocess

    from test_cli_sun import PARKCTL

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
        proc = parkctl("ack", aid, "--broker", mosquitto.url)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"{aid}: acknowledged"
        sub.wait_for(
            lambda t, p: (
                t.endswith("/state") and (json.loads(p)["alarm"] or {}).get("state") == "acknowledged"
            )
        )
        proc = parkctl("resolve", aid, "--broker", mosquitto.url)
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
    # Blinking before the acknowledgement; steady on after it; off at the resolution.
    assert [x for _, k, x in timeline[:i_ack] if k == "led"].count("off") >= 1
    assert "off" not in [x for _, k, x in timeline[i_ack:i_resolve] if k == "led"]
    assert [x for _, k, x in timeline[i_resolve:] if k == "led"][-1:] == ["off"]
    # Back on the schedule: full light before 23:00, steady (the flash was 100/20).
    assert "event mode schedule" in texts[i_resolve:]
    assert [float(x) for _, k, x in timeline if k == "level"][-1] == 100.0
    last = json.loads([p for t, p, _ in sub.messages if t.endswith("/state")][-1])
    assert (last["mode"], last["applied"], last["alarm"]) == ("schedule", 100, None)


def test_a_week_of_presses_and_outages_loses_no_alarm(mosquitto, tmp_path):
    # 1,000 presses at random over a week, the centre resolving each 20 s later
    # (when it can), Wi-Fi outages and power cuts at random: every alarm the lamp
    # raised is at the centre at the end, once.
    import datetime as dt
    import random

    rnd = random.Random(7)
    t0 = dt.datetime(2026, 12, 21, 12, 0, 0)
    week = 7 * 86400

    def at(s: int) -> str:
        return (t0 + dt.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S")

    lines = [f"config {WIFI_CONFIG}", f"start {at(0)}", f"end {at(week)}", f"wifi up {at(0)}", "seed 11"]
    presses = sorted(rnd.sample(range(60, week - 600, 30), 1000))
    for s in presses:
        lines += [
            f"at {at(s)} press button for {rnd.choice([200, 400, 900, 3000])}ms",
            f"at {at(s + 20)} centre resolve",
        ]
    busy = set()
    for _ in range(40):  # Wi-Fi outages of 1 to 30 minutes
        s = rnd.randrange(600, week - 3600)
        lines.append(f"wifi down {at(s)} - {at(s + rnd.randrange(60, 1800))}")
    for _ in range(15):  # power cuts of 10 s to 10 minutes, away from each other
        s = rnd.randrange(600, week - 3600) // 3600 * 3600 + 1800
        if s not in busy:
            busy.add(s)
            lines.append(f"power off {at(s)} - {at(s + rnd.randrange(10, 600))}")
    scn = tmp_path / "week.scn"
    scn.write_text("\n".join(lines) + "\n")
    result = simcmd.run(scn, broker=mosquitto.url)
    raised = set(_raised_on_device(result))
    at_centre = [
        e.text.split()[1] for e in result.entries if e.kind == "centre" and e.text.startswith("alarm_raised ")
    ]
    assert len(raised) > 500  # most presses raised their own alarm
    assert sorted(at_centre) == sorted(raised)


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_power_cut_in_the_middle_of_a_journal_write(mosquitto, tmp_path, runtime):
    # An alarm waits in the journal (no Wi-Fi); the power goes in the middle of
    # the next journal write (the 23:00 level change). After the power is back
    # the pole still shows the alarm, the journal takes new events, and when
    # the Wi-Fi returns both alarms reach the centre.
    scn = tmp_path / "cut.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-22 01:00\nwifi up 18:00\n"
        "wifi down 22:00 - 23:30\n"
        "at 22:03 press button for 300ms\n"
        "power cut mid-write 22:59:59 - 23:05\n"
        "expect mode alarm at 23:06\n"
        "at 23:40 centre resolve\n"
        "at 23:50 press button for 300ms\n"
        "expect 2 alarms at centre\n"
        "expect an alarm at centre by 23:35\n"
    )
    result = simcmd.run(scn, runtime, broker=mosquitto.url)
    assert result.ok, [c for c in result.checks if not c[1]]
    texts = [x for _, _, x in _timeline(result)]
    assert "mains cut in the middle of a flash write" in texts
    cut = texts.index("mains cut in the middle of a flash write")
    # Nothing more from the board once its power is gone.
    assert not [x for x in texts[cut : texts.index("mains back")] if x.startswith(("event", "Traceback"))]
