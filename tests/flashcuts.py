# A power cut at every flash write of the alarm's sequences, on real littlefs:
# CPython (littlefs-python, tests/test_alarm_flash_cuts.py) and MicroPython
# (its own VfsLfs2, run by the same test in the interpreter). Written once for
# both: no typing, no f-strings.
#
# A backend gives a Flash: `fs` (open, ilistdir, mkdir, rename, remove, as
# MicroPython's VfsLfs2), `ops` (prog and erase operations so far) and, when
# its cut_at-th operation comes, a torn write (half a program, half an erase)
# after which it calls on_cut() and keeps the image as that left it
# (`cut_image`). MicroPython's stops the code there (CutHere, as the
# simulator's flash does); littlefs-python cannot raise through its callbacks,
# so there the code runs on over a flash whose later writes no longer count.
#
# After each cut the flash is booted again (a new Journal and Alarms, as the
# lamp's boot makes them) and checked: an alarm the pole was showing at the
# cut is shown again, under its id, and its raise is either waiting to be
# sent or was acknowledged by the broker before the cut; then the journal
# goes on through rotations and another boot, and the centre's resolve closes
# it for good.

import json

from alarm import DELIVERED, KINDS, Alarms
from journal import Journal
from lfsos import CutHere, LfsOs  # noqa: F401 - CutHere: the backends raise it

FLASH = [[100, 700], [20, 300]]
T = 1797855190
MAX_SEGMENTS = 3
RECORDS = 4


class Pin:
    def __init__(self):
        self.v = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class Board:
    """The lamp's journal and alarm over one flash, wired as main.py wires them."""

    def __init__(self, fs, acked=None):
        def opener(path, mode="r"):  # VfsLfs2.open wants its mode
            return fs.open(path, mode)

        self.j = Journal(LfsOs(fs), "/events", "lamp-7", MAX_SEGMENTS, RECORDS, opener=opener)
        # The seqs the broker acknowledged (PUBACK), noted before the journal is
        # told: the broker's memory, which outlives the board's.
        self.acked = dict(acked or {})
        self.a = Alarms(Pin(), FLASH, self.post, self.reserve)
        self.a.restore(self.j.find(_alarm_kinds), 0)
        self.j.hold(self.a.holds)

    def post(self, kind, fields, critical=False, seq=None):
        fields["ts"] = T
        # A raise in a segment of its own, as main.py does.
        return self.j.append(kind, json.dumps(fields), critical, seq, kind == "alarm_raised")

    def reserve(self):
        seq = self.j.reserve()
        return seq, self.j.event_id(seq)

    def shown(self):
        return self.a.level(0) is not None

    def deliver(self, limit=8):
        """The uplink: what is waiting, oldest first, acknowledged by the broker
        (`limit` events a round, four rounds)."""
        for _ in range(4):
            waiting = self.j.undelivered(limit)
            if not waiting:
                return
            for seq, eid, kind, _ in waiting:
                self.acked[seq] = True
                self.j.delivered(seq)
                if kind == "alarm_raised":
                    self.a.delivered(eid)

    def events(self, n):
        for i in range(n):
            self.post("level", {"detail": "%d" % i})
            self.deliver()


def _alarm_kinds(seq, kind):
    return kind in KINDS


def press(b):
    """A confirmed press and the lamp's pass after it: the raise, the
    controller's `mode alarm`, the uplink's delivery and what follows."""
    b.a.press(0, T)
    b.post("mode", {"detail": "alarm"})
    b.a.write()  # (before issue 20, the raise went to flash here)
    b.deliver()
    b.events(2)


def rotations(b):
    """An open alarm while the journal rotates, delivered events all the way."""
    b.events(MAX_SEGMENTS * RECORDS + 2)


def _seq(aid):
    return int(aid.rsplit("-", 1)[1])


def run(new_flash, base, sequence, cut_at):
    """Runs `sequence` on a board booted from `base` (image, acked, the id of
    the alarm it showed or None), cutting at
    the cut_at-th flash operation. Returns (what was seen at the cut, the image
    then, operations), seen None when the sequence ended first."""
    flash = new_flash(base[0], cut_at)
    seen = []
    boards = []

    def on_cut():
        if not boards:  # in the boot: what the boot before showed still counts
            seen.append((base[2] is not None, base[2], dict(base[1])))
            return
        b = boards[0]
        a = b.a.open
        seen.append((b.shown(), a["id"] if a else None, dict(b.acked)))

    flash.on_cut = on_cut
    try:
        boards.append(Board(flash.fs, base[1]))
        sequence(boards[0])
    except CutHere:
        pass
    if flash.cut_image is None:
        return None, flash.image(), flash.ops
    return seen[0], flash.cut_image, flash.ops


def check_after(new_flash, image, seen):
    """Boot from what the cut left, and check the alarm it was showing."""
    shown, aid, acked = seen
    flash = new_flash(image, None)
    b = Board(flash.fs, acked)
    a = b.a.open
    if shown:
        assert a is not None, "an alarm the pole showed is gone after the cut"
        assert a["id"] == aid, (a["id"], aid)
    if a is not None:
        seq = _seq(a["id"])
        # Still to be sent, or the broker had it before the power went.
        assert seq in b.j.pending or seq in acked, "the raise is neither waiting nor delivered"
        if a["state"] == DELIVERED:
            assert seq in acked
        aid = a["id"]
        # It lasts through rotations and another boot, until the centre resolves it.
        b.deliver()
        b.events(MAX_SEGMENTS * RECORDS + 1)
        flash = new_flash(flash.image(), None)
        b = Board(flash.fs, b.acked)
        assert b.a.open is not None and b.a.open["id"] == aid, "lost after a later rotation"
        assert b.a.resolve(aid) is None
        b.deliver()
        b.events(MAX_SEGMENTS * RECORDS + 1)
        flash = new_flash(flash.image(), None)
        b = Board(flash.fs, b.acked)
        assert b.a.open is None, "a resolved alarm came back"
    # The journal stays bounded and takes new events.
    b.events(2)
    names = [n for n in LfsOs(flash.fs).listdir("/events") if n.endswith(".log")]
    assert len(names) <= MAX_SEGMENTS + 1, names


def exhaustive(new_flash, base, sequence):
    """Every cut point of `sequence` from image `base`; returns how many."""
    _, _, total = run(new_flash, base, sequence, None)
    for n in range(1, total + 1):
        seen, image, _ = run(new_flash, base, sequence, n)
        assert seen is not None, "the sequence wrote less than before at cut %d" % n
        try:
            check_after(new_flash, image, seen)
        except AssertionError as e:
            raise AssertionError("cut at flash operation %d of %d: %s" % (n, total, e))
    return total


def prepared(new_flash, blank, before):
    """(image, acked, open alarm's id) after `before` ran on a fresh journal (no cuts)."""
    flash = new_flash(blank, None)
    b = Board(flash.fs)
    before(b)
    a = b.a.open
    return flash.image(), b.acked, a["id"] if a else None


def fill(k):
    """k delivered events: the press then lands k records into the journal."""

    def before(b):
        b.events(k)

    return before


def open_alarm(b):
    press(b)
    b.deliver()


def then(a, b):
    def both(board):
        a(board)
        b(board)

    return both
