# tests/flashcuts.py's cases on MicroPython's own littlefs (VfsLfs2) over a
# block device in RAM whose cut_at-th program or erase is torn half-way and
# stops the code there, as the simulator's flash does. Run by
# tests/test_alarm_flash_cuts.py: micropython flashcuts_mp.py CASE...

import sys

import flashcuts
from ramflash_mp import BLOCKS, BS, RamFlash


def main():
    blank = RamFlash(b"\xff" * (BS * BLOCKS), None, fresh=True).image()
    cases = {}
    for k in range(flashcuts.RECORDS + 1):
        cases["press-after-%d-events" % k] = (flashcuts.fill(k), flashcuts.press)
    for k in range(flashcuts.RECORDS):
        cases["rotations-after-%d-events" % k] = (
            flashcuts.then(flashcuts.open_alarm, flashcuts.fill(k)),
            flashcuts.rotations,
        )
    for name in sys.argv[1:]:
        before, sequence = cases[name]
        base = flashcuts.prepared(RamFlash, blank, before)
        print(name, flashcuts.exhaustive(RamFlash, base, sequence), "cuts")


main()
