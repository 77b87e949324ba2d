# A power cut at every flash write of an update (firmware/lib/staging.py,
# docs/updates.md) on real littlefs: CPython (littlefs-python,
# tests/test_staging_cuts.py) and MicroPython (its own VfsLfs2,
# tests/stagecuts_mp.py). Written once for both: no typing, no f-strings.
#
# A backend gives a Flash as tests/flashcuts.py describes: `fs` (VfsLfs2's
# methods), `ops`, and at its cut_at-th program or erase a torn write, then
# on_cut() and `cut_image`. After each cut the board boots from what the cut
# left: boot.py's part (Staging.recover) runs, and the app on the flash must
# be the old one or the new one, whole, with the device's own files as they
# were. Then the update goes on from there, fetching no chunk it already had,
# and ends with the new app in place and the old one kept for a rollback.

import binascii
import hashlib
import json

import staging
from lfsos import CutHere, LfsOs  # noqa: F401 - CutHere: the backends raise it
from release import Refused

CHUNK = 64


def _digest(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def _app_manifest(files, version):
    return json.dumps(
        {"version": version, "files": dict(("/" + p, _digest(d)) for p, d in files.items())}
    ).encode()


OLD = {
    "main.py": b"print('old')\n" * 3,
    "config.json": b'{"old": 1}',
    "lib/a.mpy": b"A" * 300,
    "lib/c.mpy": b"C" * 90,  # not in the new release
}
OLD["manifest.json"] = _app_manifest(OLD, "1.1.0")
NEW = {
    "main.py": b"print('new')\n" * 9,
    "config.json": b'{"new": 2}',
    "lib/a.mpy": bytes(range(256)) * 2,
    "lib/b.mpy": b"B" * 200,
}
NEW["manifest.json"] = _app_manifest(NEW, "1.2.0")
OWN = {"lamp.json": b'{"mine": true}', "cmd.key": b"00ff"}  # the device's own


def _release():
    m = {"app": "lamp", "version": "1.2.0", "files": []}
    for p in sorted(NEW):
        m["files"].append({"path": p, "size": len(NEW[p]), "sha256": _digest(NEW[p])})
    data = json.dumps(m).encode()
    return data, b"s" * 64, m, _digest(data)[:16]


RELEASE = _release()
TOTAL_CHUNKS = sum((len(d) + CHUNK - 1) // CHUNK for d in NEW.values())


def stager(fs):
    def opener(path, mode="r"):
        return fs.open(path, mode)

    return staging.Staging(LfsOs(fs), "/", opener, chunk=CHUNK)


def install(fs, files):
    st = stager(fs)
    for p in sorted(files):
        st._mkdirs("/" + p)
        with fs.open("/" + p, "wb") as f:
            f.write(files[p])


def read_tree(fs, top="/"):
    out = {}
    for e in fs.ilistdir(top):
        path = top.rstrip("/") + "/" + e[0]
        if e[1] & 0x4000:
            out.update(read_tree(fs, path))
        else:
            with fs.open(path, "rb") as f:
                out[path[1:]] = f.read()
    return out


def app_files(tree):
    # (MicroPython's startswith takes no tuple.)
    return dict(
        (p, d)
        for p, d in tree.items()
        if not p.startswith("stage/") and not p.startswith("prev/") and p not in OWN
    )


def update(st, sent):
    """The update from wherever the flash stands: sent[0] counts the chunks
    fetched, sent[1] the staged files the check found wrong."""
    data, sig, m, rid = RELEASE
    if st.running() == m["version"]:
        return  # a switch the cut interrupted, finished at boot
    st.begin(data, sig, m, rid)
    for _ in range(3):  # a file the check found wrong is fetched again, once
        want = st.want()
        while want is not None:
            path, offset, length = want
            st.chunk(rid, path, offset, NEW[path][offset : offset + length])
            sent[0] += 1
            want = st.want()
        try:
            st.verify()
            break
        except Refused:
            sent[1] += 1
    else:
        raise AssertionError("the staged release never checked good")
    st.switch()


def run(new_flash, base, sequence, cut_at):
    """`sequence(stager, counts)` on a board booted from image `base`, cut at
    its cut_at-th flash operation: (chunks fetched at the cut, image then,
    operations); the first is None when the sequence ended before the cut."""
    flash = new_flash(base, cut_at)
    sent = [0, 0]
    seen = []

    def on_cut():
        seen.append(sent[0])

    flash.on_cut = on_cut
    try:
        st = stager(flash.fs)
        st.recover()
        sequence(st, sent)
    except CutHere:
        pass
    if flash.cut_image is None:
        return None, flash.image(), flash.ops
    return seen[0], flash.cut_image, flash.ops


def check_after(new_flash, image, fetched, done_old, done_new):
    """Boot from what a cut left: the old app or the new one, whole; then the
    update again, fetching only what the flash did not have."""
    flash = new_flash(image, None)
    st = stager(flash.fs)
    st.recover()  # boot.py's part
    tree = read_tree(flash.fs)
    for p in OWN:
        assert tree.get(p) == OWN[p], "the device's own %s changed" % p
    app = app_files(tree)
    assert app == done_old or app == done_new, "a mixed app: %s" % sorted(app)
    sent = [0, 0]
    update(st, sent)
    if fetched is not None:
        assert sent[0] <= TOTAL_CHUNKS - fetched, "fetched %d chunks again after %d of %d" % (
            sent[0],
            fetched,
            TOTAL_CHUNKS,
        )
    flash = new_flash(flash.image(), None)
    tree = read_tree(flash.fs)
    assert app_files(tree) == NEW, sorted(app_files(tree))
    prev = dict((p[5:], d) for p, d in tree.items() if p.startswith("prev/"))
    assert prev == OLD, sorted(prev)
    assert not [p for p in tree if p.startswith("stage/")]
    return sent[1]


def exhaustive(new_flash, blank):
    """Every cut point of a whole update from the old app; returns (cuts,
    corrupt staged files the check caught)."""
    base = new_flash(blank, None)
    install(base.fs, OLD)
    install(base.fs, OWN)
    base = base.image()
    _, _, total = run(new_flash, base, update, None)
    caught = 0
    for n in range(1, total + 1):
        fetched, image, _ = run(new_flash, base, update, n)
        assert fetched is not None, "the update wrote less than before at cut %d" % n
        try:
            caught += check_after(new_flash, image, fetched, OLD, NEW)
        except AssertionError as e:
            raise AssertionError("cut at flash operation %d of %d: %s" % (n, total, e))
    return total, caught


def _rollback(st, sent):
    st.rollback()


def exhaustive_rollback(new_flash, blank):
    """Every cut point of a rollback after an update: the app is the new one or
    the old one, whole, and a rollback then ends with the old one in place."""
    flash = new_flash(blank, None)
    install(flash.fs, OLD)
    install(flash.fs, OWN)
    update(stager(flash.fs), [0, 0])
    base = flash.image()
    _, _, total = run(new_flash, base, _rollback, None)
    for n in range(1, total + 1):
        _, image, _ = run(new_flash, base, _rollback, n)
        flash = new_flash(image, None)
        st = stager(flash.fs)
        st.recover()
        tree = read_tree(flash.fs)
        app = app_files(tree)
        where = "cut at flash operation %d of %d: " % (n, total)
        assert app == NEW or app == OLD, where + "a mixed app: %s" % sorted(app)
        for p in OWN:
            assert tree.get(p) == OWN[p], where + "the device's own %s changed" % p
        if app == NEW:
            st.rollback()
        tree = read_tree(new_flash(flash.image(), None).fs)
        assert app_files(tree) == OLD, where + "not rolled back"
        assert dict((p[5:], d) for p, d in tree.items() if p.startswith("prev/")) == NEW, where
    return total


def _boot_only(st, sent):
    pass  # run() has done the boot's part, recover()


def exhaustive_twice(new_flash, blank):
    """A second cut in the boot that follows each cut of an update, at every
    flash write that boot makes (finishing a switch): the same promises.
    Returns how many double cuts were tried."""
    base = new_flash(blank, None)
    install(base.fs, OLD)
    install(base.fs, OWN)
    base = base.image()
    _, _, total = run(new_flash, base, update, None)
    tried = 0
    for n in range(1, total + 1):
        fetched, image, _ = run(new_flash, base, update, n)
        _, _, writes = run(new_flash, image, _boot_only, None)
        for m in range(1, writes + 1):
            _, again, _ = run(new_flash, image, _boot_only, m)
            tried += 1
            try:
                check_after(new_flash, again, fetched, OLD, NEW)
            except AssertionError as e:
                raise AssertionError(
                    "cut at flash operation %d of %d, then %d of the boot's %d: %s" % (n, total, m, writes, e)
                )
    return tried
