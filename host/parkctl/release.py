"""`parkctl release`: the park's release key, and signed releases of an app.

A release is what `parkctl build` staged (the app's files, its /manifest.json)
with a manifest of its own, release.json (app, chips, version, each file's path,
size and sha256, whether it may replace a newer version), signed with the park's
release key: ECDSA P-256 with SHA-256, which a device verifies in MicroPython
(firmware/lib/p256.py, release.py). The private key never leaves the machine
that signs; devices hold only the public key (/release.pub, installed by
`parkctl provision --release-key` or `parkctl build --release-key`).
docs/updates.md describes the format and what a device checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import UserError

PRIVATE_FILE = "release-key.pem"
PUBLIC_FILE = "release.pub"
DEVICE_KEY = "/release.pub"  # where a device keeps the public key
MANIFEST_FILE = "release.json"
SIGNATURE_FILE = "release.sig"
FILES_DIR = "files"
FORMAT = 1
VERSION = re.compile(r"\d{1,6}(\.\d{1,6}){0,3}")


def _firmware_release():
    from .runtime import import_firmware

    import_firmware()
    import release

    return release


def key_id(public: bytes) -> str:
    """A short name for a public key (its 65 bytes' sha256, first 8 bytes in hex):
    what a manifest records, so a device with another key says so."""
    return hashlib.sha256(public).hexdigest()[:16]


def keygen(out: Path) -> dict[str, Any]:
    """A new key pair in `out`: release-key.pem (the private key, PKCS#8, readable
    by its owner only) and release.pub (the public point, hex, for the devices).
    An existing key is never overwritten: losing it would orphan every device."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out.mkdir(parents=True, exist_ok=True)
    private, public = out / PRIVATE_FILE, out / PUBLIC_FILE
    for p in (private, public):
        if p.exists():
            raise UserError(f"{p} exists: a release key is never overwritten (choose another --out)")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    # Made with mode 0600 from the start: never a moment when others could read it.
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_text(point.hex() + "\n")
    return {"private_key": str(private), "public_key": str(public), "key_id": key_id(point)}


def read_public(path: Path) -> bytes:
    """The 65 bytes of a release public key file, checked to be a point of P-256."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as e:
        raise UserError(f"cannot read the release public key {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a release public key (hex text)") from None
    if text.startswith("-----BEGIN"):
        hint = " it is the PRIVATE key: give release.pub" if "PRIVATE" in text else ""
        raise UserError(f"{path}: not a release public key (the hex that `release keygen` writes);{hint}")
    try:
        point = bytes.fromhex(text)
        _firmware_release().p256.public_key(point)
    except ValueError as e:
        raise UserError(f"{path}: not a release public key: {e}") from None
    return point


def device_key_files(path: Path) -> dict[str, bytes]:
    """The files that install a release public key on a device."""
    return {DEVICE_KEY: read_public(path).hex().encode() + b"\n"}


def _read_private(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the release key {path}: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        hint = "; that is the public key: sign with release-key.pem" if b"BEGIN" not in data else ""
        raise UserError(f"{path}: not an unencrypted PEM private key{hint}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UserError(f"{path}: not a P-256 (secp256r1) key; make one with `parkctl release keygen`")
    return key


def _read_build(build_dir: Path, app: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The build's manifest and its files (board path -> content), checked against it."""
    fs = build_dir / "fs"
    try:
        manifest = json.loads((fs / "manifest.json").read_text(encoding="utf-8"))
    except OSError:
        raise UserError(
            f"{build_dir}: no build there (no fs/manifest.json): run `parkctl build {app}`"
        ) from None
    except ValueError as e:
        raise UserError(f"{fs / 'manifest.json'}: not JSON: {e}") from None
    if manifest.get("app") != app:
        raise UserError(f"{build_dir} is a build of {manifest.get('app')!r}, not of {app}")
    files: dict[str, bytes] = {}
    for path, digest in sorted(manifest.get("files", {}).items()):
        try:
            data = (fs / path.lstrip("/")).read_bytes()
        except OSError:
            raise UserError(f"{build_dir}: {path} is missing: build again") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise UserError(f"{build_dir}: {path} changed since the build: build again")
        files[path] = data
    if not files:
        raise UserError(f"{fs / 'manifest.json'}: lists no files")
    return manifest, files


def sign(
    app: str,
    version: str,
    key_path: Path,
    out: Path,
    build_dir: Path | None = None,
    downgrade_ok: bool = False,
) -> dict[str, Any]:
    """Write the release of `app` that `parkctl build` left in build_dir (default
    build/APP) to `out`: files/..., release.json and release.sig."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from .build import BUILD_DIR

    if not VERSION.fullmatch(version):
        raise UserError(f"--version {version!r}: give 1 to 4 numbers, e.g. 1.4.2")
    key = _read_private(key_path)
    build_dir = build_dir or BUILD_DIR / app
    build_manifest, built = _read_build(build_dir, app)
    if (out / MANIFEST_FILE).exists():
        raise UserError(f"{out} already holds a release: choose another --out")
    fw = _firmware_release()
    # The board reports the version in /manifest.json (parkctl diag status): the
    # release's, with the build's git version kept beside it.
    on_board = dict(build_manifest, version=version, build=build_manifest.get("version"))
    built["/manifest.json"] = json.dumps(on_board, sort_keys=True, separators=(",", ":")).encode()
    entries = []
    for path in sorted(built):
        rel = path.lstrip("/")
        why = fw.path_error(rel)
        if why is not None:
            raise UserError(f"{build_dir}: {path} cannot be in a release: {why}")
        entries.append(
            {"path": rel, "size": len(built[path]), "sha256": hashlib.sha256(built[path]).hexdigest()}
        )
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    manifest = {
        "format": FORMAT,
        "app": app,
        "chips": [build_manifest.get("chip")],
        "version": version,
        "downgrade_ok": downgrade_ok,
        "key": key_id(point),
        "build": {"git": build_manifest.get("version"), "hash": build_manifest.get("hash")},
        "files": entries,
    }
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    if len(data) > fw.MAX_MANIFEST:
        raise UserError(
            f"the manifest would have {len(data)} bytes; a device reads {fw.MAX_MANIFEST} at most"
        )
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    # The device's own verifier must agree before anything is written.
    if not fw.p256.verify(fw.p256.public_key(point), hashlib.sha256(data).digest(), sig):
        raise RuntimeError("the firmware's P-256 check refused a signature just made")
    out.mkdir(parents=True, exist_ok=True)
    for path, content in built.items():
        dest = out / FILES_DIR / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    (out / SIGNATURE_FILE).write_text(sig.hex() + "\n")
    (out / MANIFEST_FILE).write_bytes(data)
    return {
        "release": str(out),
        "app": app,
        "chips": manifest["chips"],
        "version": version,
        "downgrade_ok": downgrade_ok,
        "key_id": manifest["key"],
        "files": len(entries),
        "bytes": sum(e["size"] for e in entries),
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
    }


# The chip id in an ESP-IDF app image's extended header (esp_chip_id_t), and the
# size of an app slot of MicroPython's OTA partition tables (parkctl build's
# esp32-ota and esp32s3-ota layouts; sim/vesp32/esp32.py models the same).
IMAGE_CHIPS = {"esp32": 0, "esp32s3": 9}
OTA_SLOT = {"esp32": 0x180000, "esp32s3": 0x270000}
APP_DESC_MAGIC = 0xABCD5432


def image_desc(data: bytes, chip: str, name: str) -> str:
    """The version string an app image's esp_app_desc_t holds, after checking that
    it is an ESP-IDF app image for `chip` that fits its OTA slot."""
    if len(data) < 80 or data[0] != 0xE9:
        raise UserError(
            f"{name}: not an ESP-IDF app image (a MicroPython firmware .app-bin starts with 0xe9)"
        )
    cid = data[12] | (data[13] << 8)
    if cid != IMAGE_CHIPS[chip]:
        other = next((c for c, i in IMAGE_CHIPS.items() if i == cid), f"chip id {cid}")
        raise UserError(f"{name}: an image for {other}, not {chip}: give --chip {other} or the right image")
    if int.from_bytes(data[32:36], "little") != APP_DESC_MAGIC:
        raise UserError(f"{name}: no esp_app_desc_t at its start (an app image, not a bootloader?)")
    if len(data) > OTA_SLOT[chip]:
        raise UserError(f"{name}: {len(data)} bytes, more than the {OTA_SLOT[chip]} of an {chip} OTA slot")
    desc = data[48:80].split(b"\0", 1)[0].decode("ascii", "replace")
    if not desc:
        raise UserError(f"{name}: its esp_app_desc_t has no version string")
    return desc


def _signed(key, manifest: dict[str, Any]) -> tuple[bytes, bytes]:
    """The manifest's bytes and their signature, checked by the firmware's verifier."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    fw = _firmware_release()
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if not fw.p256.verify(fw.p256.public_key(point), hashlib.sha256(data).digest(), sig):
        raise RuntimeError("the firmware's P-256 check refused a signature just made")
    return data, sig


def sign_image(
    app: str, chip: str, version: str, key_path: Path, out: Path, image: Path, downgrade_ok: bool = False
) -> dict[str, Any]:
    """An image release: the MicroPython image `image` (an ESP-IDF .app-bin) for
    the boards of `app` on `chip` with the OTA partition table, in `out`:
    files/firmware.bin, release.json (an "image" and no "files") and release.sig."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not VERSION.fullmatch(version):
        raise UserError(f"--version {version!r}: give 1 to 4 numbers, e.g. 1.4.2")
    if chip not in IMAGE_CHIPS:
        raise UserError(f"--chip {chip!r}: an image release is for {' or '.join(IMAGE_CHIPS)}")
    key = _read_private(key_path)
    try:
        data = image.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the image {image}: {e.strerror}") from None
    desc = image_desc(data, chip, str(image))
    if (out / MANIFEST_FILE).exists():
        raise UserError(f"{out} already holds a release: choose another --out")
    fw = _firmware_release()
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    digest = hashlib.sha256(data).hexdigest()
    manifest = {
        "format": FORMAT,
        "app": app,
        "chips": [chip],
        "version": version,
        "downgrade_ok": downgrade_ok,
        "key": key_id(point),
        "image": {"path": fw.IMAGE, "size": len(data), "sha256": digest, "desc": desc},
    }
    text, sig = _signed(key, manifest)
    dest = out / FILES_DIR / fw.IMAGE
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    (out / SIGNATURE_FILE).write_text(sig.hex() + "\n")
    (out / MANIFEST_FILE).write_bytes(text)
    return {
        "release": str(out),
        "app": app,
        "chips": [chip],
        "version": version,
        "downgrade_ok": downgrade_ok,
        "key_id": manifest["key"],
        "image": desc,
        "files": 1,
        "bytes": len(data),
        "manifest_sha256": hashlib.sha256(text).hexdigest(),
    }


def read_release(folder: Path) -> tuple[bytes, bytes]:
    """A release's manifest bytes and signature (64 bytes)."""
    try:
        data = (folder / MANIFEST_FILE).read_bytes()
        sig_text = (folder / SIGNATURE_FILE).read_text(encoding="ascii").strip()
    except OSError as e:
        raise UserError(f"{folder}: not a release ({e.strerror}: {e.filename})") from None
    except UnicodeDecodeError:
        raise UserError(f"{folder / SIGNATURE_FILE}: not hex") from None
    try:
        sig = bytes.fromhex(sig_text)
    except ValueError:
        raise UserError(f"{folder / SIGNATURE_FILE}: not hex") from None
    return data, sig


def verify(
    folder: Path, public: Path, app: str, chip: str, running: str | None = None, room: int = 1 << 30
) -> dict[str, Any]:
    """What a device would say of the release in `folder`, checked by the firmware's
    own code: {"ok": True, ...} or {"ok": False, "code", "reason"}."""
    fw = _firmware_release()
    point = read_public(public)
    data, sig = read_release(folder)
    try:
        m = fw.check_manifest(data, sig, fw.p256.public_key(point), app, chip, running, room, running)
        if "image" in m:
            fw.check_file(str(folder / FILES_DIR), m["image"])
        else:
            fw.check_files(str(folder / FILES_DIR), m)
    except fw.Refused as e:
        return {"ok": False, "code": e.code, "reason": str(e)}
    if "image" in m:
        if m["image"]["size"] > OTA_SLOT.get(chip, 1 << 30):
            why = f"image: {m['image']['size']} bytes, more than the {OTA_SLOT[chip]} of an {chip} OTA slot"
            return {"ok": False, "code": "image", "reason": why}
        return {"ok": True, "app": m["app"], "version": m["version"], "files": 1, "image": m["image"]["desc"]}
    return {"ok": True, "app": m["app"], "version": m["version"], "files": len(m["files"])}
