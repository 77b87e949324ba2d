"""Every `parkctl` command, given hostile arguments, answers in one line on stderr
with exit status 2 (README.md, "Exit status"): never a traceback, never a usage
block, never a run that only fails at its end.

The commands run in this process (parkctl.cli.main) so that hypothesis can try
many combinations; the cases that need a real stdout or a real process (a closed
pipe, the README's examples) run `parkctl` itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parkctl.cli import main
from test_cli_sun import parkctl

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "sim" / "scenarios"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    made = {
        "binary": b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)),
        "bom": b'\xef\xbb\xbf{"site": {}}',
        "utf16": '{"site": {}}'.encode("utf-16"),
        "latin1": '{"site": {"name": "Caf\xe9"}}'.encode("latin-1"),
    }
    out = {}
    for name, data in made.items():
        (d / f"{name}.json").write_bytes(data)
        out[name] = str(d / f"{name}.json")
    (d / "folder").mkdir()
    out["folder"] = str(d / "folder")
    out["missing"] = str(d / "no-such-dir" / "x.json")
    return out


# Where output cannot go: a folder that is not there, /proc, under a file.
UNWRITABLE = ("/proc/x", "/proc/x/y.png", "/etc/passwd/x", "{missing}/out.png")
PORTS = ("/dev/ttyUSB9", "{missing}", "{folder}", "{binary}")
BROKERS = (
    "mqtt://127.0.0.1:1",  # refused
    "mqtt://",
    "http://127.0.0.1:1",
    "mqtts://127.0.0.1:1",
    "mqtt://127.0.0.1:99999",
    "127.0.0.1",
    "",
)
NUMBERS = ("-1", "0", "-0.5", "nan", "inf", "-inf", "1e309", "x", "", "99999999999999999999")
TEXTS = ("", "-", "é", "x" * 300, "2026-02-30", "--")
BAD_FILES = ("{binary}", "{bom}", "{utf16}", "{latin1}", "{folder}", "{missing}")


def one(options) -> st.SearchStrategy[str]:
    return st.sampled_from(options)


def optional(flag: str, values) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.just([]), one(values).map(lambda v: [flag, v]))


def argv(*parts) -> st.SearchStrategy[list[str]]:
    """A command line from fixed words, [flag, value] lists and strategies."""
    strategies = [
        p if isinstance(p, st.SearchStrategy) else st.just(p if isinstance(p, list) else [p]) for p in parts
    ]
    return st.tuples(*strategies).map(lambda t: [w for part in t for w in part])


def lst(s: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return s.map(lambda v: [v])


# Every subcommand with only hostile values where it takes a value; none of these
# command lines may run anything long (each has a value that stops it at once).
COMMANDS = {
    "sun": argv(
        "sun", "--lat", lst(one(NUMBERS)), "--lon", lst(one(NUMBERS)), "--date", lst(one(TEXTS)),
        "--tz", lst(one(TEXTS)),
    ),
    "schedule": argv(
        "schedule", "--config", lst(one(BAD_FILES)), "--date", lst(one(TEXTS)),
        optional("--days", NUMBERS),
    ),
    "config check": argv("config", "check", lst(one(BAD_FILES)), optional("--app", ("lamp", "kiosk"))),
    "sim": argv(
        "sim", lst(one((*BAD_FILES, "nosuch", "nosuch.scn"))), optional("--plot", UNWRITABLE),
        optional("--frames", UNWRITABLE), optional("--lamps", NUMBERS), optional("--jobs", NUMBERS),
        optional("--realtime", NUMBERS), optional("--broker", BROKERS), optional("--seed", NUMBERS),
    ),
    "sim, good scenario": argv(
        "sim", lst(one(("lamp-failure", "winter-night"))),
        st.one_of(
            one(UNWRITABLE).map(lambda v: ["--plot", v]),
            one(UNWRITABLE).map(lambda v: ["--frames", v]),
            one(("-1", "0", "nan", "-inf")).map(lambda v: ["--realtime", v]),
            one(("-1", "0", "100001")).map(lambda v: ["--lamps", v]),
            one(("-1", "0")).map(lambda v: ["--jobs", v, "--lamps", "2"]),
        ),
    ),
    "monitor": argv("monitor", "--broker", lst(one(BROKERS)), optional("--once", ("--json",))),
    "alarms": argv("alarms", "--broker", lst(one(BROKERS))),
    "ack": argv("ack", lst(one(TEXTS[1:])), "--broker", lst(one(BROKERS)), optional("--timeout", NUMBERS)),
    "resolve": argv("resolve", "x", "--broker", lst(one(BROKERS)), optional("--timeout", NUMBERS)),
    "status": argv(
        "status", lst(one(TEXTS[1:])), "--broker", lst(one(BROKERS)), optional("--timeout", NUMBERS),
    ),
    "override": argv(
        "override", lst(one(TEXTS[1:])), "--broker", lst(one(BROKERS)), optional("--level", NUMBERS),
        optional("--minutes", NUMBERS), optional("--clear", ("--json",)), optional("--ca", BAD_FILES),
    ),
    "config push": argv(
        "config", "push", lst(one(TEXTS[1:])), lst(one(BAD_FILES)), "--broker", lst(one(BROKERS)),
        optional("--secrets", BAD_FILES),
    ),
    "broker": argv(
        "broker", "--dir", lst(one(UNWRITABLE[:3])), "--port", lst(one(NUMBERS)),
        optional("--cert", BAD_FILES), optional("--plain-port", NUMBERS),
    ),
    "provision --centre": argv(
        "provision", "--centre", "--broker-dir", lst(one(UNWRITABLE[:3])), optional("--secrets", BAD_FILES),
    ),
    "campaign": argv(
        "campaign", "power-cuts", "--trials", lst(one(("-1", "0", "x", "nan", ""))),
        optional("--runtime", ("cpython", "toaster")), optional("--out", UNWRITABLE[:3]),
    ),
    "vboard": argv("vboard", lst(one(("lamp", "kiosk", "toaster"))), "--flash", lst(one(BAD_FILES))),
    "deploy": argv(
        "deploy", lst(one(("lamp", "kiosk"))), "--port", lst(one(PORTS)),
        optional("--device-config", BAD_FILES), optional("--chip", ("esp32", "esp8266")),
    ),
    "diag": argv(
        "diag", "--port", lst(one(PORTS)), optional("--timeout", NUMBERS),
        lst(one(("status", "log", "time", "config", "face", "purge", "selftest", "nosuch"))),
        st.lists(one((*TEXTS, "set", "validate", "{binary}")), max_size=3),
    ),
    "provision": argv(
        "provision", "--inventory", lst(one(BAD_FILES)), "--device", lst(one(TEXTS[1:])),
        "--port", lst(one(PORTS)), optional("--secrets", BAD_FILES), optional("--ca", BAD_FILES),
    ),
    "hil": argv("hil", "--board", lst(one(("vboard:toaster", *PORTS))), optional("--rig", BAD_FILES)),
    "build": argv(
        "build", lst(one(("lamp", "kiosk"))), "--out", lst(one(UNWRITABLE[:3])),
        optional("--chip", ("esp32", "esp32s3", "vboard")), optional("--firmware", BAD_FILES),
        optional("--device-config", BAD_FILES),
    ),
    "build, bad input": argv(
        "build", lst(one(("lamp", "kiosk"))), "--out", lst(one(UNWRITABLE[:3])),
        st.one_of(
            one(BAD_FILES).map(lambda v: ["--firmware", v]),
            one(BAD_FILES).map(lambda v: ["--device-config", v]),
        ),
    ),
    "flash": argv(
        # (esptool's own answer for a port that is a file: tests/test_build.py)
        "flash", lst(one(("lamp", "kiosk"))), "--port", lst(one(PORTS[:3])),
        optional("--firmware", BAD_FILES), optional("--baud", NUMBERS), optional("--out", UNWRITABLE[:3]),
    ),
    "release keygen": argv("release", "keygen", "--out", lst(one(UNWRITABLE[:3]))),
    "release sign": argv(
        "release", "sign", "--app", lst(one(("lamp", "kiosk"))), "--version", lst(one((*TEXTS[1:], "1.0"))),
        "--key", lst(one(BAD_FILES)), "--out", lst(one(("{folder}/rel", *UNWRITABLE[:3]))),
        optional("--build", BAD_FILES),
    ),
    "release verify": argv(
        "release", "verify", lst(one(BAD_FILES)), "--key", lst(one(BAD_FILES)),
        "--app", lst(one(("lamp", "kiosk", "toaster"))), optional("--running", TEXTS[1:]),
    ),
    "rollout": argv(
        "rollout", lst(one(("--release", "--key"))), lst(one(BAD_FILES)), "--broker", lst(one(BROKERS)),
        optional("--waves", TEXTS), optional("--deadline", NUMBERS), optional("--trial", NUMBERS),
        optional("--state", UNWRITABLE),
    ),
    "rollout --resume": argv(
        "rollout", lst(one(("--resume", "--abort"))), "--state", lst(one((*BAD_FILES, *UNWRITABLE))),
        "--broker", lst(one(BROKERS)),
    ),
    "parser": st.lists(
        one(("sim", "diag", "--lamps", "--port", "x", "-z", "--json", "config", "nosuch")), max_size=4
    ).map(lambda words: [*words, "--no-such-option"]),
}  # fmt: skip


class Hung(Exception):
    pass


def _hung(signum, frame):
    raise Hung("the command was still running after 60 s")


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # Every line here must be refused at once: one that runs (a board that serves
    # for ever) fails the test rather than hanging the suite.
    old = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(60)
    try:
        status = main(args)
    except SystemExit as e:  # argparse's errors (and --help, which no list here has)
        status = e.code if isinstance(e.code, int) else 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("command", list(COMMANDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_arguments_get_one_line_and_status_2(
    command: str, data: st.DataObject, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.format(**files) for a in data.draw(COMMANDS[command])]
    status, err = run_main(args, capsys)
    # Exit status 0 or 1 would mean the hostile value was taken as good: a failed
    # check (1) needs input that could be read, and here none can.
    assert status == 2, (args, status, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (args, err)
    assert lines[0].startswith("parkctl") and ": error: " in lines[0], (args, err)


def bad_file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"\x7fELF\x02\x01\x01\x00" + bytes(100), "is a binary file, not text"),
        (b'\xef\xbb\xbf{"site": {}}', "starts with a UTF-8 byte-order mark"),
        ('{"site": {}}'.encode("utf-16"), "is UTF-16 text"),
        ('{"a": "\xe9"}\n'.encode("latin-1"), "is not UTF-8 text (byte 0xe9 on line 1)"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_named_alike_by_every_command(tmp_path, data, said):
    # Regression: each printed a UnicodeDecodeError's traceback (issues 21 and 22).
    path = bad_file(tmp_path, "x.json", data)
    for args in (
        ["config", "check", path],
        ["schedule", "--config", path, "--date", "2026-12-21"],
        ["sim", path],
        ["build", "lamp", "--out", str(tmp_path / "out"), "--device-config", path],
    ):
        proc = parkctl(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and f"{path} {said}" in proc.stderr, (args, proc.stderr)
    # A scenario's own `config` line is read the same way.
    scn = tmp_path / "x.scn"
    scn.write_text("config x.json\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\n")
    proc = parkctl("sim", str(scn))
    assert proc.returncode == 2 and said in proc.stderr and proc.stderr.count("\n") == 1


def test_the_issues_tracebacks_are_one_line_each(tmp_path):
    """The cases issue 22 found, each of which printed a traceback."""
    cases = [
        (("sim", "lamp-failure", "--plot", str(tmp_path / "nodir" / "x.png")), "there is no folder"),
        (("sim", "winter-night", "--broker", "mqtt://127.0.0.1:1"), "cannot reach the broker"),
        (("build", "lamp", "--out", "/proc/x"), "--out /proc/x: cannot make that folder"),
        (("hil", "--board", "/dev/ttyUSB9"), "--board /dev/ttyUSB9: no serial port"),
        (
            ("diag", "--port", "/dev/ttyUSB9", "--timeout", "-1", "status"),
            "--timeout needs a number of seconds above 0",
        ),
        (("sim", "nosuch"), "no scenario nosuch: give a file, or one of alarm-night, dst-night-cet,"),
        (("sim", "kiosk-morning", "--plot", str(tmp_path / "k.png")), "--plot draws a lamp's level"),
        (("sim", "--lamps"), "expected one argument (see parkctl sim --help)"),
    ]
    for args, said in cases:
        proc = parkctl(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and said in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr
    assert not (tmp_path / "nodir").exists()


def test_a_reader_that_stops_early_gets_no_traceback():
    # Regression: `parkctl sim ... --json | head` ended in a BrokenPipeError traceback.
    cmd = [str(Path(sys.executable).parent / "parkctl"), "sim", "winter-night", "--json"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # as `head -1` does
        err = proc.stderr.read()
        status = proc.wait(timeout=120)
    assert json.loads(first)["kind"] == "reset"
    assert err == b"" and status == 141  # quiet, as a tool that SIGPIPE stopped


def test_a_check_that_fails_exits_1_and_a_refusal_2(tmp_path):
    """The rule (README.md, "Exit status"): 1 for a check that ran and failed,
    2 for what could not be done as asked."""
    bad = json.loads((ROOT / "firmware" / "lamp" / "config.json").read_text())
    bad["site"]["lat"] = 95
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert parkctl("config", "check", str(path)).returncode == 1  # checked: not valid
    assert parkctl("schedule", "--config", str(path), "--date", "2026-12-21").returncode == 2  # cannot
    assert os.path.exists(SCENARIOS / "lamp-failure.scn")
