"""The diagnostics console (firmware/lib/console.py) against whatever a serial
line can carry: it answers every line, and garbage never ends it."""

from __future__ import annotations

import json

from console import LINE_MAX, Console
from hypothesis import given
from hypothesis import strategies as st
from uplink import CommandError


def _console() -> tuple[Console, list[str]]:
    """A console with three commands, and the lines it writes."""
    out: list[str] = []

    def fail(args: list[str], line: str) -> None:
        raise RuntimeError("broken handler")

    def refuse(args: list[str], line: str) -> None:
        raise CommandError("refused: " + " ".join(args))

    return Console(out.append, {"ping": lambda args, line: "pong", "fail": fail, "refuse": refuse}), out


def _read(out: list[str]) -> list[dict]:
    return [json.loads(x) for x in out]


@given(
    garbage=st.binary(max_size=3 * LINE_MAX),
    cuts=st.lists(st.integers(min_value=0, max_value=3 * LINE_MAX), max_size=8),
)
def test_any_bytes_in_any_pieces_then_a_command_gets_its_answer(garbage: bytes, cuts: list[int]) -> None:
    c, out = _console()
    data = garbage + b"\r\nping\r\n"
    at = sorted({min(x, len(data)) for x in cuts})
    for a, b in zip([0, *at], [*at, len(data)], strict=True):
        c.feed(data[a:b])
    got = _read(out)
    assert got[-1] == {"console": "ping", "ok": True, "data": "pong"}
    for r in got:
        assert r["ok"] in (True, False)
        assert r["ok"] or r["error"]
    # One answer per line that had something on it, at most.
    assert len(got) <= data.count(b"\n") + data.count(b"\r")


def test_an_overlong_line_is_refused_whole_and_the_next_one_works() -> None:
    c, out = _console()
    c.feed(b"ping " + b"x" * LINE_MAX + b"\nping\n")
    assert _read(out) == [
        {"console": None, "ok": False, "error": f"line longer than {LINE_MAX} bytes: ignored"},
        {"console": "ping", "ok": True, "data": "pong"},
    ]
    assert c.errors == 1


def test_a_failing_or_refusing_command_is_an_answer_not_the_end() -> None:
    c, out = _console()
    c.feed(b"fail\nrefuse now\nnope\n\xff\nping\n")
    got = _read(out)
    assert got[0] == {"console": "fail", "ok": False, "error": "RuntimeError: broken handler"}
    assert got[1] == {"console": "refuse", "ok": False, "error": "refused: now"}
    assert got[2] == {"console": "nope", "ok": False, "error": "unknown command 'nope': try help"}
    assert got[3]["error"] == "not UTF-8 text"
    assert got[4]["ok"]
    assert c.errors == 4 and c.commands == 1


def test_commands_made_by_a_function_are_made_at_the_first_line_and_a_failure_is_an_answer() -> None:
    out: list[str] = []
    made: list[int] = []

    def commands() -> dict:
        made.append(1)
        if len(made) == 1:
            raise MemoryError("allocating 1280 bytes")
        return {"ping": lambda args, line: "pong"}

    c = Console(out.append, commands)
    c.feed(b"\n\r\n")  # empty lines are not commands: nothing is loaded for them
    assert made == [] and out == []
    c.feed(b"ping\nping\nping\n")
    got = _read(out)
    assert got[0] == {
        "console": "ping",
        "ok": False,
        "error": "the console's commands could not be loaded: MemoryError: allocating 1280 bytes",
    }
    assert got[1:] == [{"console": "ping", "ok": True, "data": "pong"}] * 2
    assert made == [1, 1]  # tried again after the failure, then kept
