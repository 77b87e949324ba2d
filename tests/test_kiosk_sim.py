"""The check-in kiosk in the simulator: its unmodified firmware, the face module
on its UART, its display on SPI, against Mosquitto (docs/privacy.md,
docs/face-module.md, sim/scenarios/kiosk-morning.scn)."""

from __future__ import annotations

import json
from pathlib import Path

from mqttsub import Subscriber
from parkctl import simcmd
from parkctl.font import find_font, render
from PIL import Image

from sim.cmdsign import SIM_MASTER, derive_key, verify
from sim.cpython import LittleFsVfs
from sim.scenario import load

SCENARIOS = Path(__file__).resolve().parents[1] / "sim" / "scenarios"
MORNING = SCENARIOS / "kiosk-morning.scn"
UNIX_2000 = 946684800


def _flash_records(image: Path) -> list[tuple[str, dict]]:
    """(kind, body) of every event still in the kiosk's journal on its flash."""
    fs = LittleFsVfs(image)
    out = []
    try:
        for name, _, _, _ in fs.ilistdir("/events"):
            if not name.endswith(".log"):
                continue
            with fs.open("/events/" + name) as f:
                for line in f.read().splitlines():
                    _, _, kind, _, rest = line.split(" ", 4)
                    if kind != "ack":
                        out.append((kind, json.loads(rest.rsplit(" ", 1)[0])))
    finally:
        fs.close()
    return out


def _signed(topic: str, payload: bytes) -> bytes:
    body = verify(derive_key(SIM_MASTER, topic.split("/")[3]), topic, payload)
    assert body is not None, f"{topic}: not signed by the kiosk: {payload[:80]!r}"
    return body


def _scenario(tmp_path: Path, body: str) -> Path:
    scn = tmp_path / "kiosk.scn"
    scn.write_text(f"app kiosk\nconfig {SCENARIOS / 'kiosk-g60.json'}\n" + body)
    return scn


def test_a_morning_of_200_check_ins_reaches_the_centre_each_first_one_exactly_once(mosquitto, tmp_path):
    sc = load(MORNING)
    # Who came, and when first, as the scenario's crowd was drawn.
    first: dict[str, int] = {}
    for ev in sorted(sc.events, key=lambda e: e["at"]):
        if ev["do"] == "face" and ev["what"] == "person" and ev["live"] == 1:
            first.setdefault(ev["id"], ev["at"] + UNIX_2000)
    assert len(first) == 200
    flash = tmp_path / "flash.img"
    sub = Subscriber(mosquitto.port, ["park/+/kiosk/+/event"])
    try:
        result = simcmd.run(MORNING, broker=mosquitto.url, flash=flash)
        sub.sync()
    finally:
        sub.close()
    assert result.ok, [c for c in result.checks if not c[1]]
    # Each as the kiosk signed it (its authenticator checked and taken off).
    events = [json.loads(_signed(t, p)) for t, p, _ in sub.messages]
    by_id: dict[str, dict] = {}
    for ev in events:
        assert {"id", "device", "type", "ts"} <= set(ev)
        by_id.setdefault(ev["id"], ev)
    checkins = [ev for ev in by_id.values() if ev["type"] == "checkin"]
    people = [ev["person"] for ev in checkins]
    assert sorted(people) == sorted(first), "each person's first check-in, once, and nothing else"
    for ev in checkins:
        # Those made after the power cut, before NTP, were timed from the uptime.
        assert abs(ev["ts"] - first[ev["person"]]) <= 2, ev
        assert set(ev) == {"id", "device", "type", "ts", "person"}, "a check-in holds the id, time, device"
    # The network was down for half an hour and the power went in the middle of
    # it: check-ins journaled before the cut (boot 1) reached the centre after it.
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    back = next(t for t, kind, text in timeline if kind == "reset" and t > sc.start)
    late = [t for t, kind, text in timeline if kind == "centre" and text.startswith("checkin kiosk-gate-1-")]
    assert late and max(late) > back
    # Privacy: delivered check-ins are gone from the flash once their window is over.
    assert [k for k, _ in _flash_records(flash) if k == "checkin"] == []


def test_the_micropython_interpreter_runs_the_same_morning():
    a = simcmd.run(MORNING, "cpython")
    b = simcmd.run(MORNING, "micropython")
    assert a.ok and b.ok

    def checkins(r):
        return [(e.t, e.text) for e in r.entries if e.kind == "centre" and e.text.startswith("checkin ")]

    assert checkins(a) == checkins(b)
    assert len(checkins(a)) == 200


