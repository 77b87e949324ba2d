# What a device checks before it takes a release of its app (docs/updates.md):
# the manifest's signature by the park's release key, then what the manifest
# says (app, chip, version, files), then each staged file's size and sha256.
# Every refusal is a Refused exception whose `code` names the kind (for the
# count the centre gets) and whose text says what was wrong.
#
# Loaded only while an update runs, with p256, and dropped from sys.modules
# after it: the caller does `sys.modules.pop("release"); sys.modules.pop("p256")`.

import binascii
import hashlib
import json

import p256

FORMAT = 1
MAX_MANIFEST = 12288  # bytes: a build's manifest is about 5 KB (40 files)
MAX_FILE = 1048576  # no app file comes near 1 MiB (the kiosk's font is the largest)
MAX_FILES = 200
IMAGE = "firmware.bin"  # the one file of an image release (docs/updates.md, "The MicroPython image")
MAX_IMAGE = 16777216  # the largest flash; the next OTA slot's size is checked by fwimage.Writer
BLOCK = 4096  # littlefs block: every file takes whole blocks
CHUNK = 512  # bytes read at a time when hashing a file on flash
# Names a release may install: the app's two source files, compiled modules at
# the top or in lib/, its shipped configuration and manifest, and data (.bin).
# Anything else on the flash (the installed configuration, keys, journal,
# counters, roster) belongs to the device, and a release never writes it.
SOURCES = ("boot.py", "main.py", "config.json", "manifest.json")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


class Refused(Exception):
    """A release this device will not take. `code`: signature, manifest, app, chip,
    version, path, files, room, size, sha256 or key (and from staging.py: chunk,
    stage, rollback); str(): the reason."""

    def __init__(self, code, text):
        super().__init__("%s: %s" % (code, text))
        self.code = code


