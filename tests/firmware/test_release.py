# What a device checks before it takes a release (firmware/lib/release.py,
# docs/updates.md): a good release passes; each bad one is refused with its
# reason, whatever part of it is wrong. Releases are signed here with the test
# key (p256sign.py), so these run inside MicroPython as on the board.

import binascii
import hashlib
import json
import os

import p256
import p256sign
import release
from fwtest import raises, tempdir

_KEY = []


def key():
    if not _KEY:
        _KEY.append(p256.public_key(p256sign.public()))
    return _KEY[0]


FILES = (
    ("main.py", b"import lamp\nlamp.run()\n"),
    ("boot.py", b"# boot\n"),
    ("config.json", b'{"site": {}}'),
    ("manifest.json", b'{"version": "1.2.0", "files": {}}'),
    # Longer than release.CHUNK, and not a multiple of it: hashed in pieces.
    ("lib/ticks.mpy", bytes(range(256)) * 5 + b"tail"),
)


def manifest(files=FILES, **changes):
    entries = []
    for path, data in files:
        digest = binascii.hexlify(hashlib.sha256(data).digest()).decode()
        entries.append({"path": path, "size": len(data), "sha256": digest})
    m = {
        "format": 1,
        "app": "lamp",
        "chips": ["esp32"],
        "version": "1.2.0",
        "downgrade_ok": False,
        "key": "test",
        "files": entries,
    }
    m.update(changes)
    return m


def signed(m):
    data = json.dumps(m).encode()
    return data, p256sign.sign(data)


def stage(files=FILES):
    folder = tempdir()
    for path, data in files:
        if "/" in path:
            try:
                os.mkdir(folder + "/" + path.split("/")[0])
            except OSError:
                pass
        with open(folder + "/" + path, "wb") as f:
            f.write(data)
    return folder


def check(data, sig, app="lamp", chip="esp32", running="1.1.0", room=1 << 20):
    return release.check_manifest(data, sig, key(), app, chip, running, room)


def refused(code, fn, *args, **kwargs):
    e = raises(release.Refused, fn, *args, **kwargs)
    assert e.code == code, str(e)
    assert str(e).startswith(code + ": "), str(e)
    return str(e)


def test_a_good_release_is_taken():
    data, sig = signed(manifest())
    m = check(data, sig)
    assert m["version"] == "1.2.0" and len(m["files"]) == len(FILES)
    release.check_files(stage(), m)
    # Never an update before: any signed version is newer than none.
    assert check(data, sig, running=None)["app"] == "lamp"


def test_a_bad_signature_is_refused():
    data, sig = signed(manifest())
    for bad in (
        sig[:10] + bytes([sig[10] ^ 1]) + sig[11:],  # one bit of r
        sig[:40] + bytes([sig[40] ^ 0x80]) + sig[41:],  # one bit of s
        sig[:63],  # truncated
        bytes(64),  # r = s = 0
        b"\xff" * 64,  # r, s >= N
        p256sign.sign(data, d=12345),  # another key's good signature
        p256sign.sign(data + b" "),  # a signature of other bytes
    ):
        why = refused("signature", check, data, bad)
        assert "not signed by this device's release key" in why


