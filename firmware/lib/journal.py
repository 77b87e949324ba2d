# The on-flash event journal: every event is written here before anyone tries to
# deliver it, and stays until the centre has it.
#
# Files in one folder: `boot` (the boot counter) and numbered segments
# `NNNNNNNN.log`, each a text file of records, one a line:
#   SEQ BOOT KIND CRITICAL BODY CRC
# BODY is JSON (never a newline in it); CRC is the CRC-32 of the rest of the
# line, in hex. A delivery is recorded by appending `SEQ - ack 0 "" CRC`.
# A line whose CRC does not match (torn by a power cut mid-write) is skipped
# and counted; every other line, before or after it, is kept.
#
# Bounded: at most `max_segments` segments of `segment_records` records. When
# a new segment would exceed that, the oldest goes: its delivered records are
# dropped; undelivered non-critical ones too (counted in `dropped`); undelivered
# critical ones (alarms) are carried into the newest segment with their ids,
# never dropped, and so are the records the app holds (`keep(id, kind, body)`:
# an open alarm's, delivered or not; a delivered one is carried with its ack).
# A segment holding nothing but those stays: then the journal outgrows its
# bound rather than lose an alarm.
#
# Power cuts: each append is one open-write-close, which littlefs commits
# whole or not at all; a carry-over is one such append (all its records and
# acks) before the old segment is removed. A cut between the two leaves both
# copies, read as one (same sequence number); the next rotation carries the
# old one again, harmless. On a filesystem that can tear a write, the torn line
# fails its CRC and is skipped, and nothing is appended after it.
#
# Each event's id is "DEVICE-BOOT-SEQ": unique across reboots, so a centre
# that receives an event twice (at-least-once delivery) can drop the copy.
# Only sequence numbers of undelivered events are kept in RAM; bodies are read
# back from flash when they are delivered.

import binascii
import sys


def _crc(text):
    return binascii.crc32(text.encode()) & 0xFFFFFFFF


def _keep_none(eid, kind, body):
    return False


class _Pending:
    """The undelivered events (len, `in` and iteration give their sequence
    numbers), kept per segment in dicts of at most segment_records entries: a
    journal full of undelivered events (a lamp offline for months: 512 of them)
    never needs one large block of a fragmented heap. (One dict for all of them
    could not grow in the simulated year: MemoryError.)"""

    def __init__(self):
        self._by_segment = {}  # segment number -> {seq: critical}
        self._n = 0

    def __len__(self):
        return self._n

    def __contains__(self, seq):
        for d in self._by_segment.values():
            if seq in d:
                return True
        return False

    def __iter__(self):
        for d in self._by_segment.values():
            for seq in d:
                yield seq

    def add(self, seq, number, critical):
        """seq is pending in segment `number` (moved there if it was elsewhere)."""
        self.pop(seq)
        d = self._by_segment.get(number)
        if d is None:
            d = self._by_segment[number] = {}
        d[seq] = critical
        self._n += 1

    def pop(self, seq):
        """No longer pending: its critical flag, or None if it was not."""
        for number, d in self._by_segment.items():
            critical = d.pop(seq, None)
            if critical is not None:
                self._n -= 1
                if not d:
                    del self._by_segment[number]
                return critical
        return None

    def critical(self, seq):
        for d in self._by_segment.values():
            if seq in d:
                return d[seq]
        return False

    def held_in(self, seq, number):
        """Is seq pending in segment `number` (not in a later copy)?"""
        d = self._by_segment.get(number)
        return d is not None and seq in d

    def segments(self):
        """The numbers of the segments that hold pending events, oldest first."""
        return sorted(self._by_segment)


