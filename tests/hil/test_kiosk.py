"""The check-in kiosk on a board: the virtual one (`--board vboard` or
`vboard:kiosk`, in `make test`) with the face module, panel and buzzer of the
simulator's world; against Mosquitto as the centre's broker. It speaks only to
the board, the rig and the broker (docs/hil.md). A real kiosk on the bench runs
the tests that need no rig; the rest are skipped, naming what is missing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqttsub import Subscriber
from paho.mqtt.enums import CallbackAPIVersion
from parkctl.hil import HIL_COMMAND_KEY, Board, Rig

from sim.cmdsign import derive_key, verify
from sim.scenario import roster_update

ROOT = Path(__file__).resolve().parents[2]
ROSTER = ROOT / "sim" / "scenarios" / "g60-roster.json"
PERSON = "1003"  # on that roster, active
CST_S = 8 * 3600  # the kiosk's time zone, CST-8 (firmware/kiosk/config.json), east of UTC
SITE = "hil"  # the harness's site and device (parkctl.hil._device_config)
DEVICE = "hil-kiosk"
EVENTS = f"park/{SITE}/kiosk/{DEVICE}/event"
UP = rb"event mqtt up"
REJECTED = {"liveness": 0, "unknown": 0, "low_score": 0, "not_on_roster": 0}  # the console's `face`


@pytest.fixture
def hil_app() -> str:
    return "kiosk"


@pytest.fixture
def centre(broker) -> Iterator[Subscriber]:
    """The centre's side: everything the kiosk publishes, from before it connects."""
    sub = Subscriber(broker.port, [f"park/{SITE}/kiosk/#"])
    try:
        yield sub
    finally:
        sub.close()


def _publish_roster(broker) -> dict:
    """The centre's roster, retained as the centre keeps it; returns the file's content."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-centre-{broker.port}")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        info = c.publish(f"park/{SITE}/kiosk/roster", roster_update(ROSTER), 1, retain=True)
        info.wait_for_publish(10)
    finally:
        c.loop_stop()
        c.disconnect()
    return json.loads(ROSTER.read_text())


def _events(sub: Subscriber, kind: str) -> list[dict]:
    out = []
    for topic, payload, _ in list(sub.messages):
        if topic == EVENTS:
            ev = json.loads(payload)
            if ev.get("type") == kind:
                out.append(ev)
    return out


def _is(kind: str, **fields):
    def match(topic: str, payload: bytes) -> bool:
        if topic != EVENTS:
            return False
        ev = json.loads(payload)
        return ev.get("type") == kind and all(ev.get(k) == v for k, v in fields.items())

    return match


def _face(board: Board) -> dict:
    reply = board.console("face")
    assert reply["ok"], reply
    return reply["data"]


def _with_roster(board: Board, broker, centre: Subscriber) -> dict:
    """The kiosk connected, with the centre's roster installed."""
    roster = _publish_roster(broker)
    board.expect(UP, timeout=20)
    centre.wait_for(_is("roster"), timeout=10)
    return roster


def _checked_in(board: Board, rig: Rig, centre: Subscriber, person: str) -> dict:
    """`person` at the face module: the check-in at the centre, the buzzer's beep
    and the welcome screen on the panel."""
    frames, beeps = rig.frames(), rig.beeps()
    rig.face(person)
    topic, payload = centre.wait_for(_is("checkin", person=person), timeout=5)
    rig.wait_for("the buzzer beeps", lambda: rig.beeps() == beeps + 1, timeout=5)
    rig.wait_for("the welcome screen is drawn", lambda: rig.frames() > frames, timeout=5)
    # As the kiosk signed it (docs/security.md): its authenticator checked and taken off.
    signed = verify(derive_key(HIL_COMMAND_KEY, DEVICE), topic, payload)
    assert signed is not None, f"the check-in is not signed with {DEVICE}'s key"
    return json.loads(signed)


def test_boots_reports_its_build_and_answers_every_console_command(board: Board, centre: Subscriber) -> None:
    board.expect(UP, timeout=20)
    st = board.status()
    assert st["app"] == "kiosk" and st["device"] == DEVICE
    assert st["version"] == board.manifest["version"]  # type: ignore[attr-defined]
    assert st["manifest"] == board.manifest["hash"]  # type: ignore[attr-defined]
    assert st["roster"] == 0 and st["people"] == 0  # nothing from the centre yet
    for cmd in ("help", "log 5", "time", "config get", "face"):
        reply = board.console(cmd)
        assert reply["ok"], reply
    assert not board.console("purge")["ok"]  # whose?
    assert not board.console("nonsense")["ok"]
    # Its boot reached the centre, with its state (retained).
    centre.wait_for(_is("boot"), timeout=10)
    _, state = centre.wait_for(lambda t, p: t == f"park/{SITE}/kiosk/{DEVICE}/state", timeout=10)
    assert json.loads(state)["device"] == DEVICE