def test_one_byte_of_the_manifest_changed_is_refused():
    data, sig = signed(manifest())
    for i in (0, len(data) // 3, len(data) // 2, len(data) - 1):
        changed = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        refused("signature", check, changed, sig)
    # The downgrade flag turned on after signing: refused as well.
    text = data.decode()
    assert '"downgrade_ok": false' in text
    flipped = text.replace('"downgrade_ok": false', '"downgrade_ok": true ').encode()
    refused("signature", check, flipped, sig, running="3.0")
    refused("signature", check, data + b" ", sig)
    refused("signature", check, data[:-1], sig)


def test_a_file_with_the_wrong_sha256_is_refused():
    data, sig = signed(manifest())
    m = check(data, sig)
    files = list(FILES)
    files[-1] = ("lib/ticks.mpy", b"X" + FILES[-1][1][1:])  # same size, one byte changed
    why = refused("sha256", release.check_files, stage(files), m)
    assert "lib/ticks.mpy" in why


def test_a_truncated_or_missing_file_is_refused():
    data, sig = signed(manifest())
    m = check(data, sig)
    files = list(FILES)
    files[-1] = ("lib/ticks.mpy", FILES[-1][1][:700])
    why = refused("size", release.check_files, stage(files), m)
    assert "lib/ticks.mpy has 700 bytes, the manifest says 1284" in why
    why = refused("size", release.check_files, stage(FILES[:-1]), m)
    assert "lib/ticks.mpy is missing" in why


def test_a_file_listed_twice_is_refused():
    m = manifest(FILES + (("lib/ticks.mpy", b"other"),))
    why = refused("files", check, *signed(m))
    assert "lib/ticks.mpy is listed twice" in why


def test_a_path_outside_the_app_is_refused():
    for path in (
        "../main.py",
        "lib/../../main.py",
        "/main.py",
        "./main.py",
        "lib//ticks.mpy",
        "lib/sub/x.mpy",
        "lib\\x.mpy",
        ".x.mpy",
        "lamp.json",  # the installed configuration: the device's own
        "cmd.key",
        "release.pub",
        "events.0",
        "x.py",
        "lib/x.py",
        "a b.mpy",
        "caf\u00e9.mpy",
        "x" * 70 + ".mpy",
        "",
        "lib/",
        7,
    ):
        m = manifest(FILES + (("x.mpy", b"x"),))
        m["files"][-1]["path"] = path
        why = refused("path", check, *signed(m))
        assert repr(path) in why, why


def test_a_kiosk_release_is_refused_by_a_lamp_and_a_chip_by_another():
    why = refused("app", check, *signed(manifest(app="kiosk")))
    assert why == "app: a release of the kiosk app; this device runs lamp"
    why = refused("chip", check, *signed(manifest(chips=["esp32s3"])))
    assert "this device is esp32" in why
    assert check(*signed(manifest(chips=["esp32s3", "esp32"])))["app"] == "lamp"


def test_an_older_release_is_refused_unless_signed_as_a_permitted_downgrade():
    old = signed(manifest(version="1.1.9"))
    why = refused("version", check, *old, running="1.2")
    assert "1.1.9 is not newer than the running 1.2 " in why
    refused("version", check, *signed(manifest(version="1.2.0")), running="1.2")  # the same
    refused("version", check, *signed(manifest(version="1.10")), running="1.10.0.0")
    assert check(*signed(manifest(version="1.10")), running="1.9.9")["version"] == "1.10"  # not as text
    down = signed(manifest(version="1.1.9", downgrade_ok=True))
    assert check(*down, running="1.2")["downgrade_ok"] is True
    # Only a real true permits it.
    refused("version", check, *signed(manifest(version="1.1.9", downgrade_ok=1)), running="1.2")


def test_a_manifest_that_is_not_one_is_refused():
    for m, code, said in (
        (manifest(version="v1.2"), "manifest", "version 'v1.2' is not like 1.4.2"),
        (manifest(version="1.2.3.4.5"), "manifest", "is not like 1.4.2"),
        (manifest(format=2), "manifest", "format 2"),
        (manifest(files=()), "files", "no list of files"),
        (manifest(files=FILES[1:]), "files", "no main.py: a release is a whole app"),
        (manifest(files=FILES[:3] + FILES[4:]), "files", "no manifest.json"),
        ([1, 2], "manifest", "not a JSON object"),
    ):
        why = refused(code, check, *signed(m))
        assert said in why, why
    data = b"{not json"
    refused("manifest", check, data, p256sign.sign(data))
    m = manifest()
    m["files"][0]["size"] = -1
    assert "size -1" in refused("files", check, *signed(m))
    m = manifest()
    m["files"][0]["sha256"] = "AB" * 32
    assert "64 lowercase hex digits" in refused("files", check, *signed(m))
    big = b" " * (release.MAX_MANIFEST + 1)
    refused("manifest", check, big, p256sign.sign(big))


def test_a_release_that_does_not_fit_the_free_flash_is_refused():
    data, sig = signed(manifest())
    # Each file takes whole 4 KiB blocks and one more for its metadata.
    need = len(FILES) * 2 * release.BLOCK
    assert check(data, sig, room=need)["app"] == "lamp"
    why = refused("room", check, data, sig, room=need - 1)
    assert why == "room: the release needs %d bytes of flash, %d are free" % (need, need - 1)


def test_the_release_key_on_flash():
    folder = tempdir()
    with open(folder + "/release.pub", "w") as f:
        f.write(binascii.hexlify(p256sign.public()).decode() + "\n")
    assert release.load_key(folder + "/release.pub") == key()
    assert "no release key at" in refused("key", release.load_key, folder + "/none.pub")
    bad = p256sign.public()
    bad = bad[:64] + bytes([bad[64] ^ 1])  # y off the curve
    with open(folder + "/bad.pub", "w") as f:
        f.write(binascii.hexlify(bad).decode())
    assert "not a point of P-256" in refused("key", release.load_key, folder + "/bad.pub")


def test_a_file_is_hashed_in_chunks_as_a_whole():
    folder = stage()
    for path, data in FILES:
        digest, size = release.file_sha256(folder + "/" + path)
        assert size == len(data)
        assert digest == binascii.hexlify(hashlib.sha256(data).digest()).decode()
    with open(folder + "/empty.bin", "wb"):
        pass
    assert release.file_sha256(folder + "/empty.bin") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        0,
    )


