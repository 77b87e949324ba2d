# The people a kiosk knows: id -> (name, department, active), from the centre.
#
# An update is a header line of JSON, "\n", then the body, a JSON list of
# [id, name, department, active]: {"version": N, "count": K, "sha256": hex of the
# body's bytes exactly as sent}. The checksum covers bytes, not a re-encoding:
# CPython and MicroPython write JSON differently (key order, non-ASCII).
# A bad update is refused with the reason and the roster in force stays.

import json
from binascii import hexlify
from hashlib import sha256

ID_MAX = 32
NAME_MAX = 64


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class RosterError(ValueError):
    pass


class Roster:
    def __init__(self, version=0, people=None, digest=""):
        self.version = version
        self.people = people or {}  # id -> (name, department, active)
        self.digest = digest  # the update's sha256: the same update again is no news

    def get(self, pid):
        return self.people.get(pid)

    def __len__(self):
        return len(self.people)


def parse(text, current=None):
    """A Roster from an update (bytes); RosterError says what is wrong with it.
    current: the roster in force, which an update must be newer than."""
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
    if current is not None and version <= current.version:
        raise RosterError("version %d is not newer than %d, the one in force" % (version, current.version))
    body = text[cut + 1 :]
    if not isinstance(digest, str) or hexlify(sha256(body).digest()).decode() != digest.lower():
        raise RosterError("the checksum does not match the body: damaged or cut short")
    try:
        rows = json.loads(body)
    except ValueError:
        raise RosterError("the body is not JSON")
    if not isinstance(rows, list) or len(rows) != count:
        raise RosterError("the body must be a list of %d people" % count)
    people = {}
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 4:
            raise RosterError("person %d: must be [id, name, department, active]" % i)
        pid, name, dept, active = row
        if not isinstance(pid, str) or not 0 < len(pid) <= ID_MAX:
            raise RosterError("person %d: id must be a string of 1 to %d characters" % (i, ID_MAX))
        if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX:
            raise RosterError("person %s: name must be 1 to %d characters" % (pid, NAME_MAX))
        if not isinstance(dept, str) or not isinstance(active, bool):
            raise RosterError("person %s: department must be text and active true or false" % pid)
        if pid in people:
            raise RosterError("person %s is listed twice" % pid)
        people[pid] = (name, dept, active)
    return Roster(version, people, digest.lower())


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