def load_key(path):
    """The release public key installed on the device (hex of the 65-byte
    uncompressed point, as `parkctl release keygen` writes it): (x, y)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        raise Refused("key", "no release key at %s: updates need one (provisioning installs it)" % path)
    try:
        return p256.public_key(binascii.unhexlify(text))
    except ValueError as e:
        raise Refused("key", "%s: %s" % (path, e))


def parse_version(text):
    """(1, 4, 2) from "1.4.2": 1 to 4 numbers of up to 6 digits; None if not that."""
    if not isinstance(text, str):
        return None
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    out = []
    for p in parts:
        if not p or len(p) > 6 or not p.isdigit():
            return None
        out.append(int(p))
    while len(out) < 4:  # 1.4 and 1.4.0 are the same version
        out.append(0)
    return tuple(out)


def path_error(path):
    """Why `path` is not a file a release may install (None if it is one). Paths
    are relative to the app: "main.py", "lib/mqtt.mpy"."""
    if not isinstance(path, str) or not path:
        return "not a path"
    if len(path) > 64:
        return "longer than 64 characters"
    if path[0] == "/":
        return "absolute"
    parts = path.split("/")
    for p in parts:
        if p in ("", ".", ".."):
            return "'%s' is not a file name" % p if p else "an empty file name"
        if p[0] == ".":
            return "a hidden name"
        for c in p:
            if c not in _NAME_CHARS:
                return "the character %r" % c
    name = parts[-1]
    if len(parts) == 2 and parts[0] == "lib" and name.endswith(".mpy"):
        return None
    if len(parts) == 1 and (name in SOURCES or name.endswith(".mpy") or name.endswith(".bin")):
        return None
    return (
        "outside the app (an app has boot.py, main.py, config.json, manifest.json, *.mpy, *.bin, lib/*.mpy)"
    )


def _entry(i, e):
    if not isinstance(e, dict):
        raise Refused("files", "entry %d is not an object" % i)
    path = e.get("path")
    why = path_error(path)
    if why is not None:
        raise Refused("path", "%r: %s" % (path, why))
    size = e.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE:
        raise Refused("files", "%s: size %r (0 to %d bytes)" % (path, size, MAX_FILE))
    digest = e.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise Refused("files", "%s: sha256 is not 64 lowercase hex digits" % path)
    return path, size


def _image(m):
    # An image release: the image and nothing else (its size against the next OTA
    # slot is checked by fwimage.Writer on the board, which knows the slot).
    e = m.get("image")
    if "files" in m or not isinstance(e, dict):
        raise Refused("files", "an image release has an image and no files")
    if e.get("path") != IMAGE:
        raise Refused("path", "%r: an image release's image is %s" % (e.get("path"), IMAGE))
    size = e.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 24 < size <= MAX_IMAGE:
        raise Refused("files", "%s: size %r (25 to %d bytes)" % (IMAGE, size, MAX_IMAGE))
    digest = e.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise Refused("files", "%s: sha256 is not 64 lowercase hex digits" % IMAGE)
    desc = e.get("desc")
    if not isinstance(desc, str) or not 0 < len(desc) < 32:
        raise Refused("manifest", "the image's desc %r is not its version string (1 to 31 characters)" % desc)


def check_manifest(data, sig, key, app, chip, running, room, running_image=None):
    """The manifest (a dict) of a release this device may take, or Refused.

    data: the manifest's bytes as signed; sig: the signature (64 bytes, r then s);
    key: load_key()'s; app, chip: this device's; running: the version it runs
    (None if it never took a release); room: bytes free on its flash for staging;
    running_image: the version of the image release it runs (None if none): what
    an image release (one with "image" and no "files") is compared with."""
    if len(data) > MAX_MANIFEST:
        raise Refused("manifest", "%d bytes, more than %d" % (len(data), MAX_MANIFEST))
    # The signature first: nothing in an unsigned manifest is worth reading.
    if not p256.verify(key, hashlib.sha256(data).digest(), sig):
        raise Refused("signature", "the manifest is not signed by this device's release key")
    try:
        m = json.loads(data.decode())
    except (ValueError, UnicodeError):
        raise Refused("manifest", "not JSON")
    if not isinstance(m, dict):
        raise Refused("manifest", "not a JSON object")
    if m.get("format") != FORMAT:
        raise Refused("manifest", "format %r, this device reads %d" % (m.get("format"), FORMAT))
    if m.get("app") != app:
        raise Refused("app", "a release of the %s app; this device runs %s" % (m.get("app"), app))
    chips = m.get("chips")
    if not isinstance(chips, list) or chip not in chips:
        raise Refused("chip", "built for %s; this device is %s" % (chips, chip))
    new = parse_version(m.get("version"))
    if new is None:
        raise Refused("manifest", "version %r is not like 1.4.2" % m.get("version"))
    downgrade = m.get("downgrade_ok") is True
    if "image" in m:
        _image(m)
        running = running_image
    old = parse_version(running) if running is not None else None
    if old is not None and new <= old and not downgrade:
        raise Refused(
            "version",
            "%s is not newer than the running %s (and not signed as a permitted downgrade)"
            % (m["version"], running),
        )
    if "image" in m:
        return m
    files = m.get("files")
    if not isinstance(files, list) or not files:
        raise Refused("files", "no list of files")
    if len(files) > MAX_FILES:
        raise Refused("files", "%d files, more than %d" % (len(files), MAX_FILES))
    seen = set()
    need = 0
    for i, e in enumerate(files):
        path, size = _entry(i, e)
        if path in seen:
            raise Refused("files", "%s is listed twice" % path)
        seen.add(path)
        need += (size + BLOCK - 1) // BLOCK * BLOCK + BLOCK  # and its metadata block
    for need_one in ("main.py", "manifest.json"):  # what the board runs; what a switch ends with
        if need_one not in seen:
            raise Refused("files", "no %s: a release is a whole app" % need_one)
    if need > room:
        raise Refused("room", "the release needs %d bytes of flash, %d are free" % (need, room))
    return m


def file_sha256(path, buf=None, opener=open):
    """The sha256 (hex) of a file and its size, read CHUNK bytes at a time:
    nothing holds the whole file. opener: open() (a VfsLfs2's open in tests)."""
    buf = buf or bytearray(CHUNK)
    mv = memoryview(buf)
    h = hashlib.sha256()
    size = 0
    with opener(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
            size += n
    return binascii.hexlify(h.digest()).decode(), size


def check_file(folder, entry, buf=None, opener=open):
    """Refused unless the file `entry` lists is in `folder` with its size and sha256."""
    path = entry["path"]
    try:
        digest, size = file_sha256(folder + "/" + path, buf, opener)
    except OSError:
        raise Refused("size", "%s is missing" % path)
    if size != entry["size"]:
        raise Refused("size", "%s has %d bytes, the manifest says %d" % (path, size, entry["size"]))
    if digest != entry["sha256"]:
        raise Refused("sha256", "%s does not have the sha256 the manifest gives" % path)


def check_files(folder, manifest, opener=open):
    """Every file of a checked manifest, staged in `folder`: Refused at the first wrong one."""
    buf = bytearray(CHUNK)
    for e in manifest["files"]:
        check_file(folder, e, buf, opener)
