# The on-flash journal: nothing lost, bounded, torn records skipped.
# CPython, float32, MicroPython (real files in a temp folder; tests/test_journal_littlefs.py
# runs it on a littlefs image).

import os

from fwtest import raises, read, tempdir, write
from journal import Journal


def new(folder=None, **kw):
    return Journal(os, folder or tempdir() + "/j", "lamp-7", **kw)


def test_append_deliver_and_ids():
    j = new()
    assert j.boot == 1
    a = j.append("alarm", '{"press": 1}', critical=True)
    b = j.append("fault", '{"name": "lamp_failure"}')
    assert (a, b) == ("lamp-7-1-1", "lamp-7-1-2")
    assert [(seq, kind) for seq, _, kind, _ in j.undelivered()] == [(1, "alarm"), (2, "fault")]
    j.delivered(1)
    assert [x[1] for x in j.undelivered()] == ["lamp-7-1-2"]
    assert raises(ValueError, j.append, "two words", "{}")
    assert raises(ValueError, j.append, "x", "{\n}")


def test_a_reboot_keeps_what_was_not_delivered():
    folder = tempdir() + "/j"
    j = new(folder)
    j.append("alarm", '{"n": 1}', critical=True)
    j.append("state", '{"n": 2}')
    j.delivered(2)
    j2 = new(folder)  # power cut, boot again
    assert j2.boot == 2
    assert [(x[1], x[3]) for x in j2.undelivered()] == [("lamp-7-1-1", '{"n": 1}')]
    # Sequence numbers go on; the id says which boot journaled it.
    assert j2.append("state", "{}") == "lamp-7-2-3"


def test_a_torn_record_is_skipped_and_the_rest_kept():
    folder = tempdir() + "/j"
    j = new(folder)
    j.append("alarm", '{"n": 1}', critical=True)
    j.append("alarm", '{"n": 2}', critical=True)
    path = folder + "/00000001.log"
    text = read(path)
    write(path, text + text.splitlines()[1][:20])  # a third record, cut short by a power cut
    j2 = new(folder)
    assert [x[3] for x in j2.undelivered()] == ['{"n": 1}', '{"n": 2}']
    assert j2.torn == 1
    # The next record does not get glued to the torn one: it is read back whole.
    j2.append("alarm", '{"n": 3}', critical=True)
    assert [x[3] for x in new(folder).undelivered()] == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    # A bit flipped inside a record: its CRC no longer matches.
    lines = read(path).splitlines()
    write(path, lines[0].replace('"n": 1', '"n": 7') + "\n" + lines[1] + "\n")
    j3 = new(folder)
    assert [x[3] for x in j3.undelivered()] == ['{"n": 2}', '{"n": 3}'] and j3.torn == 1


def test_bounded_delivered_first_then_plain_events_never_alarms():
    folder = tempdir() + "/j"
    j = new(folder, max_segments=3, segment_records=4)
    for i in range(40):  # delivered as they go: the journal stays small
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
    assert len([n for n in os.listdir(folder) if n.endswith(".log")]) <= 3
    assert j.dropped == 0
    alarm = j.append("alarm", '{"help": true}', critical=True)
    for i in range(30):  # offline: nothing delivered any more
        j.append("state", '{"i": %d}' % i)
    assert j.dropped > 0  # old plain events made room ...
    kept = [x[1] for x in j.undelivered(100)]
    assert alarm in kept  # ... the alarm never
    assert len([n for n in os.listdir(folder) if n.endswith(".log")]) <= 3
    # And after a reboot, the alarm is still there, once.
    assert [x[1] for x in new(folder).undelivered(100)].count(alarm) == 1


def test_alarms_outrank_the_bound():
    folder = tempdir() + "/j"
    j = new(folder, max_segments=2, segment_records=2)
    ids = [j.append("alarm", '{"n": %d}' % i, critical=True) for i in range(9)]
    assert [x[1] for x in j.undelivered(100)] == ids


def _person(body):
    return body.split('"person": "', 1)[1].split('"', 1)[0] if '"person"' in body else None


def test_erase_removes_a_persons_records_delivered_or_not_and_keeps_the_rest():
    folder = tempdir() + "/j"
    j = new(folder, max_segments=4, segment_records=3)
    for i in range(8):
        j.append("checkin", '{"person": "%s", "ts": %d}' % ("p1" if i % 3 == 0 else "p2", i), True)
    j.append("alarm", '{"n": 1}', critical=True)
    j.delivered(1)  # p1, delivered
    j.delivered(2)
    n = j.erase(lambda seq, kind, body, pending: kind == "checkin" and _person(body) == "p1")
    assert n == 3  # seqs 1, 4, 7
    left = [(seq, kind) for seq, _, kind, _ in j.find(lambda seq, kind: True)]
    assert left == [
        (2, "checkin"),
        (3, "checkin"),
        (5, "checkin"),
        (6, "checkin"),
        (8, "checkin"),
        (9, "alarm"),
    ]
    assert sorted(j.pending) == [3, 5, 6, 8, 9]
    # On flash, not just in RAM: a reboot finds the same, and appends go on.
    j2 = new(folder, max_segments=4, segment_records=3)
    assert sorted(j2.pending) == [3, 5, 6, 8, 9]
    assert "p1" not in "".join(body for _, _, _, body in j2.find(lambda seq, kind: True))
    assert j2.append("checkin", '{"person": "p3", "ts": 9}', True).endswith("-10")
    assert [x[0] for x in j2.undelivered(10)] == [3, 5, 6, 8, 9, 10]


