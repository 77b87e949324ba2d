"""The flash that can die at any write (docs/sim.md, "The flash"), and the power-cut
campaign built on it (docs/testing.md): the chip's torn program and erase, cuts
at the N-th operation landing the same in both runtimes, the simulator surviving
a cut in any write, and a sample of the campaign."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from parkctl import campaign, simcmd

from sim import cpython

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "sim" / "scenarios"
START = 851166000  # 2026-12-21 20:20 in Songjiang (park time, seconds since 2000)


def _chip(seed: int = 3, blocks: int = 2):
    """The world's flash chip (sim/world.py, loaded as the simulator loads it)
    under the CPython runtime's littlefs context, over a RAM image."""
    modules = cpython.ModuleSystem(console=lambda line: None)
    world = modules.load("world", as_firmware=False)
    config = json.loads((SCENARIOS / "songjiang-wifi.json").read_text())
    scenario = {"start": START, "end": START + 3600, "seed": seed, "config": config, "flash_timed": True}
    w = world.World(scenario, lambda t, kind, text: None)
    ctx = cpython._PoweredRam(buffer=bytearray(b"\xff" * cpython.BLOCK_SIZE * blocks))
    ctx.world = w
    return w, ctx


def test_program_and_erase_take_the_chips_time():
    w, ctx = _chip()
    t = w.now_us
    ctx.prog(None, 0, 0, b"\x00" * 32)
    assert w.now_us - t == 400  # a page program, typical
    ctx.erase(None, 1)
    assert w.now_us - t == 400 + 45000  # a 4 KiB sector erase, typical
    assert w.flash_ops == 2


def test_a_torn_program_clears_only_some_bits_and_stops_there():
    w, ctx = _chip()
    w.apply({"do": "cut_op", "n": 2, "until": START + 10})
    ctx.prog(None, 0, 0, b"\x00" * 128)  # the first: whole
    ctx.prog(None, 0, 128, b"\x0f" * 128)  # the second: torn
    assert not w.powered
    img = ctx.buffer
    assert img[:128] == b"\x00" * 128
    torn = img[128:256]
    k = next(i for i, b in enumerate(torn) if b != 0x0F)
    assert 0 <= k < 128 and torn[:k] == b"\x0f" * k
    # The byte at the tear: some of the bits it was clearing are clear, no more.
    assert torn[k] & 0x0F == 0x0F and torn[k] | 0xF0 == 0xFF | torn[k]
    assert torn[k + 1 :] == b"\xff" * (127 - k)
    # Without power nothing more reaches the chip, and no time passes.
    t = w.now_us
    ctx.prog(None, 1, 0, b"\x00" * 32)
    ctx.erase(None, 0)
    assert img[4096:4128] == b"\xff" * 32 and img[:128] == b"\x00" * 128 and w.now_us == t


def test_a_torn_erase_leaves_part_of_the_sector_as_it_was():
    w, ctx = _chip(seed=11)
    ctx.buffer[4096:8192] = b"\x00" * 4096
    w.apply({"do": "cut_op", "n": 1, "until": START + 10})
    ctx.erase(None, 1)
    block = bytes(ctx.buffer[4096:8192])
    k = block.index(next(b for b in block if b != 0xFF).to_bytes(1, "big"))
    assert 0 < k < 4096
    assert block[:k] == b"\xff" * k  # erased up to the tear
    assert block[k + 1 :] == b"\x00" * (4095 - k)  # the rest as it was
    assert not w.powered


def test_a_mains_cut_due_while_the_chip_works_tears_what_it_was_doing():
    # A scenario's `power off T` lands in the middle of an erase (45 ms), 9 ms in;
    # a program after it reaches nothing.
    w, ctx = _chip()
    ctx.buffer[4096:8192] = b"\x00" * 4096
    t = w.now_us
    w.at(t + 9000, {"do": "power_off"})
    ctx.erase(None, 1)
    assert not w.powered and w.now_us == t + 9000
    k = 4096 * 9000 // 45000
    block = bytes(ctx.buffer[4096:8192])
    assert block[:k] == b"\xff" * k and block[k + 1 :] == b"\x00" * (4095 - k)
    ctx.prog(None, 0, 0, b"\x00" * 32)
    assert ctx.buffer[:32] == b"\xff" * 32


def test_the_tear_is_the_seeds_and_arming_a_cut_changes_no_other_noise():
    a, ca = _chip(seed=5)
    b, cb = _chip(seed=5)
    c, cc = _chip(seed=6)
    for w in (a, b, c):
        w.apply({"do": "cut_op", "n": 1, "until": START + 10})
    for ctx in (ca, cb, cc):
        ctx.buffer[:4096] = b"\x00" * 4096
        ctx.erase(None, 0)
    assert ca.buffer == cb.buffer != cc.buffer
    plain, _ = _chip(seed=5)
    assert [a.rand.next() for _ in range(5)] == [plain.rand.next() for _ in range(5)]


