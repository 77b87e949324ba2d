# The people a kiosk knows: id -> (name, department, active), from the centre.
#
# An update is a header line of JSON, "\n", then the body, a JSON list of
# [id, name, department, active]: {"version": N, "count": K, "sha256": hex of the
# body's bytes exactly as sent}. The checksum covers bytes, not a re-encoding:
# CPython and MicroPython write JSON differently (key order, non-ASCII).
# A bad update is refused with the reason and the roster in force stays.
#
# On the kiosk the roster lives on flash, not in RAM (a few hundred people are
# tens of KB of Python objects): install() checks an update row by row and
# writes a file that RosterFile searches the way font.Font does, a record at a
# time:
#   b"PKR1", version (u32 LE), count (u16 LE), sha256 (32 bytes);
#   count index records of 40 bytes, sorted by id: the id (UTF-8, NUL-padded to
#   32 bytes), offset (u32 LE) and length (u16 LE) of its text, active (u8), 0;
#   the texts: name, NUL, department, each as UTF-8.

import json
import struct
from binascii import hexlify, unhexlify
from hashlib import sha256

ID_MAX = 32
NAME_MAX = 64
_MAGIC = b"PKR1"
_HEAD = 4 + 4 + 2 + 32
_REC = 40


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class RosterError(ValueError):
    pass


class Roster:
    """A roster in RAM (tests, and the host's tools)."""

    def __init__(self, version=0, people=None, digest=""):
        self.version = version
        self.people = people or {}  # id -> (name, department, active)
        self.digest = digest  # the update's sha256: the same update again is no news

    def get(self, pid):
        return self.people.get(pid)

    def __len__(self):
        return len(self.people)

    def close(self):
        pass


def _header(text, current):
    """(version, count, digest, body) of an update whose body matches its checksum."""
    if isinstance(text, str):
        text = text.encode()
    cut = text.find(b"\n")
    if cut < 0:
        raise RosterError("no header line")
    try:
        head = json.loads(text[:cut])
    except ValueError:
        raise RosterError("the header is not JSON")
    if not isinstance(head, dict):
        raise RosterError("the header is not a JSON object")
    version = head["version"] if "version" in head else -1
    count = head["count"] if "count" in head else -1
    digest = head.get("sha256")
    if not _whole(version) or not _whole(count):
        raise RosterError('"version" and "count" must be whole numbers')
    if version > 0xFFFFFFFF or count > 0xFFFF:
        raise RosterError("version or count too large")
    if current is not None and version <= current.version:
        raise RosterError("version %d is not newer than %d, the one in force" % (version, current.version))
    body = memoryview(text)[cut + 1 :]
    if not isinstance(digest, str) or hexlify(sha256(body).digest()).decode() != digest.lower():
        raise RosterError("the checksum does not match the body: damaged or cut short")
    return version, count, digest.lower(), body


def _rows(body):
    """Each row of the body's JSON list, decoded one at a time (never the whole list)."""
    n = len(body)
    i = 0
    while i < n and body[i] in b" \t\r\n":
        i += 1
    if i >= n or body[i] != 0x5B:  # [
        raise RosterError("the body is not a JSON list")
    depth = 0
    in_str = esc = False
    start = -1
    after_row = False  # a row ended: only "," or "]" may come
    i += 1
    while i < n:
        b = body[i]
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            if depth == 0:
                raise RosterError("the body must be a list of lists")
            in_str = True
        elif b == 0x5B:
            if depth == 0:
                if after_row:
                    raise RosterError("the body is not JSON")
                start = i
            depth += 1
        elif b == 0x5D:
            if depth == 0:
                if any(c not in b" \t\r\n" for c in bytes(body[i + 1 :])):
                    raise RosterError("the body is not JSON")
                return
            depth -= 1
            if depth == 0:
                try:
                    yield json.loads(bytes(body[start : i + 1]))
                except ValueError:
                    raise RosterError("the body is not JSON")
                after_row = True
        elif depth == 0 and b == 0x2C:
            if not after_row:
                raise RosterError("the body is not JSON")
            after_row = False
        elif depth == 0 and b not in b" \t\r\n":
            raise RosterError("the body must be a list of lists")
        i += 1
    raise RosterError("the body is not JSON")