def test_the_centres_roster_is_installed_and_reported(
    board: Board, rig: Rig, broker, centre: Subscriber
) -> None:
    rig.needs("face")
    board.expect(UP, timeout=20)
    # Before any roster: a face is seen, but nobody can be checked in.
    rig.face(PERSON)
    rig.wait_for("the kiosk reads the frame", lambda: _face(board)["frames"] == 1)
    assert board.status()["today"] == 0
    roster = _publish_roster(broker)
    _, payload = centre.wait_for(_is("roster"), timeout=10)
    assert f"version {roster['version']}, {len(roster['people'])} people" in payload.decode()
    st = board.status()
    assert (st["roster"], st["people"]) == (roster["version"], len(roster["people"]))
    centre.wait_for(
        lambda t, p: t.endswith("/state") and json.loads(p).get("roster") == roster["version"], timeout=10
    )


def test_a_known_face_checks_in_once_within_the_window(
    board: Board, rig: Rig, broker, centre: Subscriber
) -> None:
    rig.needs("face", "display", "buzzer")
    _with_roster(board, broker, centre)
    ev = _checked_in(board, rig, centre, PERSON)
    assert set(ev) == {"id", "device", "type", "person", "ts"}
    assert ev["device"] == DEVICE
    assert abs(ev["ts"] - time.time()) < 60
    beeps, frames = rig.beeps(), rig.frames()
    rig.face(PERSON)  # again, within the window (300 s)
    rig.wait_for("the repeat is counted", lambda: _face(board)["repeats"] == 1)
    rig.wait_for("the 'already checked in' screen is drawn", lambda: rig.frames() > frames)
    assert rig.beeps() == beeps
    st = board.status()
    # One check-in today, unless the park's midnight (CST-8, the shipped zone) fell
    # since: the count is the local day's, and the board keeps the wall clock's time.
    same_day = (st["ts"] + CST_S) // 86400 == (ev["ts"] + CST_S) // 86400
    assert st["today"] == (1 if same_day else 0) and st["pending"] == 0
    centre.sync()
    assert [e["person"] for e in _events(centre, "checkin")] == [PERSON]


def test_a_photo_and_an_unknown_face_check_nobody_in(
    board: Board, rig: Rig, broker, centre: Subscriber
) -> None:
    rig.needs("face", "buzzer")
    _with_roster(board, broker, centre)
    beeps = rig.beeps()
    rig.face(PERSON, live=False)  # a photo of someone on the roster, held up
    rig.face(None)
    rig.wait_for(
        "both refused", lambda: _face(board)["rejected"] == {**REJECTED, "liveness": 1, "unknown": 1}
    )
    assert rig.beeps() == beeps
    assert board.status()["today"] == 0
    _checked_in(board, rig, centre, PERSON)  # and the person in the flesh is welcome


def test_garbage_and_damaged_frames_on_the_face_line_are_counted_and_the_kiosk_keeps_working(
    board: Board, rig: Rig, broker, centre: Subscriber
) -> None:
    rig.needs("face")
    _with_roster(board, broker, centre)
    for _ in range(3):
        rig.face_line("garbage")
    rig.face_line("badcrc", PERSON)

    def dropped() -> bool:
        f = _face(board)
        return f["malformed"] + f["bad_crc"] == 4 and f["bad_crc"] >= 1

    rig.wait_for("all four dropped and counted", dropped)
    assert board.status()["today"] == 0
    _checked_in(board, rig, centre, PERSON)
    assert _face(board)["frames"] == 1


def test_purge_erases_a_persons_check_ins_from_the_kiosk(
    board: Board, rig: Rig, broker, centre: Subscriber
) -> None:
    rig.needs("face")
    _with_roster(board, broker, centre)
    _checked_in(board, rig, centre, PERSON)
    reply = board.console(f"purge {PERSON}")
    assert reply["ok"] and reply["data"] == {"person": PERSON, "erased": 1}, reply
    assert board.console(f"purge {PERSON}")["data"]["erased"] == 0
    assert board.console("purge 1005")["data"]["erased"] == 0  # never came


def test_deploy_round_trip_changes_the_version(board: Board, tmp_path: Path) -> None:
    board.expect(UP, timeout=20)
    old = board.status()["manifest"]
    done = board.deploy_edited("screens.py", tmp_path)
    assert done.copied == ["/screens.mpy"]
    st = board.status()
    assert st["manifest"] == done.hash != old and st["app"] == "kiosk"
