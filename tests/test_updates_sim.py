"""Updates of the lamp app over MQTT in the simulator, both runtimes: the
simulated centre offers a signed release and serves its pieces
(docs/updates.md); the firmware fetches, checks, switches, runs the new app on
trial, and rolls back by itself when it fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from parkctl import simcmd
from releases import FIRMWARE, Releases
from test_alarm_sim import SCENARIOS, WIFI_CONFIG

RUNTIMES = ["cpython", "micropython"]


@pytest.fixture(scope="module")
def rel(tmp_path_factory) -> Releases:
    r = Releases(tmp_path_factory.mktemp("releases"))
    r.make("1.0.0")
    r.make("1.1.0")
    # A release whose app crashes at import, among its imports (in the simulator
    # only .py files on the flash stand for themselves: docs/sim.md).
    main = (FIRMWARE / "lamp" / "main.py").read_text()
    main = main.replace(
        "    import json\n", '    import json\n\n    raise RuntimeError("a release broken at import")\n', 1
    )
    r.make("1.2.0", main=main)
    return r


# The lamp lit as its schedule says throughout (full light after sunset), before,
# during and after the update, whatever became of it.
LIT = "".join(
    f"expect level 100 +-1 at {t}\n" for t in ("18:04", "18:05:00", "18:05:01", "18:05:02", "18:06", "18:39")
)


def _run(rel: Releases, tmp_path: Path, lines: str, runtime: str = "cpython") -> list[tuple[int, str, str]]:
    scn = tmp_path / "u.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 18:40\nwifi up 18:00\n"
        f"deployed {rel.root / 'release-1.0.0' / 'files'}\nrelease key {rel.public}\n" + LIT + lines
    )
    result = simcmd.run(scn, runtime)
    assert all(ok for _, ok, _ in result.checks), result.checks
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    assert not [x for _, k, x in timeline if k == "level" and float(x.split()[0]) != 100.0], timeline
    return timeline


def _centre(timeline, prefix):
    return [x for _, k, x in timeline if k == "centre" and x.startswith(prefix)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_release_is_fetched_checked_switched_and_confirmed(rel, tmp_path, runtime):
    timeline = _run(rel, tmp_path, f"at 18:05 centre offers {rel.root / 'release-1.1.0'}\n", runtime)
    assert _centre(timeline, "reply to update")[0].endswith('ok {"state": "fetching"}')
    assert _centre(timeline, "update_installed from")[0].endswith(
        ": 1.1.0 (0 wrong pieces dropped, 0 files fetched again)"
    )
    assert _centre(timeline, "update_done from")
    assert not _centre(timeline, "update_rolled_back") and not _centre(timeline, "update_refused")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_release_that_crashes_at_import_is_rolled_back_by_the_device(rel, tmp_path, runtime):
    timeline = _run(rel, tmp_path, f"at 18:05 centre offers {rel.root / 'release-1.2.0'}\n", runtime)
    assert ": 1.2.0 (" in _centre(timeline, "update_installed from")[0]
    back = _centre(timeline, "update_rolled_back from")
    assert len(back) == 1, timeline
    assert "a boot of 1.2.0 failed" in back[0] and "a release broken at import" in back[0]
    assert not _centre(timeline, "update_done")
    # The old app runs again, and keeps running (no reset after it is back).
    resets = [t for t, k, x in timeline if k == "reset" and x != "power on"]
    back_at = next(t for t, k, x in timeline if k == "centre" and x.startswith("update_rolled_back"))
    assert resets and all(t <= back_at for t in resets)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda r: r.make("0.9.0"), "version"),
        (lambda r: r.make("1.3.0", app="kiosk"), "app"),
        (lambda r: Releases(r.root / "stranger").make("1.4.0"), "signature"),
    ],
    ids=["older", "for-the-kiosk", "another-key"],
)
def test_a_release_the_device_must_not_take_is_refused_with_its_reason(rel, tmp_path, make, code):
    folder = make(rel)
    timeline = _run(
        rel, tmp_path, f'at 18:05 centre offers {folder}\nat 18:10 centre sends {{"cmd": "status"}}\n'
    )
    refused = _centre(timeline, "update_refused from")
    assert len(refused) == 1 and refused[0].split(": ", 1)[1].startswith(code + ":"), timeline
    assert not _centre(timeline, "update_installed")
    status = json.loads(_centre(timeline, "reply to status")[0].split("ok ", 1)[1])
    assert status["app"] == {"version": "1.0.0", "trial": False}
    assert status["update"]["refused"] == 1 and status["update"]["last"].startswith("refused: " + code)
    assert not [x for _, k, x in timeline if k == "reset" and x != "power on"]


def test_an_older_release_signed_as_a_permitted_downgrade_is_taken(rel, tmp_path):
    back = rel.make("0.9.1", downgrade_ok=True)
    timeline = _run(rel, tmp_path, f"at 18:05 centre offers {back}\n")
    assert ": 0.9.1 (" in _centre(timeline, "update_installed from")[0]
    assert _centre(timeline, "update_done from") and not _centre(timeline, "update_refused")


def _twice(m: dict) -> None:
    m["files"].append(dict(m["files"][0]))


def _outside(m: dict) -> None:
    m["files"][0] = dict(m["files"][0], path="../cmd.key")


@pytest.mark.parametrize(
    ("edit", "code"), [(_twice, "files"), (_outside, "path")], ids=["a-file-twice", "a-path-outside"]
)
def test_a_manifest_that_breaks_the_rules_is_refused_even_signed(rel, tmp_path, edit, code):
    folder = rel.edited("1.1.0", edit.__name__, edit)
    timeline = _run(rel, tmp_path, f"at 18:05 centre offers {folder}\n")
    refused = _centre(timeline, "update_refused from")
    assert len(refused) == 1 and refused[0].split(": ", 1)[1].startswith(code + ":"), timeline
    assert not _centre(timeline, "update_installed")


@pytest.mark.parametrize("damage", ["truncated", "reordered", "foreign", "garbage", "corrupt"])
def test_wrong_pieces_are_dropped_and_counted_and_the_release_still_arrives_whole(rel, tmp_path, damage):
    # The centre sends a wrong piece before each right one (corrupt: main.py's
    # first piece changed, and nothing else): none is kept, each is counted,
    # and the release the lamp switches to is the one signed.
    timeline = _run(
        rel,
        tmp_path,
        f"at 18:05 centre offers {rel.root / 'release-1.1.0'} damaged {damage}\n",
    )
    assert _centre(timeline, "update_done from"), timeline
    assert not _centre(timeline, "update_refused")
    (installed,) = _centre(timeline, "update_installed from")
    if damage == "corrupt":
        # A piece of the right place and length cannot be told wrong until its
        # file's sha256 is: taken, then the file fetched again.
        assert installed.endswith(": 1.1.0 (0 wrong pieces dropped, 1 files fetched again)"), installed
    else:
        dropped = int(installed.split("(")[1].split()[0])
        assert dropped >= 5 and installed.endswith("wrong pieces dropped, 0 files fetched again)"), installed


def test_a_board_in_safe_mode_takes_a_new_release_and_leaves_it(rel, tmp_path):
    # Deployed with a release that fails at import: five boots, then safe mode
    # (the link, the console, updates). A new release from the centre is the way out.
    main = (FIRMWARE / "lamp" / "main.py").read_text()
    broken = rel.make(
        "1.0.1", main=main.replace("    import json\n", '    import json\n\n    raise ImportError("no")\n', 1)
    )
    scn = tmp_path / "s.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 18:00\nend 2026-12-21 18:30\nwifi up 18:00\n"
        f"deployed {broken / 'files'}\nrelease key {rel.public}\n"
        f"at 18:05 centre offers {rel.root / 'release-1.1.0'}\n"
    )
    result = simcmd.run(scn, "cpython")
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    assert _centre(timeline, "safe_mode from"), timeline
    assert ": 1.1.0 (" in _centre(timeline, "update_installed from")[0]
    assert _centre(timeline, "update_done from")
    # Out of safe mode: the app runs its schedule again.
    texts = [x for _, k, x in timeline if k == "console"]
    assert (
        "event mode schedule"
        not in texts[: texts.index(next(x for x in texts if x.startswith("event safe_mode")))]
    )
    assert (
        "event mode schedule"
        in texts[texts.index(next(x for x in texts if x.startswith("event update_installed"))) :]
    )


def test_the_kiosk_takes_a_release_of_its_own_and_refuses_the_lamps(rel, tmp_path):
    kiosk = rel.make("2.0.0", app="kiosk")
    kiosk_new = rel.make("2.1.0", app="kiosk")
    scn = tmp_path / "k.scn"
    scn.write_text(
        f"app kiosk\nconfig {SCENARIOS / 'kiosk-g60.json'}\n"
        "start 2026-12-21 07:00\nend 2026-12-21 07:20\nwifi up 07:00\n"
        f"deployed {kiosk / 'files'}\nrelease key {rel.public}\n"
        f"at 07:05 centre offers {rel.root / 'release-1.1.0'}\n"
        f"at 07:10 centre offers {kiosk_new}\n"
    )
    result = simcmd.run(scn, "cpython")
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    assert all(ok for _, ok, _ in result.checks)
    (refused,) = _centre(timeline, "update_refused from")
    assert refused.split(": ", 1)[1].startswith("app: a release of the lamp app; this device runs kiosk"), (
        refused
    )
    assert ": 2.1.0 (" in _centre(timeline, "update_installed from")[0]
    assert _centre(timeline, "update_done from"), timeline


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_kiosk_release_that_crashes_at_import_is_rolled_back_by_the_kiosk(rel, tmp_path, runtime):
    kiosk = rel.make("2.5.0", app="kiosk")
    main = (FIRMWARE / "kiosk" / "main.py").read_text()
    broken = main.replace(
        "    import json\n", '    import json\n\n    raise RuntimeError("a kiosk broken at import")\n', 1
    )
    assert broken != main
    bad = rel.make("2.6.0", app="kiosk", main=broken)
    scn = tmp_path / "k.scn"
    scn.write_text(
        f"app kiosk\nconfig {SCENARIOS / 'kiosk-g60.json'}\n"
        "start 2026-12-21 07:00\nend 2026-12-21 07:20\nwifi up 07:00\n"
        f"deployed {kiosk / 'files'}\nrelease key {rel.public}\n"
        f"at 07:05 centre offers {bad}\n"
    )
    result = simcmd.run(scn, runtime)
    timeline = [(e.t, e.kind, e.text) for e in result.entries]
    (back,) = _centre(timeline, "update_rolled_back from")
    assert "a boot of 2.6.0 failed" in back and "a kiosk broken at import" in back, back
    assert not _centre(timeline, "update_done from")


# --- power cuts: `parkctl campaign update-cuts` (host/parkctl/updatecuts.py) ------


@pytest.mark.parametrize(("runtime", "trials"), [("cpython", 120), ("micropython", 12)])
def test_a_sample_of_the_update_power_cut_campaign_keeps_every_promise(runtime, trials):
    # Seed 1's first 120 trials held a cut in the manifest's move into place
    # (the offer was lost: the transfer never went on) and one in the trial's
    # end (update_done never said): both found by this campaign.
    from parkctl import campaign

    summary = campaign.run(trials, runtime, seed=1, jobs=2, kind="update-cuts")
    assert summary.counts == dict.fromkeys(summary.counts, 0), [o.why or o.error for o in summary.failed]
    assert summary.landed >= trials // 3  # the cuts did land inside the updates' flash operations