def test_bad_frames_are_dropped_and_counted_and_refused_faces_leave_nothing(tmp_path):
    scn = _scenario(
        tmp_path,
        "start 2026-12-21 08:00\nend 2026-12-21 08:30\nseed 4\nwifi up 08:00\n"
        "at 08:01 centre roster g60-roster.json\n".replace(
            "g60-roster.json", str(SCENARIOS / "g60-roster.json")
        )
        + "at 08:05 face garbage\n"
        "at 08:06 face 1003 score 0.95 badcrc\n"
        "at 08:07 face unknown score 0.42\n"
        "at 08:08 face 1003 score 0.95 spoof\n"
        "at 08:09 face 1003 score 0.55\n"
        "at 08:10 face 2002 score 0.97\n"  # on the roster, but no longer active
        "at 08:11 face 1003 score 0.95\n"
        "at 08:12 face error camera not found\n"
        'at 08:20 centre sends {"cmd": "status"}\n'
        "expect 1 checkins at centre\n",
    )
    frames = tmp_path / "frames"
    result = simcmd.run(scn, frames=frames)
    assert result.ok, [c for c in result.checks if not c[1]]
    reply = next(
        e.text for e in result.entries if e.kind == "centre" and e.text.startswith("reply to status")
    )
    face = json.loads(reply.split(": ok ", 1)[1])["face"]
    assert face["bad_crc"] + face["malformed"] == 2 and face["bad_crc"] >= 1
    assert face["frames"] == 6  # five faces and the error: good frames all
    assert face["rejected"] == {"unknown": 1, "low_score": 1, "liveness": 1, "not_on_roster": 1}
    assert face["module_errors"] == 1
    # The module's own error is on the screen: the red bar, then its message.
    (png,) = frames.glob("*-081200.png")
    shown = Image.open(png).convert("RGB")
    assert shown.getpixel((5, 5)) == shown.getpixel((230, 30)) != (0, 0, 0)
    assert any(shown.getpixel((x, 40 + 4 * 24 + 8)) == (255, 255, 255) for x in range(240))


def _advance(ch: str, font: Path) -> int:
    """How far the kiosk's pen moves after ch (firmware/kiosk/font.py): a whole
    cell for CJK and the box, the ink and a pixel for ASCII."""
    if ord(ch) >= 0x80:
        return 16
    ink = [x for row in render(ch, font) for x, v in enumerate(row) if v]
    return max(ink) + 2 if ink else 16 // 3


def _cell(frame: Image.Image, x: int, y: int) -> list[list[int]]:
    """16x16 pixels at x, y: 1 where white (the name's ink), 0 elsewhere."""
    return [
        [1 if frame.getpixel((x + i, y + j)) == (255, 255, 255) else 0 for i in range(16)] for j in range(16)
    ]


def test_the_welcome_screen_draws_a_chinese_name_as_the_font_renders_it(tmp_path):
    scn = _scenario(
        tmp_path,
        "start 2026-12-21 08:00\nend 2026-12-21 08:10\nseed 4\nwifi up 08:00\n"
        f"at 08:01 centre roster {SCENARIOS / 'g60-roster.json'}\n"
        "at 08:03:30 face 1003 score 0.95\n"
        "at 08:06:30 face 2001 score 0.95\n",
    )
    frames = tmp_path / "frames"
    result = simcmd.run(scn, frames=frames)
    assert any(e.kind == "buzzer" for e in result.entries)
    roster = {p[0]: p[1] for p in json.loads((SCENARIOS / "g60-roster.json").read_text())["people"]}
    font = find_font()

    def welcome(hhmmss: str) -> Image.Image:
        (png,) = frames.glob(f"*-{hhmmss}.png")
        return Image.open(png).convert("RGB")

    y0 = 40 + 3 * 24  # the welcome screen's name line (firmware/kiosk/screens.py)

    def cells(name: str) -> list[int]:
        """Where each character of a centred name starts."""
        widths = [_advance(ch, font) for ch in name]
        x = (240 - sum(widths)) // 2
        out = []
        for w in widths:
            out.append(x)
            x += w
        return out

    name = roster["1003"]
    frame = welcome("080330")
    for k, (ch, x) in enumerate(zip(name, cells(name), strict=True)):
        assert _cell(frame, x, y0) == render(ch, font), f"glyph {k} ({ch}) differs from the font's"
    # "Zoë Li": ë is not in the font (ASCII and GB2312 level 1): a box, not a gap or a crash.
    frame = welcome("080630")
    name = roster["2001"]
    xs = cells(name)
    box = _cell(frame, xs[name.index("ë")], y0)
    assert box[1] == [1] * 16 and box[14] == [1] * 16
    assert all(row[1] for row in box[1:15])
    z = _cell(frame, xs[0], y0)
    assert [row[: _advance("Z", font)] for row in z] == [
        row[: _advance("Z", font)] for row in render("Z", font)
    ]


