"""`parkctl rollout` (docs/updates.md, "Rolling a release over a fleet"): the
rollout's state machine driven message by message in virtual time, with
simulated devices that follow the transfer protocol; then the command against
a real Mosquitto with scripted devices (the firmware's updater is not in this
branch yet)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from parkctl.rollout import (
    CHUNK_MAX,
    DONE,
    Release,
    Rollout,
    parse_waves,
    wave_sizes,
)

from sim.cmdsign import SIM_MASTER, derive_key, sign, verify

MASTER = SIM_MASTER


def make_release(version: str = "1.2.0", sizes=(3000, 10, 2048), app: str = "lamp") -> Release:
    files = {}
    for i, n in enumerate(sizes):
        files["main.py" if i == 0 else f"lib/m{i}.mpy"] = bytes((i * 7 + j) % 251 for j in range(n))
    files["manifest.json"] = b'{"app":"lamp"}'
    manifest = {
        "format": 1,
        "app": app,
        "chips": ["vboard"],
        "version": version,
        "downgrade_ok": False,
        "key": "0" * 16,
        "build": {},
        "files": [
            {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
            for p, b in sorted(files.items())
        ],
    }
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return Release(data, bytes(range(64)), files)


def fleet(n: int, version: str | None = "1.1.0") -> dict[str, tuple[str, str | None]]:
    return {f"lamp-{i:03d}": (f"park/p1/lamp/lamp-{i:03d}", version) for i in range(n)}


def new_rollout(release: Release, devices, **kw) -> Rollout:
    count = iter(range(1, 1 << 30))
    return Rollout(release, devices, MASTER, lambda: next(count), "t1", **kw)


def signed(dev: str, kind: str, obj: dict) -> tuple[str, bytes]:
    topic = f"park/p1/lamp/{dev}/{kind}"
    return topic, sign(derive_key(MASTER, dev), topic, json.dumps(obj).encode())


def commands(outs) -> list[tuple[str, dict]]:
    """The commands among what the rollout publishes: (device, command), checked
    to carry the device's own authenticator."""
    got = []
    for topic, payload, qos in outs:
        if topic.endswith("/cmd"):
            dev = topic.split("/")[3]
            body = verify(derive_key(MASTER, dev), topic, payload)
            assert body is not None, "a command not signed with the device's key"
            assert qos == 1
            got.append((dev, json.loads(body)))
    return got


