# tests/stagecuts.py's cuts on MicroPython's own littlefs (VfsLfs2) over a
# block device in RAM whose cut_at-th program or erase is torn half-way and
# stops the code there. Run by tests/test_staging_cuts.py.

import stagecuts
from ramflash_mp import BLOCKS, BS, RamFlash


def main():
    blank = RamFlash(b"\xff" * (BS * BLOCKS), None, fresh=True).image()
    print("update", stagecuts.exhaustive(RamFlash, blank)[0], "cuts")
    print("rollback", stagecuts.exhaustive_rollback(RamFlash, blank), "cuts")
    print("twice", stagecuts.exhaustive_twice(RamFlash, blank), "cuts")


main()