def test_the_kiosks_clock_keeps_the_worlds_minute_after_an_ntp_sync(tmp_path):
    """ntptime gives whole seconds; the RTC set to the start of that second ran
    behind the world's by up to a second: a check-in at 07:46:00 was welcomed at
    07:45 and sent with 07:45:59, and the idle clock turned a second late."""
    import re
    from datetime import UTC, datetime

    scn = _scenario(
        tmp_path,
        "start 2026-12-21 07:30\nend 2026-12-21 07:50\nseed 8\nwifi up 07:30\n"
        f"at 07:31 centre roster {SCENARIOS / 'g60-roster.json'}\n"
        "at 07:46 face 1003 score 0.95\n",
    )
    frames = tmp_path / "frames"
    result = simcmd.run(scn, frames=frames)
    sent = [e.text for e in result.entries if e.kind == "centre" and e.text.startswith("checkin ")]
    assert len(sent) == 1, sent
    ts = int(re.search(r" ts (\d+)", sent[0]).group(1))  # type: ignore[union-attr]
    # 07:46:00 in the park (CST-8) is 23:46:00 UTC the day before.
    assert datetime.fromtimestamp(ts, UTC) == datetime(2026, 12, 20, 23, 46, 0, tzinfo=UTC)
    # The idle screen's clock is redrawn as the world's minute turns, not a second later.
    idle = sorted(p.name[-10:-4] for p in frames.glob("*-07[34]?0?.png") if p.name[-10:-6] >= "0747")
    assert idle and all(t.endswith("00") for t in idle), idle


def test_a_configuration_from_the_centre_is_on_trial_and_one_that_strands_the_kiosk_rolls_back(
    mosquitto, tmp_path
):
    cfg = json.loads((SCENARIOS / "kiosk-g60.json").read_text())
    shorter = json.loads(json.dumps(cfg))
    shorter["checkin"]["show_s"] = 5
    shorter["network"]["broker"] = mosquitto.url
    stranded = json.loads(json.dumps(shorter))
    stranded["network"]["broker"] = "mqtt://127.0.0.1:1"  # nobody there
    bad = {"site": {"tz": "Mars"}, "checkin": {"window_s": -1}}
    scn = _scenario(
        tmp_path,
        "start 2026-12-21 08:00\nend 2026-12-21 09:00\nwifi up 08:00\n"
        f'at 08:05 centre sends {{"cmd": "config", "config": {json.dumps(bad)}}}\n'
        f'at 08:10 centre sends {{"cmd": "config", "config": {json.dumps(shorter)}}}\n'
        f'at 08:20 centre sends {{"cmd": "config", "config": {json.dumps(stranded)}}}\n'
        'at 08:45 centre sends {"cmd": "status"}\n',
    )
    result = simcmd.run(scn, broker=mosquitto.url)
    centre = [e.text for e in result.entries if e.kind == "centre"]
    refused = next(t for t in centre if t.startswith("reply to config centre-1: refused: "))
    assert "site.tz" in refused and "checkin.window_s" in refused
    assert 'reply to config centre-2: ok {"restart_in_s": 2}' in centre
    assert 'reply to config centre-3: ok {"restart_in_s": 2}' in centre
    console = [e.text for e in result.entries if e.kind == "console"]
    assert "event config new configuration confirmed: the centre is reachable" in console
    assert "event config no contact with the centre with the new configuration: rolled back" in console
    # Back on the last good one (reaching the centre again), which answers.
    assert any(t.startswith("reply to status centre-4: ok ") for t in centre)


def _config(tmp_path: Path, **checkin) -> Path:
    cfg = json.loads((SCENARIOS / "kiosk-g60.json").read_text())
    cfg["checkin"].update(checkin)
    path = tmp_path / "kiosk.json"
    path.write_text(json.dumps(cfg))
    return path


