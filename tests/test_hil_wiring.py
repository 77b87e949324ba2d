"""The HIL rig's wiring to a real kiosk: the face module's line driven through a
USB-serial adapter in the module's place. Here a pseudo-terminal stands for the
adapter, and what comes out of it is read by the kiosk's own parser."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from parkctl.hil import WiredRig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware" / "kiosk"))

from facemodule import FACE, JsonFaceModule  # noqa: E402


def _read_all(fd: int) -> bytes:
    import select

    out = b""
    while select.select([fd], [], [], 0.5)[0]:
        out += os.read(fd, 4096)
    return out


@pytest.mark.parametrize("crc", [False, True])
def test_a_wired_rig_writes_frames_the_kiosk_reads_as_the_module_sends_them(crc: bool) -> None:
    master, slave = os.openpty()
    try:
        rig = WiredRig(None, {"face": {"port": os.ttyname(slave), "crc": crc}}, "rig (test)")  # type: ignore[arg-type]
        rig.face("1003", 0.875)
        rig.face(None, 0.25)
        rig.face("1005", 0.875, live=False)
        rig.face_line("garbage")
        rig.face_line("badcrc", "1003")
        m = JsonFaceModule(require_crc=crc)
        events = m.feed(_read_all(master))
    finally:
        os.close(master)
        os.close(slave)
    assert events == [(FACE, "1003", 0.875, True), (FACE, None, 0.25, True), (FACE, "1005", 0.875, False)]
    # With CRCs required, the garbage line (which has none) is refused for that first.
    assert (m.frames, m.bad_crc, m.malformed) == ((3, 2, 0) if crc else (3, 1, 1))


def test_a_real_kiosks_panel_and_buzzer_are_skipped_naming_why() -> None:
    rig = WiredRig(None, {}, "rig (test)")  # type: ignore[arg-type]
    with pytest.raises(pytest.skip.Exception, match="panel and buzzer cannot be read"):
        rig.frames()
    with pytest.raises(pytest.skip.Exception, match="no wiring for face"):
        rig.face("1003")
