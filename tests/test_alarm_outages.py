"""Alarms through outages, in the simulator, against Mosquitto: Wi-Fi loss,
power cuts (one in the middle of a journal write), a broker killed mid-delivery,
a week of presses. Every alarm the lamp raised reaches the centre, once after
dedupe by id."""

from __future__ import annotations

import json

import pytest
from mqttsub import Subscriber
from parkctl import simcmd
from test_alarm_sim import WIFI_CONFIG, _raised_on_device, _timeline


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
    # The first flash operation after 22:59:59 (an erase or a program) is torn.
    cuts = [i for i, x in enumerate(texts) if x.startswith("mains cut in the middle of a flash ")]
    assert len(cuts) == 1
    cut = cuts[0]
    # Nothing more from the board once its power is gone.
    assert not [x for x in texts[cut : texts.index("mains back")] if x.startswith(("event", "Traceback"))]
