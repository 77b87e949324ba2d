"""Power cut part-way through flash writes on the virtual board: the real MicroPython
interpreter and its own littlefs (VfsLfs2), with the simulator's flash model under
it (docs/sim.md, "The flash"), the firmware running and mpremote attached. What the
simulator shows of a cut holds there too: the board powers on again, runs its
schedule, answers mpremote, and its flash mounts with everything committed before
the cut."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from parkctl.vboard import VirtualBoard
from serialline import Line
from test_vboard import MPREMOTE, RUNNING, _fs, lamp_image, mpremote

POWER_ON = rb"rst:0x1 \(POWERON_RESET\)"


def _wait_for_control(board: VirtualBoard) -> None:
    # The world takes stimuli once the interpreter has connected back.
    deadline = time.monotonic() + 30
    while True:
        try:
            board.stimulate({"do": "probe", "id": 0})  # changes nothing
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_cuts_in_the_lamps_writes_and_in_mpremotes(tmp_path: Path) -> None:
    image = lamp_image(tmp_path / "flash.img")
    with VirtualBoard("lamp", image) as board:
        line = Line(board.port)
        line.expect(RUNNING, timeout=30)
        # A press: the lamp journals it, and the power goes in the first write.
        _wait_for_control(board)
        board.cut_at_flash_op(1)
        board.stimulate({"do": "press", "ms": 300})
        line.expect(POWER_ON, timeout=20)
        line.expect(RUNNING, timeout=30)
        line.close()
        # mpremote writes a file, and the power goes in its n-th operation (armed
        # again in the interpreter mpremote's soft reboot starts): mpremote sees the
        # board stop, and the board comes back each time.
        for k, n in enumerate((1, 3, 6), start=2):
            board.cut_at_flash_op(n)
            subprocess.run(
                [
                    "timeout",
                    "30",
                    MPREMOTE,
                    "connect",
                    board.port,
                    "exec",
                    f"open('/cut{n}.txt', 'w').write('x' * 3000)",
                ],
                capture_output=True,
                check=False,
            )
            deadline = time.monotonic() + 30
            while board.cuts < k and time.monotonic() < deadline:
                time.sleep(0.1)
        assert board.cuts == 4
        listing = mpremote(board.port, "fs", "ls")
        assert "main.py" in listing
    fs = _fs(image)  # kept: its files must not outlive it (littlefs-python)
    for n in (1, 3, 6):
        try:
            with fs.open(f"cut{n}.txt", "r") as f:
                assert f.read() in ("", "x" * 3000)
        except FileNotFoundError:
            pass
    assert "events" in fs.listdir("/")