def test_erase_of_delivered_records_leaves_pending_ones():
    j = new()
    for i in range(5):
        j.append("checkin", '{"person": "p%d", "ts": %d}' % (i, i), True)
    for seq in (1, 2, 4):
        j.delivered(seq)
    assert j.erase(lambda seq, kind, body, pending: not pending) == 3
    assert [x[0] for x in j.find(lambda seq, kind: True)] == [3, 5]
    assert sorted(j.pending) == [3, 5]
    assert j.erase(lambda seq, kind, body, pending: not pending) == 0


def test_rewrite_changes_bodies_in_place_and_a_reboot_reads_them():
    folder = tempdir() + "/j"
    j = new(folder)
    j.append("checkin", '{"person": "p1", "ts": null, "mono": 5}', True)
    j.append("boot", '{"ts": null}')
    j.append("checkin", '{"person": "p2", "ts": 100}', True)

    def fix(seq, kind, body, pending):
        return body.replace('"ts": null, "mono": 5', '"ts": 95') if kind == "checkin" else body

    assert j.rewrite(fix) == (0, 1)
    assert raises(ValueError, j.rewrite, lambda seq, kind, body, pending: body + "\n")
    j2 = new(folder)
    bodies = [b for _, _, _, b in j2.undelivered(10)]
    assert bodies == ['{"person": "p1", "ts": 95}', '{"ts": null}', '{"person": "p2", "ts": 100}']


def _fragment():
    """Fill the heap with 2 KB blocks and free every other one: no free block of
    RAM larger than that is left (a heap after weeks of running). MicroPython
    only: gives the blocks to keep alive, None elsewhere."""
    import sys

    if sys.implementation.name != "micropython":
        return None
    import gc

    gc.collect()
    blocks = []
    try:
        while True:
            blocks.append(bytearray(2048))
    except MemoryError:
        pass
    for i in range(0, len(blocks), 2):
        blocks[i] = None
    gc.collect()
    return blocks


def test_a_full_journal_of_undelivered_events_needs_no_large_block_of_ram():
    # A lamp offline for months keeps 512 undelivered events (8 segments of 64),
    # in a heap fragmented by weeks of running: what the journal keeps in RAM for
    # them must grow in small blocks. One dict for all of them needed 8 KB in one
    # piece, and failed in the simulated year.
    j = new()
    holes = _fragment()
    for n in range(600):
        j.append("level", '{"n": %d}' % n, critical=n % 100 == 0)
    del holes
    assert 7 * 64 <= len(j.pending) <= 8 * 64
    assert sorted(j.pending)[-1] == 600 and 1 in j.pending and 101 in j.pending
    assert j.critical(1) and not j.critical(600)
    j.delivered(600)
    assert 600 not in j.pending and not j.critical(1 + 600)


def _logs(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".log"))


def test_a_torn_line_at_the_end_of_a_segment_that_then_rotates():
    # The torn tail of an old segment goes with it; the alarm before it is
    # carried into the newest segment, whole and once.
    folder = tempdir() + "/j"
    j = new(folder, max_segments=2, segment_records=3)
    alarm = j.append("alarm", '{"help": true}', critical=True)
    j.delivered(int(j.append("state", "{}").split("-")[-1]))
    path = folder + "/00000001.log"
    text = read(path)
    write(path, text + text.splitlines()[0][:25])  # a record cut short
    j = new(folder, max_segments=2, segment_records=3)
    assert j.torn == 1
    for i in range(10):  # rotations: segment 1 (and its fragment) goes
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
    assert "00000001.log" not in _logs(folder) and len(_logs(folder)) <= 2
    j = new(folder, max_segments=2, segment_records=3)
    assert [x[1] for x in j.undelivered(100)] == [alarm] and j.torn == 0


class _Cut(Exception):
    pass


class _PowerGoesAtRemove:
    """os, but the power goes as the journal removes a segment."""

    armed = True

    def listdir(self, path):
        return os.listdir(path)

    def mkdir(self, path):
        os.mkdir(path)

    def rename(self, a, b):
        os.rename(a, b)

    def remove(self, path):
        if self.armed:
            raise _Cut()
        os.remove(path)


