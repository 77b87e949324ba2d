"""A power cut at every flash write of an alarm's press and of the journal's
rotations that carry an open alarm, on real littlefs (issue 20, findings 1
and 3): an alarm the pole has shown is shown again after the power returns,
under its id, on its way to the centre, and stays until the centre resolves
it. The sequences and checks are tests/flashcuts.py, run here on
littlefs-python (CPython) and on MicroPython's own VfsLfs2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import flashcuts
import pytest
from parkctl.runtime import micropython_binary, micropython_env

from sim import cpython

HERE = Path(__file__).resolve().parent
BLOCKS = 24  # 96 KiB of the board's 4 KiB blocks: room for the journal's rotations


class CpythonFlash:
    """littlefs-python over an image in RAM; its cut_at-th prog or erase is torn
    half-way. What the flash holds after that is kept, and the code runs on (its
    later writes land on a copy that no longer counts)."""

    def __init__(self, image: bytes, cut_at: int | None):
        self.vfs = cpython.LittleFsVfs(ram=image)
        self.fs = self.vfs
        self.ops = 0
        self.cut_at = cut_at
        self.cut_image: bytes | None = None
        self.on_cut = lambda: None
        ctx = self.vfs.ctx
        prog, erase = ctx.prog, ctx.erase

        def torn_prog(cfg, block, off, data):
            if self._op():
                at = block * cpython.BLOCK_SIZE + off
                self._cut(at, bytes(data[: len(data) // 2]))
            return prog(cfg, block, off, data)

        def torn_erase(cfg, block):
            if self._op():
                # NOR erases a sector as it can: here its first half is erased.
                self._cut(block * cpython.BLOCK_SIZE, b"\xff" * (cpython.BLOCK_SIZE // 2))
            return erase(cfg, block)

        ctx.prog, ctx.erase = torn_prog, torn_erase

    def _op(self) -> bool:
        self.ops += 1
        return self.ops == self.cut_at

    def _cut(self, at: int, data: bytes) -> None:
        image = bytearray(self.vfs.ctx.buffer)
        image[at : at + len(data)] = data
        self.cut_image = bytes(image)
        self.on_cut()

    def image(self) -> bytes:
        return bytes(self.vfs.ctx.buffer)


def blank() -> bytes:
    return cpython.make_ram_image({}, BLOCKS)


# The press lands at every place in a segment, so that the rotation and its
# carry-over fall before, among and after the alarm's own writes; and an open
# alarm goes through rotations that start at every place in a segment.
CASES = [
    (f"press-after-{k}-events", flashcuts.fill(k), flashcuts.press) for k in range(flashcuts.RECORDS + 1)
] + [
    (
        f"rotations-after-{k}-events",
        flashcuts.then(flashcuts.open_alarm, flashcuts.fill(k)),
        flashcuts.rotations,
    )
    for k in range(flashcuts.RECORDS)
]


@pytest.mark.parametrize(("name", "before", "sequence"), CASES, ids=[c[0] for c in CASES])
def test_a_cut_at_any_flash_write_never_loses_a_shown_alarm(name, before, sequence):
    base = flashcuts.prepared(CpythonFlash, blank(), before)
    cuts = flashcuts.exhaustive(CpythonFlash, base, sequence)
    assert cuts > 5  # the sequence really wrote to the flash


def test_the_same_cuts_on_micropython_littlefs():
    names = [c[0] for c in CASES]
    env = micropython_env()
    env["MICROPYPATH"] += ":" + str(HERE)
    proc = subprocess.run(
        [micropython_binary(), "-X", "heapsize=4M", str(HERE / "flashcuts_mp.py"), *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (Files left open in a flash that lost its power say so when collected:
    # tracebacks of CutHere from their finalisers, after the fact.)
    done = [line.split() for line in proc.stdout.splitlines() if line.endswith(" cuts")]
    assert [d[0] for d in done] == names and all(int(d[1]) > 5 for d in done), proc.stdout