def test_p256_refuses_what_is_not_a_key_or_a_signature():
    k = key()
    digest = hashlib.sha256(b"x").digest()
    sig = p256sign.sign(b"x")
    assert p256.verify(k, digest, sig)
    assert not p256.verify(k, digest[:31], sig)
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    # r or s equal to N (0 modulo N) is out of range: refused.
    assert not p256.verify(k, digest, r.to_bytes(32, "big") + p256.N.to_bytes(32, "big"))
    assert not p256.verify(k, digest, p256.N.to_bytes(32, "big") + s.to_bytes(32, "big"))
    # (r, N - s) verifies too: ECDSA's own malleability. Harmless here, since what
    # is signed (the manifest) is what is checked, never the signature's bytes.
    assert p256.verify(k, digest, r.to_bytes(32, "big") + (p256.N - s).to_bytes(32, "big"))
    pub = p256sign.public()
    raises(ValueError, p256.public_key, pub[1:])
    raises(ValueError, p256.public_key, b"\x02" + pub[1:])
    raises(ValueError, p256.public_key, b"\x04" + bytes(64))  # (0, 0) is no point


def image_manifest(**image):
    e = {"path": "firmware.bin", "size": 40000, "sha256": "ab" * 32, "desc": "v1.26.0"}
    e.update(image)
    m = manifest(version="2.0.0")
    del m["files"]
    m["image"] = e
    return m


def test_an_image_release_is_taken_and_compared_with_the_image_release_running():
    m = check(*signed(image_manifest()), running="9.0.0", room=0)  # the app's version and room: not its
    assert m["image"]["desc"] == "v1.26.0"
    data, sig = signed(image_manifest())
    assert release.check_manifest(data, sig, key(), "lamp", "esp32", "9.0", 0, "1.9") is not None
    why = refused("version", release.check_manifest, data, sig, key(), "lamp", "esp32", None, 0, "2.0.0")
    assert "not newer than the running 2.0.0" in why


def test_a_bad_image_release_is_refused_with_its_reason():
    cases = (
        ("files", image_manifest(), {"files": []}),
        ("path", image_manifest(path="main.py"), {}),
        ("files", image_manifest(size=24), {}),
        ("files", image_manifest(size="40000"), {}),
        ("files", image_manifest(sha256="AB" * 32), {}),
        ("manifest", image_manifest(desc=""), {}),
        ("manifest", image_manifest(desc="v" * 32), {}),
    )
    for code, m, extra in cases:
        m.update(extra)
        refused(code, check, *signed(m))
    m = image_manifest()
    m["image"] = "firmware.bin"
    refused("files", check, *signed(m))
    refused("chip", check, *signed(image_manifest()), chip="esp32s3")