def _night(tmp_path: Path, cut: str) -> Path:
    scn = tmp_path / "cut.scn"
    config = json.loads((SCENARIOS / "songjiang-wifi.json").read_text())
    config.pop("network")
    (tmp_path / "lamp.json").write_text(json.dumps(config))
    scn.write_text(
        "config lamp.json\nstart 2026-12-21 20:00\nend 2026-12-21 20:30\nseed 4\n"
        # Faults and their clearing, journaled: enough flash operations for every N.
        "at 20:01 lamp fails\nat 20:03 lamp repaired\nat 20:04 lamp fails\nat 20:04:30 lamp repaired\n"
        "at 20:05 press button for 300ms\n"
        "at 20:06:30 lamp fails\nat 20:08 lamp repaired\n"
        f"{cut}\n"
        "expect mode alarm at 20:29\n"
    )
    return scn


@pytest.mark.parametrize("n", range(1, 21))
def test_the_simulator_survives_a_cut_in_any_write(tmp_path, n):
    # littlefs-python marked a file closed only once its close had worked: a
    # close torn by a cut left it open on a dead mount, and closing it again
    # tripped littlefs's assert and aborted the whole simulator.
    result = simcmd.run(_night(tmp_path, f"power cut at flash op {n} after 20:00 - 20:10"))
    texts = [e.text for e in result.entries]
    assert "firmware" not in {e.kind for e in result.entries}  # main.py never stopped
    assert sum(t.startswith("mains cut in the middle of a flash ") for t in texts) == 1
    # The board powered on again at 20:10 and ran its schedule.
    boots = [e.t for e in result.entries if e.kind == "reset" and e.text == "power on"]
    assert len(boots) == 2 and boots[1] >= boots[0] + 10 * 60 - 1


@pytest.mark.parametrize("n", [3, 9])
def test_a_cut_at_the_nth_operation_is_the_same_in_both_runtimes(tmp_path, n):
    scn = _night(tmp_path, f"power cut at flash op {n} after 20:05 - 20:06")
    a = simcmd.run(scn, "cpython")
    b = simcmd.run(scn, "micropython")
    assert [(e.t, e.kind, e.text) for e in a.entries] == [(e.t, e.kind, e.text) for e in b.entries]
    assert any(e.text.startswith("mains cut in the middle of a flash ") for e in a.entries)


def test_power_cut_statements_say_what_is_wrong(tmp_path):
    for bad in ("power cut at flash op 0 after 20:05 - 20:06", "power cut at flash op 3 after 20:05"):
        with pytest.raises(simcmd.UserError, match="power cut at flash op N after T - T"):
            simcmd.run(_night(tmp_path, bad))


# --- the campaign ----------------------------------------------------------------

# Trials of seed 1 that hold every promise on today's firmware: the campaign finds
# nothing where there is nothing to find.
PASSING = [0, 1, 2, 3]


def test_trials_are_made_from_the_seeds_alone():
    assert campaign.make_trial(1, 7).text == campaign.make_trial(1, 7).text
    assert campaign.make_trial(1, 7).text != campaign.make_trial(2, 7).text


@pytest.mark.parametrize("index", PASSING)
def test_a_trial_that_keeps_every_promise_counts_nothing(index):
    out = campaign.run_trial(1, index, "cpython")
    assert not out.error and not any(out.counts.values()), out.why


def test_a_failing_trial_is_written_as_a_scenario_that_runs_again(tmp_path):
    o = campaign.Outcome(5, 0, {"lost": 1}, ["an example"])
    path = campaign.write_failure(tmp_path, 1, o)
    assert path.name == "power-cuts-1-5.scn" and (tmp_path / "power-cuts-1-5.json").exists()
    assert path.read_text().startswith("# power-cut campaign 1, trial 5: it failed\n#   an example\n")
    result = simcmd.run(path, broker="mosquitto")
    assert any(e.kind == "centre" for e in result.entries)


def test_a_sample_of_the_campaign_keeps_every_promise(tmp_path):
    summary = campaign.run(50, "cpython", seed=20, jobs=2, out=tmp_path)
    assert summary.counts == dict.fromkeys(summary.counts, 0), [o.why for o in summary.failed]


# --- what the campaign found: each failing trial, kept as a named scenario -------

REPRODUCTIONS = sorted((Path(__file__).parent / "power_cuts").glob("*.scn"))


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize("path", REPRODUCTIONS, ids=[p.stem for p in REPRODUCTIONS])
def test_what_the_campaign_found_keeps_every_promise(path, runtime):
    # Both runtimes: a cut lands in another flash operation in each (their
    # littlefs are configured differently), and some findings were one runtime's.
    result = simcmd.run(path, runtime, broker="mosquitto")
    out = campaign.check(result.entries, campaign.reference(), flash_ok=True)
    assert not any(out.counts.values()), out.why


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "5", "--jobs", "0"], "--jobs must be 1..256"),
    ],
)
def test_bad_campaign_arguments_give_one_line(args, message):
    from test_cli_sun import parkctl

    proc = parkctl("campaign", "power-cuts", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
