"""Properties of release signing and checking (docs/updates.md), in CPython with
hypothesis: the firmware's P-256 verification agrees with `cryptography`'s, and
no change to a signed release's manifest or signature gets past a device.
tests/firmware/test_release.py has the named cases, on all three runtimes."""

from __future__ import annotations

import hashlib
import os.path
import sys
from pathlib import Path

import p256
import pytest
import release
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parkctl import release as host_release
from parkctl.build import build

sys.path.insert(0, str(Path(__file__).resolve().parent / "firmware"))
import p256sign

KEYS = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@settings(max_examples=150, deadline=None)
@given(message=st.binary(max_size=300), which=st.integers(0, len(KEYS) - 1), flip=st.integers(0, 8 * 64 - 1))
def test_the_firmware_verifies_what_cryptography_signs_and_nothing_else(message, which, flip):
    key = KEYS[which]
    sig = raw_signature(key, message)
    digest = hashlib.sha256(message).digest()
    pub = p256.public_key(point(key))
    assert p256.verify(pub, digest, sig)
    assert not p256.verify(pub, hashlib.sha256(message + b"\0").digest(), sig)
    other = p256.public_key(point(KEYS[(which + 1) % len(KEYS)]))
    assert not p256.verify(other, digest, sig)
    bad = bytearray(sig)
    bad[flip // 8] ^= 1 << (flip % 8)
    assert not p256.verify(pub, digest, bytes(bad))


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=300), d=st.integers(1, p256.N - 1))
def test_the_test_signer_makes_signatures_cryptography_accepts(message, d):
    # p256sign signs the firmware tests' releases inside MicroPython: its
    # signatures must be real ones, or those tests prove nothing.
    sig = p256sign.sign(message, d)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256sign.public(d))
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(der, message + b"!", ec.ECDSA(hashes.SHA256()))


@pytest.fixture(scope="module")
def signed_release(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("rel")
    keys = host_release.keygen(d / "keys")
    build("lamp", out=d / "build", chip="esp32")
    host_release.sign("lamp", "2.0.1", Path(keys["private_key"]), d / "rel", build_dir=d / "build")
    data, sig = host_release.read_release(d / "rel")
    pub = p256.public_key(host_release.read_public(Path(keys["public_key"])))
    return {"data": data, "sig": sig, "key": pub, "folder": d / "rel"}


def check(r: dict, data: bytes, sig: bytes):
    return release.check_manifest(data, sig, r["key"], "lamp", "esp32", "2.0.0", 1 << 21)


def test_the_signed_release_itself_is_taken(signed_release):
    m = check(signed_release, signed_release["data"], signed_release["sig"])
    release.check_files(str(signed_release["folder"] / "files"), m)


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` changed somewhere: bits flipped, bytes replaced, inserted, removed."""
    kind = draw(st.sampled_from(("flip", "replace", "insert", "delete")))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        out = bytearray(data)
        out[at] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "replace":
        new = draw(st.binary(min_size=1, max_size=20))
        out = data[:at] + new + data[at + len(new) :]
    elif kind == "insert":
        out = data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    else:
        out = data[:at] + data[at + draw(st.integers(1, 50)) :]
    if out == data:
        out = data + b" "
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_a_signed_manifest_is_refused(signed_release, data):
    changed = data.draw(mutated(signed_release["data"]))
    with pytest.raises(release.Refused) as e:
        check(signed_release, changed, signed_release["sig"])
    assert e.value.code in ("signature", "manifest"), str(e.value)
    if len(changed) <= release.MAX_MANIFEST:
        assert e.value.code == "signature"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_the_signature_is_refused(signed_release, data):
    sig = data.draw(mutated(signed_release["sig"]))
    with pytest.raises(release.Refused) as e:
        check(signed_release, signed_release["data"], sig)
    assert e.value.code == "signature"


PATH_CHARS = st.sampled_from([*"ab.-_/\\ \0:~%", "..", "lib/", "main.py", ".mpy", "\u00e9"])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(PATH_CHARS, max_size=12))
def test_a_path_a_release_may_write_stays_inside_the_app(parts):
    path = "".join(parts)
    if release.path_error(path) is not None:
        return
    base = "/staging/app"
    inside = os.path.normpath(os.path.join(base, path))
    assert inside.startswith(base + "/") and inside == f"{base}/{path}", path
    assert path.count("/") <= 1 and all(c.isascii() and (c.isalnum() or c in "._-/") for c in path)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="0123456789.v- ", max_size=14), other=st.text(alphabet="0123456789.", max_size=14)
)
def test_the_host_and_the_device_agree_on_what_a_version_is_and_their_order(text, other):
    ok = release.parse_version(text) is not None
    assert ok == bool(host_release.VERSION.fullmatch(text)), text
    a, b = release.parse_version(text), release.parse_version(other)
    if a is not None and b is not None:
        ints = lambda t: [int(x) for x in t.split(".")] + [0] * (4 - t.count(".") - 1)  # noqa: E731
        assert (a < b) == (ints(text) < ints(other))
