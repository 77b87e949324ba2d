"""A technician at the pole clears an alarm from the console (issue 22), on the
virtual board (the real MicroPython interpreter behind a serial port): a test
alarm raised with no centre reachable does not leave the pole flashing."""

from __future__ import annotations

from pathlib import Path

from parkctl.diag import Port
from parkctl.vboard import VirtualBoard
from serialline import Line
from test_vboard import RUNNING, lamp_image


def test_a_test_alarm_with_no_centre_is_cleared_on_site(tmp_path: Path) -> None:
    image = lamp_image(tmp_path / "flash.img")
    with VirtualBoard("lamp", image) as board:
        line = Line(board.port)
        line.expect(RUNNING)
        line.close()
        with Port(board.port) as p:
            r = p.ask("alarm clear")
            assert not r["ok"] and "no alarm is open" in r["error"]
            aid = p.ask("alarm test", timeout=60)["data"]["alarm"]
            st = p.ask("status")["data"]
            assert st["alarm"]["id"] == aid and st["mode"] == "alarm"
            assert p.ask("alarm clear", timeout=60)["data"] == {"cleared": aid}
            st = p.ask("status")["data"]
            assert st["alarm"] is None and st["mode"] != "alarm"
            # Journaled, waiting for the centre: the raise and the clear.
            log = p.ask("log 5")["data"]
            cleared = [e for e in log if e["kind"] == "alarm_cleared"]
            assert cleared and cleared[0]["fields"]["alarm"] == aid and cleared[0]["fields"]["on_site"]
            assert st["pending"] >= 2
            r = p.ask("alarm nonsense")
            assert not r["ok"] and "alarm clear" in r["error"]