def test_a_carry_over_cut_before_the_old_segment_is_removed():
    # The copy is in the newest segment, the old one is still there (a cut
    # between the two): the alarm is read once, a delivered one stays
    # delivered, and the next rotation carries it again without a duplicate.
    folder = tempdir() + "/j"
    kw = {"max_segments": 2, "segment_records": 2}
    j = Journal(_PowerGoesAtRemove(), folder, "lamp-7", **kw)
    alarm = j.append("alarm", '{"help": true}', critical=True)
    try:
        for _ in range(4):
            j.delivered(int(j.append("state", "{}").split("-")[-1]))
        assert False, "no rotation"
    except _Cut:
        pass
    assert "00000001.log" in _logs(folder)
    assert [x[1] for x in new(folder, **kw).find(lambda seq, kind: kind == "alarm")] == [alarm]
    j = new(folder, **kw)
    # (The delivery whose ack the cut stopped is sent again: at least once.)
    assert [x[1] for x in j.undelivered(100) if x[2] == "alarm"] == [alarm]
    for seq, _, kind, _ in j.undelivered(100):
        if kind != "alarm":
            j.delivered(seq)
    for i in range(6):
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
    j = new(folder, **kw)
    assert [x[1] for x in j.undelivered(100)] == [alarm]
    assert [x[1] for x in j.find(lambda seq, kind: kind == "alarm")] == [alarm]
    j.delivered(int(alarm.split("-")[-1]))
    for i in range(6):
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
    assert new(folder, **kw).undelivered(100) == [] and len(_logs(folder)) <= 2


def test_a_torn_carry_over_leaves_the_old_segment_to_be_read():
    # The copy itself cut short: a fragment in the newest segment, the old
    # segment whole. The alarm is read from the old one; nothing is glued to
    # the fragment; a later rotation carries it whole.
    folder = tempdir() + "/j"
    kw = {"max_segments": 2, "segment_records": 2}
    j = Journal(_PowerGoesAtRemove(), folder, "lamp-7", **kw)
    alarm = j.append("alarm", '{"help": true}', critical=True)
    try:
        for _ in range(4):
            j.delivered(int(j.append("state", "{}").split("-")[-1]))
    except _Cut:
        pass
    newest = folder + "/" + _logs(folder)[-1]
    write(newest, read(newest)[:30])  # the carry-over, torn
    j = new(folder, **kw)
    assert [x[1] for x in j.undelivered(100) if x[2] == "alarm"] == [alarm] and j.torn == 1
    for seq, _, kind, _ in j.undelivered(100):
        if kind != "alarm":
            j.delivered(seq)
    for i in range(8):
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
    j = new(folder, **kw)
    assert [x[1] for x in j.undelivered(100)] == [alarm] and j.torn == 0


def test_a_fresh_record_gets_a_segment_of_its_own_and_the_bound_comes_back():
    # An alarm's raise: alone in a new segment (littlefs keeps so small a file
    # in its folder's metadata: the quickest write), no rotation before it;
    # the next append rotates.
    folder = tempdir() + "/j"
    kw = {"max_segments": 2, "segment_records": 3}
    j = new(folder, **kw)
    for i in range(6):
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
    before = _logs(folder)
    assert len(before) == 2
    alarm = j.append("alarm_raised", '{"presses": 1}', True, None, True)
    logs = _logs(folder)
    assert logs[:-1] == before and len(logs) == 3  # nothing removed before it
    assert read(folder + "/" + logs[-1]).count("\n") == 1
    j = new(folder, **kw)  # a reboot in between changes nothing
    j.append("mode", '{"detail": "alarm"}')
    assert len(_logs(folder)) == 2
    assert [x[1] for x in new(folder, **kw).undelivered(10)] == [alarm, "lamp-7-2-8"]


def test_held_records_are_carried_delivered_and_the_bound_holds():
    # A segment of nothing but a record the app holds (an open alarm's raise,
    # delivered; its ack in the next segment): each rotation carries it with
    # its ack, so it stays on flash, is not sent again, and its segment goes:
    # the bound holds.
    from journal import _line

    folder = tempdir() + "/j"
    kw = {"max_segments": 2, "segment_records": 2}
    new(folder, **kw)  # the folder
    write(folder + "/00000001.log", _line(1, 1, "alarm_raised", True, '{"presses": 1}'))
    write(folder + "/00000002.log", _line(1, "-", "ack", False, '""'))
    raised = "lamp-7-1-1"

    def keep(eid, kind, body):
        return eid == raised

    j = new(folder, **kw)
    j.hold(keep)
    assert j.undelivered(10) == []
    for i in range(12):
        j.delivered(int(j.append("state", '{"i": %d}' % i).split("-")[-1]))
        assert len(_logs(folder)) <= 2, _logs(folder)
    j = new(folder, **kw)
    j.hold(keep)
    assert [x[1] for x in j.find(lambda seq, kind: kind == "alarm_raised")] == [raised]
    assert j.undelivered(10) == []