class Device:
    """A device as docs/updates.md describes it: takes the update command, asks
    for each piece in order, checks each file's sha256, switches, and then is
    healthy, crashes at import (rolls back), or never says anything."""

    def __init__(self, dev: str, version: str, behaviour: str = "good"):
        self.dev, self.version, self.behaviour = dev, version, behaviour
        self.offers = 0
        self.cancelled = False
        self.ask = None  # (path, offset, length) asked and not answered
        self.release = None
        self.got: dict[str, bytearray] = {}

    def handle(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        kind = topic.rsplit("/", 1)[1]
        if kind == "cmd":
            body = verify(derive_key(MASTER, self.dev), topic, payload)
            assert body is not None
            cmd = json.loads(body)
            if cmd.get("cancel"):
                self.cancelled, self.ask = True, None
                return [signed(self.dev, "reply", {"id": cmd["id"], "cmd": "update", "ok": True})]
            self.offers += 1
            if self.behaviour == "silent":
                return []
            if self.behaviour == "refuse":
                return [
                    signed(
                        self.dev, "reply", {"id": cmd["id"], "cmd": "update", "ok": False, "reason": "busy"}
                    )
                ]
            self.release = cmd["release"]
            self.manifest_size = cmd["size"]
            out = [signed(self.dev, "reply", {"id": cmd["id"], "ok": True, "result": {"state": "fetching"}})]
            return out + self._next("release.json", 0, cmd["size"])
        if kind == "chunk":
            c = json.loads(payload)
            assert self.ask is not None and (c["path"], c["offset"]) == self.ask[:2]
            data = base64.b64decode(c["data"])
            assert len(data) == self.ask[2]
            self.got.setdefault(c["path"], bytearray()).extend(data)
            return self._after_chunk()
        return []

    def _next(self, path, offset, total):
        n = min(CHUNK_MAX, total - offset)
        self.ask = (path, offset, n)
        ask = {"release": self.release, "path": path, "offset": offset, "length": n}
        return [(f"park/p1/lamp/{self.dev}/fetch", json.dumps(ask).encode())]

    def _after_chunk(self):
        if len(self.got["release.json"]) < self.manifest_size:
            return self._next("release.json", len(self.got["release.json"]), self.manifest_size)
        m = json.loads(self.got["release.json"])
        assert hashlib.sha256(self.got["release.json"]).hexdigest() == self.release
        for e in m["files"]:
            have = len(self.got.get(e["path"], b""))
            if have < e["size"]:
                return self._next(e["path"], have, e["size"])
            assert hashlib.sha256(self.got[e["path"]]).hexdigest() == e["sha256"]
        self.ask = None
        new = m["version"]
        if self.behaviour == "crash":
            ev = {
                "type": "update_rolled_back",
                "version": new,
                "to": self.version,
                "detail": "ImportError: x",
            }
            return [
                signed(self.dev, "event", ev),
                signed(self.dev, "state", {"app": {"version": self.version, "trial": False}}),
            ]
        self.version = new
        return [
            signed(self.dev, "state", {"app": {"version": new, "trial": True}}),
            signed(self.dev, "state", {"app": {"version": new, "trial": False}}),
            signed(self.dev, "event", {"type": "update_done", "version": new, "from": "1.1.0"}),
        ]


def run_fleet(rollout: Rollout, devices: dict[str, Device], until: float = 100000.0) -> list:
    """Deliver everything both ways until nothing moves, then jump the clock to the
    next deadline; every output of the rollout is returned."""
    now = 0.0
    sent = []
    queue = list(rollout.start(now))
    while True:
        while queue:
            topic, payload, _ = queue.pop(0)
            sent.append((topic, payload))
            for t, p in devices[topic.split("/")[3]].handle(topic, payload):
                queue += rollout.message(t, p, now)
        if rollout.finished:
            return sent
        nxt = rollout.next_deadline()
        assert nxt is not None and nxt <= until, "the rollout waits with no deadline"
        now = nxt
        queue += rollout.tick(now)


# ---- waves ---------------------------------------------------------------------


@given(
    n=st.integers(0, 500),
    spec=st.lists(
        st.one_of(
            st.integers(1, 600).map(str),
            st.fractions(Fraction(1, 100), 100).map(lambda f: f"{float(f):.2f}%"),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_waves_are_cumulative_each_adds_a_device_and_the_last_covers_all(n, spec):
    entries = parse_waves(",".join(spec))
    sizes = wave_sizes(entries, n)
    if n == 0:
        assert sizes == []
        return
    assert sizes[-1] == n
    assert sizes[0] >= 1
    assert all(b > a for a, b in itertools.pairwise(sizes))
    assert len(sizes) <= len(spec) + 1
    # Each wave reaches the target its entry asked for (rounded up), or all.
    for (kind, value), size in zip(entries, sizes, strict=False):
        want = -(-value * n // 100) if kind == "percent" else value
        assert size >= min(n, want)


def test_the_default_waves_for_a_hundred_lamps():
    assert wave_sizes(parse_waves("1,5%,25%,100%"), 100) == [1, 5, 25, 100]
    assert wave_sizes(parse_waves("1,5%,25%,100%"), 3) == [1, 2, 3]
    assert wave_sizes(parse_waves("10"), 4) == [4]


@pytest.mark.parametrize("spec", ["", "0", "-1", "5%%", "101%", "x", "1,,2", "0%"])
def test_a_bad_wave_list_says_which_entry(spec):
    with pytest.raises(ValueError, match="--waves"):
        parse_waves(spec)


# ---- serving pieces ----------------------------------------------------------------


@given(
    path=st.sampled_from(
        ["release.json", "main.py", "lib/m1.mpy", "lib/m2.mpy", "manifest.json", "nosuch.py"]
    ),
    offset=st.integers(-2, 3100),
    length=st.integers(-1, 1100),
)
def test_a_fetch_is_answered_with_exactly_the_bytes_asked_or_not_at_all(path, offset, length):
    release = make_release()
    r = new_rollout(release, fleet(2))
    r.start(0.0)
    ask = {"release": release.rid, "path": path, "offset": offset, "length": length}
    outs = r.message("park/p1/lamp/lamp-000/fetch", json.dumps(ask).encode(), 1.0)
    data = release.pieces.get(path)
    good = data is not None and offset >= 0 and 1 <= length <= CHUNK_MAX and offset + length <= len(data)
    if not good:
        assert outs == [] and r.bad_fetches == 1
        return
    assert data is not None
    [(topic, payload, qos)] = outs
    assert topic == "park/p1/lamp/lamp-000/chunk" and qos == 0
    chunk = json.loads(payload)
    assert chunk["release"] == release.rid and chunk["path"] == path and chunk["offset"] == offset
    assert base64.b64decode(chunk["data"]) == data[offset : offset + length]
    assert len(payload) + len(topic) < 2048 - 16  # fits a lamp's packet


def test_fetches_of_another_release_or_unreadable_are_not_answered_nor_counted():
    release = make_release()
    r = new_rollout(release, fleet(1))
    r.start(0.0)
    other = {"release": "f" * 64, "path": "main.py", "offset": 0, "length": 10}
    assert r.message("park/p1/lamp/lamp-000/fetch", json.dumps(other).encode(), 1.0) == []
    assert r.message("park/p1/lamp/lamp-000/fetch", b"\xff{", 1.0) == []
    assert r.bad_fetches == 0


# ---- outcomes -------------------------------------------------------------------------


def test_a_good_release_goes_through_every_wave():
    release = make_release()
    r = new_rollout(release, fleet(20))
    devices = {d: Device(d, "1.1.0") for d in r.devices}
    sent = run_fleet(r, devices)
    assert r.done and r.halted is None
    assert [len(w) for w in r.waves] == [1, 1, 3, 15]
    assert all(row["state"] == DONE and row["progress"] == 100 for row in r.rows())
    assert all(d.version == "1.2.0" and d.offers == 1 for d in devices.values())
    assert r.ended == [1, 2, 3, 4]
    # Wave 2 was offered only once wave 1's device was healthy.
    offers = [t.split("/")[3] for t, p in sent if t.endswith("/cmd")]
    assert offers[0] == "lamp-000" and offers[1] == "lamp-001"


def test_a_hundred_lamps_and_a_release_that_crashes_at_import_only_the_first_sees_it():
    # The story: the first wave's lamp rolls back by itself, the rollout
    # halts, and the other 99 are never offered the release.
    release = make_release()
    r = new_rollout(release, fleet(100))
    devices = {d: Device(d, "1.1.0", "crash") for d in r.devices}
    sent = run_fleet(r, devices)
    assert r.halted is not None and r.halted["device"] == "lamp-000"
    assert r.halted["why"] == "rolled back: ImportError: x"
    assert [d for d, dev in devices.items() if dev.offers] == ["lamp-000"]
    offered = {t.split("/")[3] for t, _ in sent}
    assert offered == {"lamp-000"}  # not a command, not a piece to anyone else
    assert devices["lamp-000"].version == "1.1.0"
    row = {x["device"]: x for x in r.rows()}
    assert row["lamp-000"]["state"] == "rolled_back"
    assert sum(1 for x in r.rows() if x["state"] == "waiting") == 99


def test_a_silent_device_halts_at_its_deadline_and_the_others_of_its_wave_cancel():
    release = make_release()
    r = new_rollout(release, fleet(10), waves="1,4", deadline_s=900)
    devices = {d: Device(d, "1.1.0") for d in r.devices}
    devices["lamp-002"].behaviour = "silent"
    devices["lamp-003"].behaviour = "silent"
    run_fleet(r, devices)
    assert r.halted == {"device": "lamp-002", "why": "silent: not healthy 900 s after the offer"}
    rows = {x["device"]: x for x in r.rows()}
    assert rows["lamp-001"]["state"] == DONE
    # Both were silent; both are told to cancel, for when they are back.
    assert rows["lamp-003"]["state"] == "silent"
    assert devices["lamp-002"].cancelled and devices["lamp-003"].cancelled
    assert all(devices[f"lamp-{i:03d}"].offers == 0 for i in range(4, 10))


def test_a_refusal_halts_with_the_devices_reason():
    r = new_rollout(make_release(), fleet(5))
    devices = {d: Device(d, "1.1.0", "refuse") for d in r.devices}
    run_fleet(r, devices)
    assert r.halted == {"device": "lamp-000", "why": "refused: busy"}


def test_a_refused_event_and_an_unsigned_done_event():
    release = make_release()
    r = new_rollout(release, fleet(2), waves="2")
    r.start(0.0)
    # Someone with broker credentials but no device key says it is done: not believed.
    topic = "park/p1/lamp/lamp-000/event"
    forged = json.dumps({"type": "update_done", "version": "1.2.0"}).encode()
    assert r.message(topic, forged, 1.0) == []
    assert r.unsigned == 1 and r.rows()[0]["state"] == "offered"
    t, p = signed(
        "lamp-001", "event", {"type": "update_refused", "release": release.rid, "code": "room", "detail": "x"}
    )
    outs = r.message(t, p, 2.0)
    assert r.halted == {"device": "lamp-001", "why": "refused: room: x"}
    assert [(d, c.get("cancel")) for d, c in commands(outs)] == [("lamp-000", True)]


@given(
    st.lists(st.tuples(st.sampled_from(["state", "event", "reply", "fetch"]), st.integers(0, 9)), max_size=30)
)
def test_a_halted_rollout_offers_nothing_more(msgs):
    release = make_release()
    r = new_rollout(release, fleet(10), waves="3,100%")
    r.start(0.0)
    t, p = signed("lamp-000", "event", {"type": "update_rolled_back", "version": "1.2.0", "to": "1.1.0"})
    r.message(t, p, 1.0)
    assert r.halted is not None
    for i, (kind, n) in enumerate(msgs):
        dev = f"lamp-{n:03d}"
        body = {
            "state": {"app": {"version": "1.2.0", "trial": False}},
            "event": {"type": "update_done", "version": "1.2.0"},
            "reply": {"id": r.devices[dev]["cmd"], "ok": True, "result": {"state": "fetching"}},
            "fetch": {"release": release.rid, "path": "main.py", "offset": 0, "length": 10},
        }[kind]
        if kind == "fetch":
            topic, payload = f"park/p1/lamp/{dev}/fetch", json.dumps(body).encode()
        else:
            topic, payload = signed(dev, kind, body)
        outs = r.message(topic, payload, 2.0 + i) + r.tick(1e9 + i)
        assert outs == []  # no offer, no piece, not even a second cancel
    assert all(r.devices[f"lamp-{i:03d}"]["state"] == "waiting" for i in range(3, 10))


def test_devices_on_the_release_or_newer_are_not_offered():
    release = make_release("1.2.0")
    devices = fleet(4)
    devices["lamp-001"] = (devices["lamp-001"][0], "1.2.0")
    devices["lamp-002"] = (devices["lamp-002"][0], "1.10")
    r = new_rollout(release, devices, waves="1,100%")
    outs = r.start(0.0)
    rows = {x["device"]: x for x in r.rows()}
    assert rows["lamp-001"]["state"] == DONE and rows["lamp-001"]["wave"] == "-"
    assert rows["lamp-002"]["state"] == "skipped"
    assert [w for w in r.waves] == [["lamp-000"], ["lamp-003"]]
    assert [d for d, _ in commands(outs)] == ["lamp-000"]


def test_the_update_command_is_the_documented_one():
    release = make_release()
    r = new_rollout(release, fleet(1), trial_s=120)
    [(dev, cmd)] = commands(r.start(0.0))
    assert dev == "lamp-000"
    assert cmd["cmd"] == "update" and cmd["release"] == release.rid
    assert cmd["size"] == len(release.manifest) and cmd["sig"] == release.sig.hex() and cmd["trial_s"] == 120
    assert cmd["ctr"] == 1 and cmd["id"].startswith("rollout-t1-")


def test_a_stalled_transfer_is_offered_again_and_keeps_its_deadline():
    release = make_release()
    r = new_rollout(release, fleet(1), deadline_s=900)
    r.start(0.0)
    t, p = signed(
        "lamp-000",
        "state",
        {
            "app": {"version": "1.1.0", "trial": False},
            "update": {"release": release.rid, "state": "stalled", "have": 1024, "size": 8000},
        },
    )
    r.message(t, p, 100.0)
    [(_, cmd)] = commands(r.tick(101.0))
    assert cmd["cmd"] == "update" and cmd["release"] == release.rid
    assert commands(r.tick(110.0)) == []  # not again at once
    assert r.next_deadline() == 900.0


def test_the_state_file_round_trip_and_resume_after_a_halt():
    release = make_release()
    r = new_rollout(release, fleet(6), waves="2,100%")
    r.start(0.0)
    t, p = signed("lamp-000", "state", {"app": {"version": "1.2.0", "trial": False}})
    r.message(t, p, 5.0)
    r.tick(2000.0)  # lamp-001 silent past the deadline
    assert r.halted is not None and r.halted["device"] == "lamp-001"
    data = json.loads(json.dumps(r.to_json()))
    assert MASTER.hex() not in json.dumps(data)
    count = iter(range(100, 1 << 30))
    again = Rollout.from_json(data, release, MASTER, lambda: next(count))
    assert again.rows() == r.rows() and again.halted == r.halted
    outs = again.resume(3000.0)
    assert [(d, c["cmd"], c["ctr"]) for d, c in commands(outs)] == [("lamp-001", "update", 100)]
    assert again.halted is None and again.next_deadline() == 3900.0
    with pytest.raises(ValueError, match="another release"):
        Rollout.from_json(data, make_release("1.3.0"), MASTER, lambda: 1)


# ---- the command, against a real Mosquitto ---------------------------------------------


class MqttFleet:
    """Scripted devices at a real broker (one paho client for all): each publishes
    its retained, signed state, and behaves as Device does with what it receives.
    The firmware's own updater replaces this in the end-to-end test once it exists."""

    def __init__(self, port: int, behaviours: dict[str, str], version: str = "1.1.0"):
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.devices = {d: Device(d, version, b) for d, b in behaviours.items()}
        self.commands: list[tuple[str, dict]] = []
        self.lock = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-fleet-{port}")
        self.client.on_message = self._message
        self.connected = threading.Event()
        self.client.on_connect = self._connected
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for d in self.devices:
            t, p = signed(d, "state", {"app": {"version": version, "trial": False}, "update": None})
            self.client.publish(t, p, 1, retain=True).wait_for_publish(10)  # at the broker for the centre

    def _connected(self, client, userdata, flags, reason, properties=None) -> None:
        if not reason.is_failure:
            client.subscribe([("park/p1/lamp/+/cmd", 1), ("park/p1/lamp/+/chunk", 0)])
            self.connected.set()

    def _publish(self, topic: str, payload: bytes) -> None:
        kind = topic.rsplit("/", 1)[1]
        self.client.publish(topic, payload, 0 if kind == "fetch" else 1, retain=kind == "state")

    def _message(self, client, userdata, msg) -> None:
        dev = msg.topic.split("/")[3]
        with self.lock:
            if msg.topic.endswith("/cmd"):
                body = verify(derive_key(MASTER, dev), msg.topic, msg.payload)
                self.commands.append((dev, json.loads(body) if body else {}))
                self.lock.notify_all()
            if dev in self.devices:
                for t, p in self.devices[dev].handle(msg.topic, msg.payload):
                    self._publish(t, p)

    def wait_commands(self, n: int, timeout: float = 30.0) -> None:
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.commands) >= n, timeout), "no command came"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def signed_release(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from parkctl.build import build
    from parkctl.cli import main

    d = tmp_path_factory.mktemp("rollout")
    assert main(["release", "keygen", "--out", str(d / "keys")]) == 0
    build("lamp", out=d / "build", chip="vboard")
    return {"dir": d, "pub": str(d / "keys" / "release.pub"), "pem": str(d / "keys" / "release-key.pem")}


def a_release(signed_release, where, version: str = "1.2.0"):
    from parkctl.cli import main

    out = where / f"rel-{version}"
    args = ["release", "sign", "--app", "lamp", "--version", version, "--key", signed_release["pem"]]
    assert main([*args, "--build", str(signed_release["dir"] / "build"), "--out", str(out)]) == 0
    return out


@pytest.fixture
def centre(monkeypatch):
    monkeypatch.setenv("PARK_COMMAND_KEY", MASTER.hex())
    for v in ("PARK_CENTRE_USER", "PARK_CENTRE_PASSWORD", "PARK_BROKER_CA", "PARK_BROKER"):
        monkeypatch.delenv(v, raising=False)


def rollout_cli(capsys, *args: str) -> tuple[int, str, str]:
    from parkctl.cli import main

    status = main(["rollout", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_command_rolls_a_release_over_three_lamps(mosquitto, signed_release, tmp_path, centre, capsys):
    rel = a_release(signed_release, tmp_path)
    capsys.readouterr()
    fleet_ = MqttFleet(mosquitto.port, {f"lamp-00{i}": "good" for i in range(3)})
    try:
        status, out, err = rollout_cli(
            capsys,
            "--release",
            str(rel),
            "--key",
            signed_release["pub"],
            "--broker",
            mosquitto.url,
            "--deadline",
            "60",
            "--waves",
            "1,100%",
        )
    finally:
        fleet_.close()
    assert status == 0, err
    assert err == ""
    assert "wave 1 of 2: every device healthy" in out and "wave 2 of 2" in out
    assert out.rstrip().endswith("done: 3 of 3 devices run 1.2.0")
    for d in fleet_.devices.values():
        assert d.version == "1.2.0" and d.offers == 1
    # lamp-000 alone first: the others were offered once it was healthy.
    assert [dev for dev, c in fleet_.commands] == ["lamp-000", "lamp-001", "lamp-002"]
    state = json.loads((rel / "rollout.json").read_text())
    assert state["done"] is True and MASTER.hex() not in json.dumps(state)
    # Started again: every device runs it already, nothing is offered.
    (rel / "rollout.json").unlink()
    status, out, err = rollout_cli(
        capsys,
        "--release",
        str(rel),
        "--key",
        signed_release["pub"],
        "--broker",
        mosquitto.url,
        "--json",
        "--deadline",
        "60",
    )
    assert status == 0, err
    summary = json.loads(out)
    assert summary["outcome"] == "done" and summary["waves"] == []
    assert {r["detail"] for r in summary["devices"]} == {"runs it already"}


def test_a_release_that_crashes_halts_after_the_first_lamp(
    mosquitto, signed_release, tmp_path, centre, capsys
):
    rel = a_release(signed_release, tmp_path)
    capsys.readouterr()
    lamps = {f"lamp-{i:03d}": "crash" for i in range(8)}
    fleet_ = MqttFleet(mosquitto.port, lamps)
    state = tmp_path / "ro.json"
    try:
        status, out, err = rollout_cli(
            capsys,
            "--release",
            str(rel),
            "--key",
            signed_release["pub"],
            "--broker",
            mosquitto.url,
            "--deadline",
            "60",
            "--state",
            str(state),
            "--json",
        )
    finally:
        fleet_.close()
    assert status == 1
    assert err.count("\n") == 1
    assert err.startswith("parkctl rollout: halted: lamp-000 rolled back: ImportError: x;")
    summary = json.loads(out)
    assert summary["outcome"] == "halted" and summary["halted"]["device"] == "lamp-000"
    assert [dev for dev, _ in fleet_.commands] == ["lamp-000"]
    assert sum(1 for r in summary["devices"] if r["state"] == "waiting") == 7
    # Aborted, it cannot be resumed.
    status, out, err = rollout_cli(capsys, "--abort", "--state", str(state), "--broker", mosquitto.url)
    assert status == 0, err
    status, out, err = rollout_cli(capsys, "--resume", "--state", str(state), "--broker", mosquitto.url)
    assert status == 2 and "aborted" in err and err.count("\n") == 1


def test_bad_arguments_and_releases_are_one_line_and_status_2(
    mosquitto, signed_release, tmp_path, centre, capsys
):
    rel = a_release(signed_release, tmp_path)
    fleet_ = MqttFleet(mosquitto.port, {"lamp-000": "good"})
    capsys.readouterr()
    base = ["--key", signed_release["pub"], "--broker", mosquitto.url, "--deadline", "60"]
    tampered = a_release(signed_release, tmp_path / "t")
    (tampered / "files" / "main.py").write_text("print('not signed')\n")
    other_keys = tmp_path / "k2"
    from parkctl.cli import main

    assert main(["release", "keygen", "--out", str(other_keys)]) == 0
    capsys.readouterr()
    cases = [
        (["--broker", mosquitto.url], "give --release"),
        (["--release", str(rel), "--broker", mosquitto.url], "give --key"),
        (["--release", str(rel), *base, "--waves", "1,0"], "--waves: '0'"),
        (["--release", str(rel), *base, "--trial", "5"], "--trial"),
        (["--release", str(rel), *base, "--deadline", "nan"], "--deadline"),
        (["--release", str(tmp_path / "nosuch"), *base], "not a release"),
        (["--release", str(tampered), *base], "devices would refuse this release: size: main.py"),
        (
            ["--release", str(rel), "--key", str(other_keys / "release.pub"), "--broker", mosquitto.url],
            "signature",
        ),
        (["--release", str(rel), *base, "--group", "kiosk-*"], "--group kiosk-*: no lamp device"),
        (["--resume", "--broker", mosquitto.url], "need --state"),
        (["--resume", "--abort", "--state", "x", "--broker", mosquitto.url], "not both"),
        (["--resume", "--state", str(tmp_path / "nosuch.json"), "--broker", mosquitto.url], "cannot read"),
    ]
    try:
        for args, words in cases:
            status, _, err = rollout_cli(capsys, *args)
            assert status == 2, (args, err)
            assert err.count("\n") == 1 and words in err, (args, err)
            assert "Traceback" not in err
    finally:
        fleet_.close()
    assert fleet_.commands == []  # none of them offered anything


def test_no_command_key_is_refused_before_the_broker_is_asked(signed_release, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PARK_COMMAND_KEY", raising=False)
    rel = a_release(signed_release, tmp_path)
    capsys.readouterr()
    status, _, err = rollout_cli(
        capsys, "--release", str(rel), "--key", signed_release["pub"], "--broker", "mqtt://127.0.0.1:1"
    )
    assert status == 2 and "no command key" in err and err.count("\n") == 1


def test_ctrl_c_saves_the_state_and_resume_goes_on(mosquitto, signed_release, tmp_path, centre, capsys):
    import os
    import signal
    import subprocess

    from test_cli_sun import PARKCTL

    rel = a_release(signed_release, tmp_path)
    capsys.readouterr()
    fleet_ = MqttFleet(mosquitto.port, {"lamp-000": "silent", "lamp-001": "good"})
    state = tmp_path / "ro.json"
    try:
        proc = subprocess.Popen(
            [
                PARKCTL,
                "rollout",
                "--release",
                str(rel),
                "--key",
                signed_release["pub"],
                "--broker",
                mosquitto.url,
                "--state",
                str(state),
                "--deadline",
                "120",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        fleet_.wait_commands(1)  # lamp-000 offered; it says nothing
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.count("\n") == 1 and f"its state is in {state}; go on with --resume" in err
        saved = json.loads(state.read_text())
        assert saved["devices"]["lamp-000"]["state"] == "offered"
        # Back, and well this time: the same release offered again, where it stopped.
        fleet_.devices["lamp-000"].behaviour = "good"
        status, out, err = rollout_cli(capsys, "--resume", "--state", str(state), "--broker", mosquitto.url)
    finally:
        fleet_.close()
    assert status == 0, err
    assert fleet_.devices["lamp-000"].offers == 2 and fleet_.devices["lamp-001"].offers == 1
    assert all(d.version == "1.2.0" for d in fleet_.devices.values())
    assert out.rstrip().endswith("done: 2 of 2 devices run 1.2.0")


def test_the_progress_bar_is_one_line_on_a_terminal_only(capsys, monkeypatch):
    from parkctl.rolloutrun import _Bar

    r = new_rollout(make_release(), fleet(4), waves="2,100%")
    r.start(0.0)
    t, p = signed("lamp-000", "state", {"app": {"version": "1.2.0", "trial": False}})
    r.message(t, p, 1.0)
    _Bar().draw(r)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    bar = _Bar()
    bar.draw(r)
    bar.clear()
    err = capsys.readouterr().err
    assert err.startswith("\rwave 1/2 [") and " 50%  1/2 healthy" in err and "\n" not in err


def test_a_broker_restart_in_the_middle_loses_no_outcome(mosquitto, signed_release, tmp_path, centre):
    # paho reconnects by itself; the rollout must subscribe again (a clean session
    # comes back with none), or the lamp's healthy state never reaches it and it
    # halts at the deadline saying the lamp was silent.
    import os
    import subprocess

    from test_cli_sun import PARKCTL

    rel = a_release(signed_release, tmp_path)
    fleet_ = MqttFleet(mosquitto.port, {"lamp-000": "silent"})
    try:
        proc = subprocess.Popen(
            [
                PARKCTL,
                "rollout",
                "--release",
                str(rel),
                "--key",
                signed_release["pub"],
                "--broker",
                mosquitto.url,
                "--deadline",
                "30",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        fleet_.wait_commands(1)
        fleet_.connected.clear()
        mosquitto.kill()
        mosquitto.start()
        assert fleet_.connected.wait(30), "the scripted lamp did not reconnect"
        # The lamp took the release meanwhile, and says so as it does after a restart.
        t, p = signed("lamp-000", "state", {"app": {"version": "1.2.0", "trial": False}})
        fleet_.client.publish(t, p, 1, retain=True).wait_for_publish(10)
        out, err = proc.communicate(timeout=60)
    finally:
        fleet_.close()
    assert proc.returncode == 0, err
    assert json.loads(out)["outcome"] == "done"


def test_the_centre_sees_every_device_of_a_big_fleet_at_once(mosquitto, centre, capsys):
    # Regression: the centre's tools waited for a QoS 0 marker, which the broker let
    # overtake the retained states it held back (a few QoS 1 messages in flight at
    # a time): `monitor --once` listed 20 to 70 of 300 lamps, and a rollout would
    # have offered the release to those only, and said it was done.
    from parkctl.cli import main

    fleet_ = MqttFleet(mosquitto.port, {f"lamp-{i:03d}": "good" for i in range(300)})
    try:
        capsys.readouterr()
        assert main(["monitor", "--once", "--json", "--broker", mosquitto.url]) == 0
    finally:
        fleet_.close()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 300


def test_a_device_on_trial_after_an_earlier_update_is_offered_again_not_failed():
    r = new_rollout(make_release(), fleet(1), deadline_s=900)
    [(dev, cmd)] = commands(r.start(0.0))
    from parkctl.rollout import ON_TRIAL

    reason = "the app is on trial after an update: offer again once it is done"
    assert reason.startswith(ON_TRIAL)
    updater = (Path(__file__).resolve().parent.parent / "firmware" / "lib" / "updater.py").read_text()
    assert f'CommandError("{reason}")' in updater  # the device's words, as the rollout knows them
    t, p = signed(dev, "reply", {"id": cmd["id"], "cmd": "update", "ok": False, "reason": reason})
    assert r.message(t, p, 1.0) == [] and r.halted is None
    [(_, again)] = commands(r.tick(31.0))
    assert again["cmd"] == "update" and again["id"] != cmd["id"]
    t, p = signed(
        dev, "reply", {"id": again["id"], "cmd": "update", "ok": True, "result": {"state": "fetching"}}
    )
    r.message(t, p, 31.5)
    assert r.rows()[0]["state"] == "fetching"
    assert commands(r.tick(100.0)) == []  # taken: not offered again
    t, p = signed(
        dev, "reply", {"id": again["id"], "cmd": "update", "ok": True, "result": {"state": "running"}}
    )
    r.message(t, p, 32.0)
    assert r.done


@given(
    kind=st.sampled_from(["fetch", "state", "event", "reply", "status", "cmd", "chunk"]),
    body=st.one_of(
        st.binary(max_size=200),
        st.integers(1, 100000).map(lambda n: b"[" * n),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
            lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    sign_it=st.booleans(),
)
def test_nothing_a_device_or_a_stranger_publishes_stops_the_rollout(kind, body, sign_it):
    # Fetches are not signed: anyone with broker credentials can send one.
    r = new_rollout(make_release(), fleet(2))
    r.start(0.0)
    topic = f"park/p1/lamp/lamp-000/{kind}"
    payload = sign(derive_key(MASTER, "lamp-000"), topic, body) if sign_it and body.endswith(b"}") else body
    r.message(topic, payload, 1.0)
    r.tick(2.0)
    assert r.halted is None or r.halted["device"] == "lamp-000"


def test_a_state_nested_too_deeply_or_not_an_object_does_not_blind_the_centre(mosquitto, centre, capsys):
    # Regression: a retained state of 100,000 "[" (anyone with a device's broker
    # account can publish one) killed the centre tools' MQTT thread with a
    # RecursionError, and monitor, alarms and rollout all said "the broker does
    # not answer"; a state that is a list broke `alarms`.
    from parkctl.cli import main

    fleet_ = MqttFleet(mosquitto.port, {"lamp-000": "good"})
    try:
        for dev, body in (("lamp-deep", b"[" * 100000), ("lamp-list", b"[1, 2]")):
            fleet_.client.publish(f"park/p1/lamp/{dev}/state", body, 1, retain=True).wait_for_publish(10)
        capsys.readouterr()
        assert main(["monitor", "--once", "--json", "--broker", mosquitto.url]) == 0
        rows = {r["device"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
        assert main(["alarms", "--broker", mosquitto.url]) == 0
    finally:
        fleet_.close()
    assert set(rows) == {"lamp-000", "lamp-deep", "lamp-list"}
    assert rows["lamp-deep"]["signed"] == "FORGED?" and rows["lamp-list"]["signed"] == "FORGED?"


@given(
    key=st.sampled_from(["wave", "waves", "devices", "seq", "halted", "deadline_s", "lamp-000", "format"]),
    value=st.one_of(st.none(), st.integers(-5, 99), st.text(max_size=5), st.lists(st.integers(), max_size=2)),
    field=st.sampled_from(["state", "wave", "deadline", "prefix", "progress", "cmd"]),
)
def test_a_state_file_changed_by_hand_is_refused_or_works(key, value, field):
    release = make_release()
    r = new_rollout(release, fleet(3), waves="1,100%")
    r.start(0.0)
    data = json.loads(json.dumps(r.to_json()))
    if key == "lamp-000":
        data["devices"]["lamp-000"][field] = value
    else:
        data[key] = value
    try:
        again = Rollout.from_json(data, release, MASTER, lambda: 1)
    except ValueError:
        return  # said, in one line, by the command
    # Taken: it must run, never fail inside.
    again.resume(10.0)
    again.tick(2000.0)
    again.rows()
    again.summary()


def test_groups_choose_by_site_id_or_pattern_and_only_the_releases_app():
    from parkctl.errors import UserError
    from parkctl.rolloutrun import select

    def dev(site, kind, version, verified=True):
        return {
            "site": site,
            "kind": kind,
            "status": "online",
            "state": {"app": {"version": version}},
            "verified": verified,
        }

    seen = {
        "lamp-a1": dev("north", "lamp", "1.0"),
        "lamp-a2": dev("north", "lamp", "1.1"),
        "lamp-b1": dev("south", "lamp", "1.0"),
        "kiosk-gate": dev("north", "kiosk", "1.0"),
        "lamp-forged": dev("south", "lamp", "9.9", verified=False),
    }
    assert set(select(seen, "lamp", [])) == {"lamp-a1", "lamp-a2", "lamp-b1", "lamp-forged"}
    assert select(seen, "lamp", ["north"]) == {
        "lamp-a1": ("park/north/lamp/lamp-a1", "1.0"),
        "lamp-a2": ("park/north/lamp/lamp-a2", "1.1"),
    }
    assert set(select(seen, "lamp", ["lamp-b1", "lamp-a?"])) == {"lamp-a1", "lamp-a2", "lamp-b1"}
    assert select(seen, "kiosk", ["north"]) == {"kiosk-gate": ("park/north/kiosk/kiosk-gate", "1.0")}
    # What a state not signed by its device says is not believed: it is offered.
    assert select(seen, "lamp", ["lamp-forged"]) == {"lamp-forged": ("park/south/lamp/lamp-forged", None)}
    with pytest.raises(UserError, match="--group kiosk-gate: no lamp device"):
        select(seen, "lamp", ["north", "kiosk-gate"])
    with pytest.raises(UserError, match=r"^no lamp device at the broker \(none has published its state\)$"):
        select({"kiosk-gate": seen["kiosk-gate"]}, "lamp", [])
