"""A power cut at every flash write of an update and of a rollback
(firmware/lib/staging.py, docs/updates.md), on real littlefs: after each, the
board boots into the old app or the new one, whole, never a mix, with its own
files untouched, also when a second cut lands in the boot that finishes a
switch; the transfer goes on without fetching again what the flash
already had, and ends with the new app in place and the old one kept. The
sequences and checks are tests/stagecuts.py, run on littlefs-python (CPython)
and on MicroPython's own VfsLfs2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import stagecuts
from parkctl.runtime import micropython_binary, micropython_env
from test_alarm_flash_cuts import CpythonFlash, blank

HERE = Path(__file__).resolve().parent


def test_a_cut_at_any_flash_write_of_an_update_leaves_a_whole_app_and_resumes():
    cuts, _ = stagecuts.exhaustive(CpythonFlash, blank())
    assert cuts > 100  # the update really wrote to the flash, many times


def test_a_cut_at_any_flash_write_of_a_rollback_leaves_a_whole_app():
    assert stagecuts.exhaustive_rollback(CpythonFlash, blank()) > 20


def test_a_second_cut_while_the_boot_finishes_a_switch_changes_nothing():
    assert stagecuts.exhaustive_twice(CpythonFlash, blank()) > 300


def test_the_same_cuts_on_micropython_littlefs():
    env = micropython_env()
    env["MICROPYPATH"] += ":" + str(HERE)
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=4M", str(HERE / "stagecuts_mp.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = dict(line.split()[:2] for line in proc.stdout.splitlines() if line.endswith(" cuts"))
    assert int(done["update"]) > 100 and int(done["rollback"]) > 20, proc.stdout
    assert int(done["twice"]) > 300, proc.stdout
