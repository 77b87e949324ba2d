"""The journal on a real littlefs2 image (the board's filesystem), through the
same littlefs the simulator gives the firmware: files survive a remount, as they
survive a reboot."""

from __future__ import annotations

from journal import Journal
from lfsos import LfsOs

from sim import cpython


def mount(image):
    fs = cpython.LittleFsVfs(image)
    return fs, Journal(LfsOs(fs), "/journal", "lamp-7", max_segments=3, segment_records=8, opener=fs.open)


def test_journal_on_littlefs_survives_remounts(tmp_path):
    image = tmp_path / "flash.img"
    cpython.make_image(image, {"/config.json": b"{}"})
    fs, j = mount(image)
    alarm = j.append("alarm", '{"press": 1}', critical=True)
    for i in range(50):
        j.append("state", f'{{"i": {i}}}')
    fs.close()
    fs, j = mount(image)  # a reboot: the image is all that is left
    assert j.boot == 2
    ids = [x[1] for x in j.undelivered(100)]
    assert ids[0] == alarm and len(ids) <= 3 * 8
    j.delivered(1)
    fs.close()
    fs, j = mount(image)
    assert alarm not in [x[1] for x in j.undelivered(100)]
    names = sorted(e[0] for e in fs.ilistdir("/journal"))
    assert names[-1] == "boot" and len(names) - 1 <= 3  # bounded: three segments at most
    assert j.seq == 51 and j.boot == 3
    fs.close()