def _check(i, row, seen=None):
    if not isinstance(row, list) or len(row) != 4:
        raise RosterError("person %d: must be [id, name, department, active]" % i)
    pid, name, dept, active = row
    if not isinstance(pid, str) or not 0 < len(pid) <= ID_MAX or "\0" in pid:
        raise RosterError("person %d: id must be a string of 1 to %d characters" % (i, ID_MAX))
    if len(pid.encode()) > ID_MAX:
        raise RosterError("person %s: id must be at most %d bytes of UTF-8" % (pid, ID_MAX))
    if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX or "\0" in name:
        raise RosterError("person %s: name must be 1 to %d characters" % (pid, NAME_MAX))
    if not isinstance(dept, str) or not isinstance(active, bool) or "\0" in dept:
        raise RosterError("person %s: department must be text and active true or false" % pid)
    return pid, name, dept, active


def parse(text, current=None):
    """A Roster in RAM from an update (bytes); RosterError says what is wrong with it.
    current: the roster in force, which an update must be newer than."""
    version, count, digest, body = _header(text, current)
    people = {}
    n = 0
    for row in _rows(body):
        pid, name, dept, active = _check(n, row)
        if pid in people:
            raise RosterError("person %s is listed twice" % pid)
        people[pid] = (name, dept, active)
        n += 1
    if n != count:
        raise RosterError("the body must be a list of %d people" % count)
    return Roster(version, people, digest)


def install(text, current, path, os_module, opener=open):
    """Check an update and write it as the roster file at `path` (a temp file
    renamed over the old one: a bad update or a power cut leaves the roster in
    force). Returns (version, count); RosterError says what is wrong."""
    version, count, digest, body = _header(text, current)
    tmp = path + ".tmp"
    ids = []  # (id bytes, offset, length, active): the index, sorted before it is written
    with opener(tmp, "wb") as f:
        f.write(b"\0" * (_HEAD + _REC * count))  # the head and the index, written last
        offset = _HEAD + _REC * count
        n = 0
        for row in _rows(body):
            if n >= count:
                raise RosterError("the body must be a list of %d people" % count)
            pid, name, dept, active = _check(n, row)
            text_b = name.encode() + b"\0" + dept.encode()
            f.write(text_b)
            ids.append((pid.encode(), offset, len(text_b), 1 if active else 0))
            offset += len(text_b)
            n += 1
        if n != count:
            raise RosterError("the body must be a list of %d people" % count)
        ids.sort()
        for k in range(1, len(ids)):
            if ids[k][0] == ids[k - 1][0]:
                raise RosterError("person %s is listed twice" % ids[k][0].decode())
        f.seek(0)
        f.write(_MAGIC + struct.pack("<IH", version, count) + unhexlify(digest))
        rec = bytearray(_REC)
        for pid_b, off, length, active in ids:
            for k in range(32):
                rec[k] = pid_b[k] if k < len(pid_b) else 0
            struct.pack_into("<IHBB", rec, 32, off, length, active, 0)
            f.write(rec)
    os_module.rename(tmp, path)
    return version, count


class RosterFile:
    """The roster file install() wrote, searched on flash a record at a time."""

    def __init__(self, path, opener=open):
        self.f = opener(path, "rb")
        head = self.f.read(_HEAD)
        if len(head) != _HEAD or head[:4] != _MAGIC:
            self.f.close()
            raise RosterError("%s is not a roster file" % path)
        self.version, self.count = struct.unpack("<IH", head[4:10])
        self.digest = hexlify(head[10:]).decode()
        self._rec = bytearray(_REC)
        self._key = bytearray(32)

    def close(self):
        self.f.close()

    def __len__(self):
        return self.count

    def get(self, pid):
        """(name, department, active) of a person, or None."""
        key = self._key
        raw = pid.encode()
        if len(raw) > 32:
            return None
        for k in range(32):
            key[k] = raw[k] if k < len(raw) else 0
        f = self.f
        rec = self._rec
        lo, hi = 0, self.count - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            f.seek(_HEAD + mid * _REC)
            f.readinto(rec)
            c = bytes(rec[:32])
            if c == key:
                off, length, active = struct.unpack_from("<IHB", rec, 32)
                f.seek(off)
                name, dept = f.read(length).decode().split("\0")
                return name, dept, bool(active)
            if c < key:
                lo = mid + 1
            else:
                hi = mid - 1
        return None


def same(text, current):
    """Is this update the roster in force (a retained message seen again)?"""
    if isinstance(text, str):
        text = text.encode()
    cut = text.find(b"\n")
    try:
        head = json.loads(text[:cut]) if cut > 0 else None
    except ValueError:
        return False
    if not isinstance(head, dict) or current is None or not current.digest:
        return False
    return head.get("version") == current.version and head.get("sha256") == current.digest