def test_purge_erases_one_persons_check_ins_from_the_flash_and_nothing_else(tmp_path):
    # A repeat window of an hour keeps delivered check-ins on flash for that long:
    # the purge has something to find.
    cfg = _config(tmp_path, window_s=3600)
    scn = tmp_path / "purge.scn"
    scn.write_text(
        f"app kiosk\nconfig {cfg}\nstart 2026-12-21 08:00\nend 2026-12-21 08:30\nwifi up 08:00\n"
        f"at 08:01 centre roster {SCENARIOS / 'g60-roster.json'}\n"
        "at 08:03 face 1003 score 0.95\n"
        "at 08:04 face 1005 score 0.95\n"
        'at 08:10 centre sends {"cmd": "purge", "person": "1003"}\n'
        'at 08:11 centre sends {"cmd": "purge"}\n'
        "at 08:15 face 1003 score 0.95\n"  # forgotten: a new check-in
    )
    flash = tmp_path / "flash.img"
    result = simcmd.run(scn, flash=flash)
    centre = [e.text for e in result.entries if e.kind == "centre"]
    assert 'reply to purge centre-1: ok {"erased": 1}' in centre
    assert any(t.startswith('reply to purge centre-2: refused: "person" must be') for t in centre)
    left = [(body["person"], body["ts"]) for kind, body in _flash_records(flash) if kind == "checkin"]
    t_1005 = load(scn).start + 4 * 60 + UNIX_2000
    t_1003 = load(scn).start + 15 * 60 + UNIX_2000
    # Times to the second: ntptime gives whole seconds, so the kiosk's clock may
    # lag the true time by a fraction of one.
    assert [p for p, _ in left] == ["1005", "1003"]
    assert 0 <= t_1005 - left[0][1] <= 1 and 0 <= t_1003 - left[1][1] <= 1
    assert len([t for t in centre if t.startswith("checkin ")]) == 3


def test_check_ins_never_sent_are_erased_after_the_retention_and_the_centre_told(tmp_path):
    cfg = _config(tmp_path, retention_days=1)
    scn = tmp_path / "retention.scn"
    scn.write_text(
        f"app kiosk\nconfig {cfg}\nstart 2026-12-21 08:00\nend 2026-12-23 12:00\nwifi up 08:00\n"
        f"at 08:01 centre roster {SCENARIOS / 'g60-roster.json'}\n"
        "wifi down 08:02 - 2026-12-23 09:00\n"
        "at 08:05 face 1003 score 0.95\n"
        "at 2026-12-22 10:00 face 1005 score 0.95\n"
    )
    flash = tmp_path / "flash.img"
    result = simcmd.run(scn, flash=flash)
    centre = [e.text for e in result.entries if e.kind == "centre"]
    # 1003's, over a day old, was erased unsent; 1005's, 23 hours old, went.
    assert [t.split(" person ")[1].split()[0] for t in centre if t.startswith("checkin ")] == ["1005"]
    assert any(t.startswith("checkins_expired from kiosk-gate: 1 undelivered") for t in centre)
    assert [b["person"] for k, b in _flash_records(flash) if k == "checkin"] == []


def test_a_damaged_roster_is_refused_with_the_reason_and_the_one_in_force_stays(tmp_path):
    newer = tmp_path / "roster-v4.json"
    data = json.loads((SCENARIOS / "g60-roster.json").read_text())
    newer.write_text(json.dumps({"version": 4, "people": data["people"][:3]}, ensure_ascii=False))
    scn = _scenario(
        tmp_path,
        "start 2026-12-21 08:00\nend 2026-12-21 08:30\nwifi up 08:00\n"
        f"at 08:01 centre roster {SCENARIOS / 'g60-roster.json'}\n"
        f"at 08:05 centre roster {newer} damaged\n"
        f"at 08:06 face {data['people'][100][0]} score 0.95\n"  # in version 3 only
        f"at 08:10 centre roster {newer}\n"
        f"at 08:12 face {data['people'][101][0]} score 0.95\n"  # not in version 4
        f"at 08:13 face {data['people'][1][0]} score 0.95\n"
        "expect 2 checkins at centre\n",
    )
    result = simcmd.run(scn)
    assert result.ok, [c for c in result.checks if not c[1]]
    centre = [e.text for e in result.entries if e.kind == "centre"]
    assert "roster from kiosk-gate: version 3, 240 people" in centre
    assert (
        "roster_refused from kiosk-gate: the checksum does not match the body: damaged or cut short" in centre
    )
    assert "roster from kiosk-gate: version 4, 3 people" in centre
    people = [t.split(" person ")[1].split()[0] for t in centre if t.startswith("checkin ")]
    assert people == [data["people"][100][0], data["people"][1][0]]
