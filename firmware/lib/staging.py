# A release staged on flash, chunk by chunk, then switched to (docs/updates.md).
#
# /stage/release.json, .sig   the release being staged (its manifest as signed)
# /stage/files/...            its files, each appended to in order
# /stage/switch               present while a switch (or a rollback) is under way
# /prev/...                   the app before the last switch, kept for a rollback
#
# Progress needs no file of its own: littlefs commits a file's new length when
# it is closed, and a cut before that leaves the length it had. So the next
# chunk wanted is always the first file shorter than the manifest says, at its
# length on flash, and a transfer resumes after a cut where it stopped.
#
# The switch moves files by renames, each atomic on littlefs, in an order that
# recover() can finish from any point: the old app's files into /prev (its
# manifest.json last), then the staged files into place (manifest.json last).
# The board has no whole app between the two, so boot.py must call recover()
# at every boot, before anything else reads the flash (see recover).
#
# Loaded only while an update runs or a switch is finished at boot.

import json

STAGE = "stage"
PREV = "prev"
MARKER = "switch"
# boot.py finishes a switch a reset interrupted, so the board must never be
# without it: the old one is copied into /prev, not moved, and the new one is
# renamed over it (one atomic step on littlefs).
BOOT = "boot.py"
CHUNK = 1024  # bytes a chunk carries (the last of a file may be shorter)
_DIR = 0x4000  # stat()[0]: a folder


def _join(a, b):
    return a.rstrip("/") + "/" + b


def _refuse(code, text):
    from release import Refused

    return Refused(code, text)