class Journal:
    def __init__(self, os_module, folder, device, max_segments=8, segment_records=64, opener=open):
        self.os = os_module
        self.open = opener
        self.folder = folder
        self.device = device
        self.max_segments = max_segments
        self.segment_records = segment_records
        self.torn = 0  # lines skipped for a bad CRC or shape
        self.dropped = 0  # undelivered non-critical events dropped for room
        self.pending = _Pending()  # the events not yet delivered
        self.seq = 0  # the last sequence number used
        self.boot = 0  # this boot's number (journalload counts it)
        self._segments = []  # segment numbers, oldest first
        self._count = 0  # records in the newest segment
        self._shrink_due = False  # a fresh segment went past the bound: rotate at the next append
        self.keep = _keep_none  # see hold()
        try:
            self.os.mkdir(folder)
        except OSError:
            pass  # it exists
        # What only the boot does (count the boot, read the segments back) is
        # loaded for it and forgotten after: its code is not on the heap for good.
        import journalload

        try:
            journalload.load(self)
        finally:
            sys.modules.pop("journalload", None)

    # --- files -------------------------------------------------------------

    def _path(self, number):
        return "%s/%08d.log" % (self.folder, number)

    def _lines(self, number):
        """(seq, boot, kind, critical, body) of each good line of a segment."""
        try:
            f = self.open(self._path(number))
        except OSError:
            return
        with f:
            for line in f:
                rec = self._parse(line) if line.endswith("\n") else None
                if rec is not None:
                    yield rec

    @staticmethod
    def _parse(line):
        line = line.rstrip("\n")
        cut = line.rfind(" ")
        if cut < 0:
            return None
        head = line[:cut]
        try:
            if int(line[cut + 1 :], 16) != _crc(head):
                return None
            seq, boot, kind, critical, body = head.split(" ", 4)
            return int(seq), boot, kind, critical == "1", body
        except ValueError:
            return None

    def _write(self, seq, boot, kind, critical, body, rollover=True, fresh=False):
        if fresh:
            if not self._segments or self._count:
                # A file of its own, one line: littlefs keeps it inline in the
                # folder's metadata, so the write is one small program (no erase,
                # no copy of a segment's blocks) and nothing else goes first: the
                # rotation this may need waits for the next append.
                self._segments.append(self._segments[-1] + 1 if self._segments else 1)
                self._count = 0
                self._shrink_due = True
        elif rollover:
            if not self._segments or self._count >= self.segment_records:
                self._new_segment()
            elif self._shrink_due:
                self._shrink()
        with self.open(self._path(self._segments[-1]), "a") as f:
            f.write(_line(seq, boot, kind, critical, body))
        self._count += 1

    def _new_segment(self):
        self._segments.append(self._segments[-1] + 1 if self._segments else 1)
        self._count = 0
        self._shrink()

    def _shrink(self):
        self._shrink_due = False
        # Oldest first; a segment of nothing but undelivered alarms is passed over.
        for number in self._segments[:-1]:
            if len(self._segments) <= self.max_segments:
                break
            self._retire(number)

    def _retire(self, number):
        carry = []  # (seq, boot, kind, critical, body, pending)
        total = undelivered = 0
        for rec in self._lines(number):
            total += 1
            seq, boot, kind, critical, body = rec
            if kind == "ack":
                continue
            pending = seq in self.pending
            # An undelivered alarm is carried from where it is pending, not
            # from an older copy a cut mid-rotation left behind.
            if critical and self.pending.held_in(seq, number):
                carry.append((seq, boot, kind, critical, body, pending))
                undelivered += 1
            elif self.keep(self.event_id(seq, boot), kind, body):
                carry.append((seq, boot, kind, critical, body, pending))
        if undelivered and undelivered == total:
            # Nothing to gain: undelivered alarms outrank the bound. (Held
            # records are few: a segment of them only is carried and goes.)
            return
        if carry:
            # One append (committed whole by littlefs), before the old segment
            # goes: a cut in between leaves a copy in both, read once.
            newest = self._segments[-1]
            with self.open(self._path(newest), "a") as f:
                for seq, boot, kind, critical, body, pending in carry:
                    f.write(_line(seq, boot, kind, critical, body))
                    self._count += 1
                    if not pending:
                        # Delivered: said again here, or the copy would be sent again.
                        f.write(_line(seq, "-", "ack", False, '""'))
                        self._count += 1
            for seq, _, _, critical, _, pending in carry:
                if pending:
                    self.pending.add(seq, newest, critical)
        for seq, _, kind, critical, _ in self._lines(number):
            if kind != "ack" and not critical and self.pending.held_in(seq, number):
                self.pending.pop(seq)
                self.dropped += 1
        self.os.remove(self._path(number))
        self._segments.remove(number)

    # --- use ---------------------------------------------------------------

    def hold(self, keep):
        """keep(id, kind, body): True for a record a rotation must carry over
        whatever its delivery (the lamp's open alarm). Set before appending."""
        self.keep = keep

    def event_id(self, seq, boot=None):
        return "%s-%s-%d" % (self.device, self.boot if boot is None else boot, seq)

    def reserve(self):
        """The sequence number of an event that will be appended a little later
        (its id is needed now). One never appended leaves a gap, nothing else."""
        self.seq += 1
        return self.seq

    def append(self, kind, body, critical=False, seq=None, fresh=False):
        """Journal an event (body: JSON text) before delivery; returns its id.
        seq: a number from reserve(), else the next one. fresh: in a segment of
        its own, as fast a write as littlefs has (an alarm's raise, which the
        pole shows only once it is on flash)."""
        if " " in kind or not kind or kind == "ack":
            raise ValueError("bad event kind %r" % kind)
        if "\n" in body:
            raise ValueError("an event body is one line of JSON")
        if seq is None:
            seq = self.reserve()
        self._write(seq, self.boot, kind, critical, body, fresh=fresh)
        self.pending.add(seq, self._segments[-1], critical)
        return self.event_id(seq)

    def critical(self, seq):
        """Is `seq` an undelivered critical event (one never dropped for room)?"""
        return self.pending.critical(seq)

    def _settled(self, seq):
        """No longer pending (delivered or dropped); False if it was not."""
        return self.pending.pop(seq) is not None

    def delivered(self, seq):
        """The centre has it: it may now be dropped when room is needed."""
        if self._settled(seq):
            self._write(seq, "-", "ack", False, '""')

    def undelivered(self, limit=8):
        """Up to `limit` undelivered events, oldest first: (seq, id, kind, body)."""
        if not self.pending:
            return []
        pending = self.pending
        # Only the segments that hold pending events are read back (usually the newest).
        return self.find(lambda seq, kind: seq in pending, pending.segments())[:limit]

    def find(self, wanted, segments=None):
        """The events still on flash for which wanted(seq, kind) is true, oldest
        first: (seq, id, kind, body). Read from flash (all segments, or those
        numbered in `segments`); keep `wanted` narrow."""
        out = []
        seen = {}
        for number in self._segments if segments is None else segments:
            for seq, boot, kind, _, body in self._lines(number):
                if kind != "ack" and seq not in seen and wanted(seq, kind):
                    seen[seq] = True
                    out.append((seq, self.event_id(seq, boot), kind, body))
        out.sort()
        return out

    def erase(self, drop):
        """Remove from flash every event for which drop(seq, kind, body, pending)
        is true, delivered or not (privacy: a person's records, or records past
        their retention); returns how many."""
        return self.rewrite(
            lambda seq, kind, body, pending: None if drop(seq, kind, body, pending) else body
        )[0]

    def rewrite(self, fn):
        """Change events on flash: fn(seq, kind, body, pending) gives the body to
        keep (the same, or a new one, one line of JSON), or None to erase the
        event. Returns (erased, changed). Each segment where something changes is
        rewritten to a temp file that is then renamed over it (atomic on
        littlefs: a power cut leaves the old segment or the new, never half)."""
        erased = changed = 0
        for number in list(self._segments):
            keep = []
            gone = {}
            dirty = False
            for rec in self._lines(number):
                seq, kind = rec[0], rec[2]
                if kind == "ack" or seq in gone:
                    keep.append(rec)
                    continue
                body = fn(seq, kind, rec[4], seq in self.pending)
                if body is None:
                    gone[seq] = True
                    dirty = True
                elif body != rec[4]:
                    if "\n" in body:
                        raise ValueError("an event body is one line of JSON")
                    keep.append((seq, rec[1], kind, rec[3], body))
                    changed += 1
                    dirty = True
                else:
                    keep.append(rec)
            if not dirty:
                continue
            keep = [r for r in keep if r[0] not in gone]  # their acks too
            newest = number == self._segments[-1]
            path = self._path(number)
            if keep or newest:
                with self.open(path + ".tmp", "w") as f:
                    for rec in keep:
                        f.write(_line(*rec))
                self.os.rename(path + ".tmp", path)
            else:
                self.os.remove(path)
                self._segments.remove(number)
            if newest:
                self._count = len(keep)
            for seq in gone:
                self._settled(seq)
            erased += len(gone)
        return erased, changed

    def recent(self, n):
        """The last n events on flash, oldest first: (seq, id, kind, body); reads
        back only the newest segments that hold them."""
        out = []
        for number in reversed(self._segments):
            out = self.find(_every, [number]) + out
            if len(out) >= n:
                break
        return out[-n:]


def _line(seq, boot, kind, critical, body):
    head = "%d %s %s %d %s" % (seq, boot, kind, 1 if critical else 0, body)
    return "%s %08x\n" % (head, _crc(head))


def _every(seq, kind):
    return True
