"""The configuration store (firmware/lib/configstore.py) against a power cut at
every flash write of a save, a confirm and a rollback, and of the boot that
follows, on the real littlefs the simulator gives the firmware: the board
always boots with the old or the new configuration, nothing is left on trial
that is not a configuration, and nothing the app calls raises after it
(issue 20, finding 4).

The flash is littlefs-python over a RAM image (sim/cpython.py). Each program
and erase of an operation run with power throughout is recorded; a cut at the
k-th is the image before it with the first k done and the k-th torn as a NOR
flash tears it: a program done for its first half, an erase for the first half
of its block. Nothing runs after the cut (littlefs is not asked to go on over a
flash that has stopped), and the boot that follows is cut the same way."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lampconfig import loads
from lfsos import LfsOs

from sim import cpython

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "firmware/lamp/config.json").read_text()
BLOCKS = 32  # 128 KiB: small, so that littlefs's compactions and erases come often


def named(name: str) -> str:
    cfg = json.loads(SHIPPED)
    cfg["site"]["name"] = name
    return json.dumps(cfg)


class Recorder:
    """Every program and erase of the flash under `fs`, in order."""

    def __init__(self, fs: cpython.LittleFsVfs):
        self.ops: list[tuple[int, int, bytes | None]] = []  # (block, offset, data); None: an erase
        ctx = fs.ctx
        prog, erase = ctx.prog, ctx.erase

        def _prog(cfg, block, off, data):
            self.ops.append((block, off, bytes(data)))
            return prog(cfg, block, off, data)

        def _erase(cfg, block):
            self.ops.append((block, 0, None))
            return erase(cfg, block)

        ctx.prog, ctx.erase = _prog, _erase


def torn(ram: bytes, ops: list[tuple[int, int, bytes | None]], k: int) -> bytes:
    """The flash after a cut in the k-th operation: those before it done, it torn."""
    out = bytearray(ram)
    for i, (block, off, data) in enumerate(ops[: k + 1]):
        start = block * cpython.BLOCK_SIZE + off
        if data is None:
            n = cpython.BLOCK_SIZE if i < k else cpython.BLOCK_SIZE // 2
            out[start : start + n] = b"\xff" * n
        else:
            n = len(data) if i < k else len(data) // 2
            for j in range(n):  # NOR: programming only clears bits
                out[start + j] &= data[j]
    return bytes(out)


def store_on(fs: cpython.LittleFsVfs):
    """A Store whose files are on `fs` (the board's open, as the simulator gives it)."""
    spec = importlib.util.find_spec("configstore")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.open = fs.open  # type: ignore[attr-defined]
    return module.Store(LfsOs(fs), "/lamp.json", "/config.json", loads)


# Flash contents before the operation (besides the shipped /config.json).
BEFORE = {
    "nothing installed": {},
    "a confirmed one": {"/lamp.json": named("Old"), "/lamp.json.good": named("Old")},
    "on trial, nothing before": {"/lamp.json.trial": named("Old")},
    "on trial over a confirmed one": {
        "/lamp.json": named("Older"),
        "/lamp.json.good": named("Older"),
        "/lamp.json.trial": named("Old"),
    },
    "older firmware's trial": {"/lamp.json": named("Old"), "/lamp.json.trial": ""},
    "older firmware's stray marker": {"/lamp.json.trial": ""},
}

OPERATIONS: dict[str, Callable] = {
    "save on trial": lambda s: s.save(named("New"), trial=True),
    "save": lambda s: s.save(named("New")),
    "confirm": lambda s: s.confirm(),
    "rollback": lambda s: s.rollback(),
}


def image(files: dict[str, str]) -> bytes:
    files = {"/config.json": SHIPPED, **files}
    return cpython.make_ram_image({k: v.encode() for k, v in files.items()}, BLOCKS)


def run(ram: bytes, fn) -> tuple[bytes, list, Any]:
    """fn(store) on the flash `ram`, power on throughout: (the flash after, its writes, what fn gave)."""
    fs = cpython.LittleFsVfs(ram=ram)
    rec = Recorder(fs)
    out = fn(store_on(fs))
    after = bytes(fs.ctx.buffer)
    fs.close()
    return after, rec.ops, out


def boot(ram: bytes):
    """Power on: (the flash after the boot, its writes, (name in force, on trial, files))."""

    def load(store):
        name = store.load().name
        return name, store.trial, sorted(e[0] for e in store.os.fs.ilistdir("/"))

    return run(ram, load)


def check_boots(ram: bytes, may: set[str]) -> None:
    """Boot the flash a cut left, and again after a cut at every write of that
    boot: always a configuration that may be in force, no unfinished write left
    behind, on trial exactly when a trial is on the flash; and what the pass
    then calls (confirm, or a stray rollback) raises nothing and leaves a board
    that boots the same."""
    after, ops, (name, trial, files) = boot(ram)
    assert name in may
    assert not [n for n in files if n.endswith(".tmp")], files
    assert trial == ("lamp.json.trial" in files), files
    for k in range(len(ops)):
        _, _, (again, _, left) = boot(torn(ram, ops, k))
        assert again in may
        assert not [n for n in left if n.endswith(".tmp")], left
    for step in ("confirm", "rollback"):
        if step == "rollback" and trial:
            continue  # a rollback of a trial changes what is in force: tested as an operation
        done, _, _ = run(after, OPERATIONS[step])
        _, _, (again, trial_again, _) = boot(done)
        assert again == name and not trial_again


def expected(before: dict[str, str], op: str) -> tuple[set[str], str, bool]:
    """(names that may be in force after a cut in `op`, the one without a cut, on trial then)."""
    _, _, (in_force, _, _) = boot(image(before))
    if op == "confirm":
        return {in_force}, in_force, False
    if op == "rollback":
        files = {k: v for k, v in before.items() if k != "/lamp.json.trial"}
        if before.get("/lamp.json.trial") == "":
            files.pop("/lamp.json", None)  # older firmware's trial: <path> was the trial
        _, _, (back, _, _) = boot(image(files))
        return {in_force, back}, back, False
    return {in_force, "New"}, "New", op == "save on trial"


@pytest.mark.parametrize("op", list(OPERATIONS))
@pytest.mark.parametrize("before", list(BEFORE))
def test_a_cut_at_any_write_leaves_the_old_or_the_new_configuration(before, op):
    may, done, trial_after = expected(BEFORE[before], op)
    booted, _, _ = boot(image(BEFORE[before]))
    after, ops, _ = run(booted, OPERATIONS[op])
    _, _, (name, trial, _) = boot(after)
    assert (name, trial) == (done, trial_after)
    assert ops or op in ("confirm", "rollback")
    for k in range(len(ops)):
        check_boots(torn(booted, ops, k), may)
    check_boots(after, may)
