"""`parkctl rollout` end to end: simulated lamps running the firmware's own
updater (`parkctl sim --realtime 1 --broker`), a real Mosquitto, and the
command. A release that crashes at import is rolled back by the first lamp
alone and the rollout halts before any other lamp sees it; the fixed release
then goes to every lamp, wave by wave."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mqttsub import Subscriber
from releases import FIRMWARE, Releases
from test_alarm_sim import WIFI_CONFIG
from test_cli_sun import PARKCTL

from sim.cmdsign import SIM_MASTER, derive_key, verify

LAMPS = 3


def _lamp_scenarios(tmp_path: Path, rel: Releases) -> list[Path]:
    # One simulation a lamp (a fleet runs in virtual time only), each with its own id.
    cfg = json.loads(Path(WIFI_CONFIG).read_text())
    out = []
    for i in range(LAMPS):
        (tmp_path / f"lamp{i}.json").write_text(json.dumps(dict(cfg, device=f"lamp-e2e-{i}")))
        scn = tmp_path / f"lamp{i}.scn"
        scn.write_text(
            f"config {tmp_path / f'lamp{i}.json'}\nstart 2026-12-21 18:00\nend 2026-12-21 20:00\n"
            "wifi up 18:00\n"
            f"deployed {rel.root / 'release-1.0.0' / 'files'}\nrelease key {rel.public}\n"
        )
        out.append(scn)
    return out


def _version(sub: Subscriber, lamp: str) -> str | None:
    """The version the lamp's last signed state says it runs."""
    topic = f"park/park/lamp/{lamp}/state"
    with sub._got:
        states = [p for t, p, _ in sub.messages if t == topic]
    body = verify(derive_key(SIM_MASTER, lamp), topic, states[-1]) if states else None
    return json.loads(body)["app"]["version"] if body else None


def test_a_crashing_release_stops_at_the_first_lamp_and_the_fixed_one_reaches_all(mosquitto, tmp_path):
    rel = Releases(tmp_path / "rel")
    rel.make("1.0.0")
    main = (FIRMWARE / "lamp" / "main.py").read_text()
    broken = main.replace(
        "    import json\n", '    import json\n\n    raise RuntimeError("a release broken at import")\n', 1
    )
    assert broken != main
    rel.make("1.2.0", main=broken)
    rel.make("1.2.1")
    sub = Subscriber(mosquitto.port, ["park/+/lamp/+/state", "park/+/lamp/+/cmd", "park/+/lamp/+/chunk"])
    sims = [
        subprocess.Popen(
            [PARKCTL, "sim", str(scn), "--realtime", "1", "--broker", mosquitto.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for scn in _lamp_scenarios(tmp_path, rel)
    ]
    env = dict(os.environ, PARK_COMMAND_KEY=SIM_MASTER.hex())
    env.pop("PARK_BROKER", None)

    def rollout(version: str) -> subprocess.CompletedProcess[str]:
        args = ["--release", str(rel.root / f"release-{version}"), "--key", str(rel.public)]
        args += ["--broker", mosquitto.url, "--waves", "1,100%", "--deadline", "120", "--json"]
        return subprocess.run(
            [PARKCTL, "rollout", *args], capture_output=True, text=True, env=env, timeout=300
        )

    try:
        for i in range(LAMPS):
            sub.wait_for(lambda t, p, i=i: t == f"park/park/lamp/lamp-e2e-{i}/state", timeout=60)
        assert [_version(sub, f"lamp-e2e-{i}") for i in range(LAMPS)] == ["1.0.0"] * LAMPS

        bad = rollout("1.2.0")
        assert bad.returncode == 1, bad.stderr
        assert bad.stderr.count("\n") == 1
        assert bad.stderr.startswith(
            "parkctl rollout: halted: lamp-e2e-0 rolled back: a boot of 1.2.0 failed"
        )
        assert "a release broken at import" in bad.stderr
        summary = json.loads(bad.stdout)
        assert [r["state"] for r in summary["devices"]] == ["rolled_back", "waiting", "waiting"]
        sub.sync()
        with sub._got:
            touched = {t.split("/")[3] for t, _, _ in sub.messages if t.endswith(("/cmd", "/chunk"))}
        assert touched == {"lamp-e2e-0"}  # the others never saw a command or a piece of it
        assert _version(sub, "lamp-e2e-0") == "1.0.0"

        good = rollout("1.2.1")
        assert good.returncode == 0, good.stderr
        summary = json.loads(good.stdout)
        assert summary["outcome"] == "done" and summary["waves"] == [1, 2]
        assert [r["state"] for r in summary["devices"]] == ["done"] * LAMPS
        sub.sync()
        assert [_version(sub, f"lamp-e2e-{i}") for i in range(LAMPS)] == ["1.2.1"] * LAMPS
    finally:
        for p in sims:
            p.terminate()
        for p in sims:
            p.wait(30)
        sub.close()


FLEET = 100


def test_a_hundred_simulated_lamps_and_a_release_that_crashes_only_the_first_wave_sees_it(
    mosquitto, tmp_path
):
    # The fleet: 100 lamps in one simulation (`--lamps 100 --realtime 1`,
    # every lamp on the wall clock), the default waves 1, 5 %, 25 %, 100 %. The
    # first wave's lamp rolls back by itself, the rollout halts, and the other 99
    # never get a command or a piece of the release.
    rel = Releases(tmp_path / "rel")
    rel.make("1.0.0")
    main = (FIRMWARE / "lamp" / "main.py").read_text()
    rel.make(
        "1.2.0",
        main=main.replace("    import json\n", '    import json\n\n    raise RuntimeError("broken")\n', 1),
    )
    scn = tmp_path / "fleet.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 19:00\nwifi up 18:00\n"
        f"deployed {rel.root / 'release-1.0.0' / 'files'}\nrelease key {rel.public}\n"
    )
    lamps = [f"lamp-240ac4{i:06x}" for i in range(FLEET)]  # the fleet's chip ids (sim/fleet.py)
    sub = Subscriber(mosquitto.port, ["park/+/lamp/+/state", "park/+/lamp/+/cmd", "park/+/lamp/+/chunk"])
    sim = subprocess.Popen(
        [PARKCTL, "sim", str(scn), "--lamps", str(FLEET), "--realtime", "1", "--broker", mosquitto.url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    env = dict(os.environ, PARK_COMMAND_KEY=SIM_MASTER.hex())
    env.pop("PARK_BROKER", None)
    try:
        for lamp in lamps:
            sub.wait_for(lambda t, p, lamp=lamp: t == f"park/park/lamp/{lamp}/state", timeout=180)
        args = ["--release", str(rel.root / "release-1.2.0"), "--key", str(rel.public)]
        args += ["--broker", mosquitto.url, "--deadline", "120", "--json"]
        bad = subprocess.run(
            [PARKCTL, "rollout", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert bad.returncode == 1, bad.stderr
        assert bad.stderr.startswith(
            f"parkctl rollout: halted: {lamps[0]} rolled back: a boot of 1.2.0 failed"
        )
        summary = json.loads(bad.stdout)
        states = [r["state"] for r in summary["devices"]]
        assert states.count("rolled_back") == 1 and states.count("waiting") == FLEET - 1, states
        sub.sync()
        with sub._got:
            touched = {t.split("/")[3] for t, _, _ in sub.messages if t.endswith(("/cmd", "/chunk"))}
        assert touched == {lamps[0]}
        assert _version(sub, lamps[0]) == "1.0.0"
    finally:
        sim.terminate()
        sim.wait(60)
        sub.close()
