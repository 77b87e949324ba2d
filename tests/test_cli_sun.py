"""`parkctl sun`, run as a user runs it: the installed command, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PARKCTL = str(Path(sys.executable).parent / "parkctl")
SONGJIANG = ["--lat", "31.03", "--lon", "121.23"]


def parkctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PARKCTL, *args], capture_output=True, text=True, timeout=120)


def sun_json(runtime: str, *args: str) -> dict:
    proc = parkctl("sun", *args, "--runtime", runtime, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _seconds(stamp: str) -> int:
    hh, mm, ss = stamp[11:].split(":")
    return int(stamp[8:10]) * 86400 + int(hh) * 3600 + int(mm) * 60 + int(ss)


@pytest.mark.parametrize(
    "place",
    [
        [*SONGJIANG, "--date", "2026-06-21", "--tz", "CST-8"],
        [
            "--lat",
            "-33.87",
            "--lon",
            "151.21",
            "--date",
            "2026-12-21",
            "--tz",
            "AEST-10AEDT,M10.1.0,M4.1.0/3",
        ],
        [
            "--lat",
            "40.71",
            "--lon",
            "-74.01",
            "--date",
            "2026-03-08",
            "--tz",
            "EST5EDT,M3.2.0,M11.1.0",
        ],
        [
            "--lat",
            "69.65",
            "--lon",
            "18.96",
            "--date",
            "2026-12-21",
            "--tz",
            "CET-1CEST,M3.5.0,M10.5.0/3",
        ],
    ],
)
def test_both_interpreters_agree_within_a_second(place):
    cp = sun_json("cpython", *place)
    mp = sun_json("micropython", *place)
    assert list(cp) == ["civil_dawn", "sunrise", "sunset", "civil_dusk", "polar"]
    assert list(mp) == list(cp)
    assert cp["polar"] == mp["polar"]
    for key in ("civil_dawn", "sunrise", "sunset", "civil_dusk"):
        assert (cp[key] is None) == (mp[key] is None)
        if cp[key] is not None:
            assert abs(_seconds(cp[key]) - _seconds(mp[key])) <= 1


def test_songjiang_midsummer_json():
    got = sun_json("cpython", *SONGJIANG, "--date", "2026-06-21", "--tz", "CST-8")
    # skyfield/DE421: 04:24:01, 04:51:54, 19:01:45, 19:29:38.
    assert got["civil_dawn"].startswith("2026-06-21T04:2")
    assert got["sunrise"].startswith("2026-06-21T04:5")
    assert got["sunset"].startswith("2026-06-21T19:0")
    assert got["civil_dusk"].startswith("2026-06-21T19:2")
    assert got["polar"] is None


def test_polar_night_json():
    got = sun_json("micropython", "--lat", "78.22", "--lon", "15.65", "--date", "2026-12-21", "--tz", "CET-1")
    assert got == {
        "civil_dawn": None,
        "sunrise": None,
        "sunset": None,
        "civil_dusk": None,
        "polar": "night",
    }


def test_table_output():
    proc = parkctl("sun", *SONGJIANG, "--date", "2026-12-21", "--tz", "CST-8")
    assert proc.returncode == 0
    assert "sunrise" in proc.stdout and "2026-12-21 06:4" in proc.stdout


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--lat", "95", "--lon", "121.23", "--date", "2026-06-21", "--tz", "CST-8"],
            "latitude 95",
        ),
        (["--lat", "31", "--lon", "200", "--date", "2026-06-21", "--tz", "CST-8"], "longitude 200"),
        (
            ["--lat", "north", "--lon", "121", "--date", "2026-06-21", "--tz", "CST-8"],
            "'north' is not a number",
        ),
        ([*SONGJIANG, "--date", "2026-02-30", "--tz", "CST-8"], "day 30 is not 1..28"),
        ([*SONGJIANG, "--date", "30/02/2026", "--tz", "CST-8"], "YYYY-MM-DD"),
        ([*SONGJIANG, "--date", "2026-06-21", "--tz", "CET-1CEST,M3.5.0,M10.5"], "DST end"),
    ],
)
def test_bad_arguments_give_one_line_and_fail(runtime, args, message):
    proc = parkctl("sun", *args, "--runtime", runtime)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("parkctl sun: error: ")
    assert message in lines[0]


def test_park_micropython_names_the_interpreter_and_a_wrong_one_is_refused(tmp_path):
    import os

    env = dict(os.environ, PARK_MICROPYTHON=str(tmp_path / "no-such-micropython"))
    args = ["sun", "--lat", "31.03", "--lon", "121.23", "--date", "2026-06-21", "--tz", "CST-8"]
    proc = subprocess.run(
        [PARKCTL, *args, "--runtime", "micropython"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert "PARK_MICROPYTHON=" in proc.stderr and "not an executable MicroPython interpreter" in proc.stderr
    assert "Traceback" not in proc.stderr
    # CPython does not need it.
    proc = subprocess.run([PARKCTL, *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