class Staging:
    def __init__(self, os, app="/", opener=open, chunk=CHUNK):
        """os: stat, statvfs, listdir, mkdir, rename, remove, rmdir (the board's os module);
        app: the folder the app runs from ("/" on the board)."""
        self.os = os
        self.open = opener
        self.app = app
        self.chunk_size = chunk
        self.stage = _join(app, STAGE)
        self.files = _join(self.stage, "files")
        self.prev = _join(app, PREV)
        self.marker = _join(self.stage, MARKER)
        # The release being staged: (path, size) of each of its files (its
        # manifest's sha256s are read again from flash by verify(): a manifest
        # of 40 files parsed is some 10 KB of heap, for the whole transfer).
        self.entries = None
        self.rid = None
        self.at = 0  # the first file of the manifest not complete on flash

    # --- flash helpers -------------------------------------------------------

    def _size(self, path):
        """A file's length; -1 if it is not there, -2 if it is a folder."""
        try:
            st = self.os.stat(path)
        except OSError:
            return -1
        return -2 if st[0] & _DIR else st[6]

    def _mkdirs(self, path):
        # Every folder of `path` under self.app (a file's parent folders).
        parts = path[len(self.app.rstrip("/")) + 1 :].split("/")[:-1]
        at = self.app.rstrip("/")
        for p in parts:
            at = at + "/" + p
            if self._size(at) != -2:
                self.os.mkdir(at)

    def _rmtree(self, path):
        kind = self._size(path)
        if kind == -2:
            for name in self.os.listdir(path):
                self._rmtree(_join(path, name))
            self.os.rmdir(path)
        elif kind >= 0:
            self.os.remove(path)

    def _clear(self, keep=()):
        """The staging folder, empty but for the names in `keep` (the folder
        itself is kept: see recover)."""
        if self._size(self.stage) != -2:
            self._rmtree(self.stage)
            self.os.mkdir(self.stage)
            return
        for name in self.os.listdir(self.stage):
            if name not in keep:
                self._rmtree(_join(self.stage, name))

    def _write(self, path, data):
        tmp = path + ".tmp"
        with self.open(tmp, "wb") as f:
            f.write(data)
        self.os.rename(tmp, path)

    def _read(self, path):
        with self.open(path, "rb") as f:
            return f.read()

    def _walk(self, top, rel=""):
        """Every file under `top` (paths relative to it), folders' contents first."""
        out = []
        for name in sorted(self.os.listdir(_join(top, rel) if rel else top)):
            p = rel + "/" + name if rel else name
            if self._size(_join(top, p)) == -2:
                out.extend(self._walk(top, p))
            else:
                out.append(p)
        return out

    # --- staging -------------------------------------------------------------

    def staged(self):
        """(manifest bytes, signature) of the release on flash, or None: after a
        reset the caller checks them again and calls begin() to go on."""
        try:
            return self._read(_join(self.stage, "release.json")), self._read(_join(self.stage, "release.sig"))
        except OSError:
            return None

    def begin(self, data, sig, manifest, rid, keep=()):
        """Stage the release whose manifest (bytes `data`, checked, parsed as
        `manifest`) has the id `rid`. The same release as on flash goes on where
        it stopped (True); another one replaces it (False), what was staged going
        but the files of /stage named in `keep` (the offer, until this is done)."""
        if self._size(self.marker) >= 0:
            raise _refuse("stage", "a switch is under way: finish it first")
        resumed = self.staged() == (data, sig)
        if not resumed:
            self._clear(keep)
            self.os.mkdir(self.files)
            self._write(_join(self.stage, "release.sig"), sig)
            self._write(_join(self.stage, "release.json"), data)  # last: the mark of a staging
        self.entries = [(e["path"], e["size"]) for e in manifest["files"]]
        self.rid = rid
        self.at = 0
        return resumed

    def want(self):
        """(path, offset, length) of the next chunk to fetch; None when every file
        is complete on flash."""
        files = self.entries or ()
        while self.at < len(files):
            name, want = files[self.at]
            path = _join(self.files, name)
            size = self._size(path)
            if size == want:
                self.at += 1
                continue
            if size > want or size == -2:  # not what this device wrote: again
                self._rmtree(path)
                size = 0
            return name, max(size, 0), min(self.chunk_size, want - max(size, 0))
        return None

    def chunk(self, rid, path, offset, data):
        """Append a chunk to its file; Refused (code "chunk") unless it is the
        chunk want() names, of this release, whole."""
        if self.entries is None:
            raise _refuse("chunk", "no release is being staged")
        if rid != self.rid:
            raise _refuse("chunk", "for release %s; the release being staged is %s" % (rid, self.rid))
        nxt = self.want()
        if nxt is None:
            raise _refuse("chunk", "every file of the release is here already")
        if (path, offset) != nxt[:2]:
            raise _refuse(
                "chunk", "out of order: %s at %d; the next is %s at %d" % (path, offset, nxt[0], nxt[1])
            )
        if len(data) != nxt[2]:
            raise _refuse("chunk", "%s at %d: %d bytes, not %d" % (path, offset, len(data), nxt[2]))
        target = _join(self.files, path)
        self._mkdirs(target)
        with self.open(target, "ab") as f:  # committed, length and all, at its close
            f.write(data)

    def verify(self):
        """Every staged file's size and sha256 against the manifest; a wrong one
        is removed (want() asks for it again) and Refused."""
        from release import Refused, check_file

        buf = bytearray(512)
        m = json.loads(self._read(_join(self.stage, "release.json"))) if self.entries else {}
        for e in m.get("files", ()):
            try:
                check_file(self.files, e, buf, self.open)
            except Refused:
                self._rmtree(_join(self.files, e["path"]))
                self.at = 0
                raise

    def abandon(self):
        """Forget the staged release (a newer one, or the centre's order)."""
        if self._size(self.marker) < 0:
            self._clear()
        self.entries = self.rid = None

    # --- switch and rollback ---------------------------------------------------

    def switch(self):
        """Put the staged (and verified) release in place of the running app,
        which is kept in /prev."""
        if self._size(_join(self.files, "manifest.json")) < 0:
            raise _refuse("stage", "no staged release to switch to")
        self._rmtree(self.prev)  # the rollback before this one: no longer kept
        self._write(self.marker, b"switch")
        self.recover()

    def rollback(self):
        """Put the app kept in /prev back in place, the running one going to /prev."""
        if self._size(_join(self.prev, "manifest.json")) < 0 or self._size(_join(self.prev, "main.py")) < 0:
            raise _refuse("rollback", "no previous app is kept")  # (a board flashed without a manifest)
        self._clear()
        self._write(self.marker, b"rollback")
        self.recover()

    def recover(self):
        """Finish a switch or rollback a cut interrupted; True if there was one.
        Each step is one rename, done only if its source is still there."""
        # littlefs puts right what a cut in a rename between folders left (a
        # pending move) only when it is next asked to write, and until then a
        # listing or an open can miss a file near the one moved, this marker
        # included. A mkdir asks, and writes nothing when all is well (the
        # folder is kept for good, so it exists).
        try:
            self.os.mkdir(self.stage)
        except OSError:
            pass
        try:
            how = self._read(self.marker)
        except OSError:
            return False
        if how == b"rollback" and self._size(self.files) == -1 and self._size(self.prev) == -2:
            self.os.rename(self.prev, self.files)  # the kept app becomes the one to put in place
        new = _join(self.files, "manifest.json")
        if self._size(new) >= 0:
            old_manifest = _join(self.app, "manifest.json")
            if self._size(_join(self.prev, "manifest.json")) < 0:
                # The running app into /prev, its manifest last: its presence
                # there says this step is done.
                old = []
                if self._size(old_manifest) >= 0:
                    try:
                        old = [p.lstrip("/") for p in json.loads(self._read(old_manifest))["files"]]
                    except (ValueError, KeyError, TypeError):
                        old = []
                for p in old:
                    src = _join(self.app, p)
                    if self._size(src) >= 0:
                        dest = _join(self.prev, p)
                        self._mkdirs(dest)
                        if p == BOOT:
                            self._write(dest, self._read(src))  # copied: see BOOT
                        else:
                            self.os.rename(src, dest)
                dest = _join(self.prev, "manifest.json")
                self._mkdirs(dest)
                if self._size(old_manifest) >= 0:
                    self.os.rename(old_manifest, dest)
                else:
                    self._write(dest, b'{"files": {}}')
            for p in self._walk(self.files):
                if p != "manifest.json":
                    dest = _join(self.app, p)
                    self._mkdirs(dest)
                    self.os.rename(_join(self.files, p), dest)
            self.os.rename(new, old_manifest)  # last: the new app is whole
        for name in ("release.json", "release.sig"):
            if self._size(_join(self.stage, name)) >= 0:
                self.os.remove(_join(self.stage, name))
        self.os.remove(self.marker)
        self._clear()
        self.entries = self.rid = None
        return True

    def room(self):
        """Bytes free on the flash for staging (release.check_manifest's `room`),
        counting what a release being staged already holds as free: taking the
        same release again reuses it. os.statvfs: block size, free blocks."""
        st = self.os.statvfs(self.app)
        staged = 0
        for p in self._walk(self.files) if self._size(self.files) == -2 else ():
            staged += (self._size(_join(self.files, p)) + 4095) // 4096 * 4096 + 4096
        return st[0] * st[3] + staged

    def running(self):
        """The version in the app's manifest.json (a release's, e.g. "1.4.2"), or None."""
        try:
            return json.loads(self._read(_join(self.app, "manifest.json"))).get("version")
        except (OSError, ValueError, AttributeError):
            return None
