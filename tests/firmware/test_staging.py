# A release staged on flash chunk by chunk, then switched to, and back
# (firmware/lib/staging.py, docs/updates.md). Power cuts at every flash write of
# the same steps: tests/test_staging_cuts.py.

import binascii
import hashlib
import json
import os

import staging
from fwtest import raises, tempdir
from release import Refused

OLD = {
    "main.py": b"print('old')\n",
    "config.json": b'{"old": 1}',
    "lib/a.mpy": b"A" * 300,
    "lib/c.mpy": b"C" * 50,  # gone from the new release
}
NEW = {
    "main.py": b"print('new')\n" * 9,
    "config.json": b'{"new": 2}',
    "lib/a.mpy": bytes(range(256)) * 2,
    "lib/b.mpy": b"B" * 64,  # exactly one chunk
    "manifest.json": b"",  # below
}
OWN = {"lamp.json": b'{"mine": true}', "cmd.key": b"00ff"}  # the device's own files


def _digest(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _manifest_file(files, version):
    files = dict(("/" + p, _digest(d)) for p, d in files.items())
    return json.dumps({"version": version, "files": files}).encode()


NEW["manifest.json"] = _manifest_file(dict((p, d) for p, d in NEW.items() if p != "manifest.json"), "1.2.0")
OLD_MANIFEST = _manifest_file(OLD, "1.1.0")


def release(files=None, version="1.2.0"):
    """(manifest bytes, a stand-in signature, parsed manifest, release id)."""
    files = NEW if files is None else files
    m = {"app": "lamp", "version": version, "files": []}
    for p in sorted(files):
        m["files"].append({"path": p, "size": len(files[p]), "sha256": _digest(files[p])})
    data = json.dumps(m).encode()
    return data, b"s" * 64, m, _digest(data)[:16]


def device():
    """An app folder as a board's root: the old app, and the device's own files."""
    app = tempdir()
    os.mkdir(app + "/lib")
    for p, d in OLD.items():
        _write(app + "/" + p, d)
    _write(app + "/manifest.json", OLD_MANIFEST)
    for p, d in OWN.items():
        _write(app + "/" + p, d)
    return app


def stager(app):
    return staging.Staging(os, app, chunk=64)


def files_of(app, top=""):
    """Every file under app (relative paths) -> its content."""
    out = {}
    where = app + ("/" + top if top else "")
    for name in os.listdir(where):
        rel = top + "/" + name if top else name
        if os.stat(app + "/" + rel)[0] & 0x4000:
            out.update(files_of(app, rel))
        else:
            out[rel] = _read(app + "/" + rel)
    return out


def fetch(st, files=None, limit=None):
    """Send the chunks st wants, as the centre would; how many were sent."""
    files = NEW if files is None else files
    n = 0
    while limit is None or n < limit:
        want = st.want()
        if want is None:
            break
        path, offset, length = want
        st.chunk(st.rid, path, offset, files[path][offset : offset + length])
        n += 1
    return n


def chunks(files=None):
    files = NEW if files is None else files
    return sum((len(d) + 63) // 64 for d in files.values())


def test_a_release_is_staged_verified_and_switched_to_keeping_the_old_app():
    app = device()
    st = stager(app)
    data, sig, m, rid = release()
    assert st.begin(data, sig, m, rid) is False
    assert fetch(st) == chunks()
    st.verify()
    st.switch()
    found = files_of(app)
    for p, d in NEW.items():
        assert found[p] == d, p
    assert "lib/c.mpy" not in found  # a module the new app no longer has
    for p, d in OWN.items():
        assert found[p] == d  # the device's own files stay as they were
    for p, d in OLD.items():
        assert found["prev/" + p] == d  # the old app, kept for a rollback
    assert found["prev/manifest.json"] == OLD_MANIFEST
    assert not [p for p in found if p.startswith("stage")]
    assert st.running() == "1.2.0"


class FreeBlocks:
    """The os module, with a flash that has 100 blocks free whatever else runs."""

    def __getattr__(self, name):
        return getattr(os, name)

    def statvfs(self, path):
        return (4096, 4096, 1000, 100, 100, 0, 0, 0, 0, 255)


def test_the_room_for_a_release_counts_what_is_staged_of_it_as_free():
    app = device()
    st = staging.Staging(FreeBlocks(), app, chunk=64)
    data, sig, m, rid = release()
    st.begin(data, sig, m, rid)
    assert st.room() == 100 * 4096
    fetch(st, limit=3)  # config.json, and two chunks of lib/a.mpy
    # Each staged file's blocks and its metadata block: the same release reuses them.
    assert st.room() == 100 * 4096 + 2 * 2 * 4096


def test_a_transfer_goes_on_after_a_reset_where_it_stopped():
    app = device()
    data, sig, m, rid = release()
    st = stager(app)
    st.begin(data, sig, m, rid)
    sent = fetch(st, limit=7)
    # A reset: all the device has is its flash.
    st = stager(app)
    assert st.staged() == (data, sig)
    assert st.begin(data, sig, m, rid) is True
    assert sent + fetch(st) == chunks()  # not one chunk fetched twice
    st.verify()
    st.switch()
    assert files_of(app)["lib/a.mpy"] == NEW["lib/a.mpy"]


def test_bad_chunks_are_refused_and_lose_nothing():
    app = device()
    data, sig, m, rid = release()
    st = stager(app)
    e = raises(Refused, st.chunk, rid, "config.json", 0, b"x")
    assert str(e) == "chunk: no release is being staged"
    st.begin(data, sig, m, rid)
    fetch(st, limit=2)  # config.json, then the first chunk of lib/a.mpy
    path, offset, length = st.want()
    assert (path, offset, length) == ("lib/a.mpy", 64, 64)
    good = NEW[path][offset : offset + length]
    for args, said in (
        (("0123456789abcdef", path, offset, good), "chunk: for release 0123456789abcdef; the release being"),
        (
            (rid, path, offset + 64, good),
            "chunk: out of order: lib/a.mpy at 128; the next is lib/a.mpy at 64",
        ),
        ((rid, path, offset - 64, good), "out of order: lib/a.mpy at 0;"),
        ((rid, "lib/b.mpy", 0, good), "out of order: lib/b.mpy at 0;"),
        ((rid, path, offset, good[:40]), "chunk: lib/a.mpy at 64: 40 bytes, not 64"),
        ((rid, path, offset, good + b"x"), "65 bytes, not 64"),
    ):
        e = raises(Refused, st.chunk, *args)
        assert e.code == "chunk" and said in str(e), str(e)
    assert st.want() == (path, offset, length)  # nothing of them was kept
    assert fetch(st) == chunks() - 2
    e = raises(Refused, st.chunk, rid, path, 0, good)
    assert str(e) == "chunk: every file of the release is here already"
    st.verify()
    st.switch()
    assert files_of(app)["lib/a.mpy"] == NEW["lib/a.mpy"]


def test_a_staged_file_that_is_not_what_the_manifest_says_is_fetched_again():
    app = device()
    data, sig, m, rid = release()
    st = stager(app)
    st.begin(data, sig, m, rid)
    fetch(st)
    staged = app + "/stage/files/lib/a.mpy"
    _write(staged, b"X" + _read(staged)[1:])  # the flash changed it
    e = raises(Refused, st.verify)
    assert e.code == "sha256" and "lib/a.mpy" in str(e)
    assert st.want() == ("lib/a.mpy", 0, 64)
    assert fetch(st) == 8
    st.verify()


def test_another_release_replaces_the_staged_one():
    app = device()
    st = stager(app)
    data, sig, m, rid = release()
    st.begin(data, sig, m, rid)
    fetch(st, limit=4)
    other = dict(NEW, **{"main.py": b"print('newer')\n"})
    data2, sig2, m2, rid2 = release(other, "1.3.0")
    assert st.begin(data2, sig2, m2, rid2) is False
    e = raises(Refused, st.chunk, rid, "config.json", 0, NEW["config.json"])
    assert "the release being staged is %s" % rid2 in str(e)
    assert fetch(st, other) == chunks(other)
    st.verify()
    st.switch()
    assert files_of(app)["main.py"] == b"print('newer')\n"


def test_a_rollback_puts_the_previous_app_back():
    app = device()
    st = stager(app)
    e = raises(Refused, st.rollback)
    assert str(e) == "rollback: no previous app is kept"
    # A /prev without main.py (a board flashed without a manifest) is no app to go back to.
    os.mkdir(app + "/prev")
    _write(app + "/prev/manifest.json", b'{"files": {}}')
    e = raises(Refused, st.rollback)
    assert str(e) == "rollback: no previous app is kept"
    os.remove(app + "/prev/manifest.json")
    os.rmdir(app + "/prev")
    e = raises(Refused, st.switch)
    assert str(e) == "stage: no staged release to switch to"
    data, sig, m, rid = release()
    st.begin(data, sig, m, rid)
    fetch(st)
    st.verify()
    st.switch()
    st.rollback()
    found = files_of(app)
    for p, d in OLD.items():
        assert found[p] == d
    assert found["manifest.json"] == OLD_MANIFEST
    assert "lib/b.mpy" not in found
    for p, d in NEW.items():
        assert found["prev/" + p] == d  # and the release can come back the same way
    assert st.running() == "1.1.0"
    assert st.recover() is False  # nothing left half done
