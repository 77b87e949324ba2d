"""`parkctl release keygen|sign|verify` (docs/updates.md): the key pair, a signed
release of what `parkctl build` made, and the device's own verdict on it."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from parkctl.build import CHIPS, build, read_image
from parkctl.cli import main


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("release")
    assert main(["release", "keygen", "--out", str(d / "keys")]) == 0
    build("lamp", out=d / "build", chip="vboard")
    return {"dir": d, "keys": d / "keys", "build": d / "build"}


def sign(made, out: Path, *extra: str) -> int:
    return main(
        [
            "release",
            "sign",
            "--app",
            "lamp",
            "--version",
            "1.2.0",
            "--key",
            str(made["keys"] / "release-key.pem"),
            "--build",
            str(made["build"]),
            "--out",
            str(out),
            *extra,
        ]
    )


def verify(made, release: Path, *extra: str) -> int:
    key = str(made["keys"] / "release.pub")
    return main(
        ["release", "verify", str(release), "--key", key, "--app", "lamp", "--chip", "vboard", *extra]
    )


def test_keygen_keeps_the_private_key_to_its_owner_and_never_prints_it(made, tmp_path, capsys):
    assert main(["release", "keygen", "--out", str(tmp_path / "k"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    private = Path(out["private_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    pem = private.read_text()
    assert "PRIVATE KEY" in pem
    body = "".join(pem.splitlines()[1:-1])
    assert body not in json.dumps(out)
    public = Path(out["public_key"]).read_text().strip()
    assert len(public) == 130 and public.startswith("04")
    assert out["key_id"] == hashlib.sha256(bytes.fromhex(public)).hexdigest()[:16]


def test_keygen_never_overwrites_a_key(made, capsys):
    before = (made["keys"] / "release-key.pem").read_bytes()
    assert main(["release", "keygen", "--out", str(made["keys"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never overwritten" in err
    assert (made["keys"] / "release-key.pem").read_bytes() == before


def test_a_signed_release_lists_every_file_of_the_build(made, tmp_path, capsys):
    out = tmp_path / "rel"
    assert sign(made, out, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    m = json.loads((out / "release.json").read_bytes())
    assert m["app"] == "lamp" and m["chips"] == ["vboard"] and m["version"] == "1.2.0"
    assert m["downgrade_ok"] is False and m["format"] == 1
    build_manifest = json.loads((made["build"] / "fs" / "manifest.json").read_text())
    paths = [e["path"] for e in m["files"]]
    assert sorted(paths) == sorted([p.lstrip("/") for p in build_manifest["files"]] + ["manifest.json"])
    for e in m["files"]:
        data = (out / "files" / e["path"]).read_bytes()
        assert len(data) == e["size"] and hashlib.sha256(data).hexdigest() == e["sha256"]
    # The board reports the release's version, and the build it came from.
    on_board = json.loads((out / "files" / "manifest.json").read_bytes())
    assert on_board["version"] == "1.2.0" and on_board["build"] == build_manifest["version"]
    assert summary["manifest_sha256"] == hashlib.sha256((out / "release.json").read_bytes()).hexdigest()
    assert len(bytes.fromhex((out / "release.sig").read_text().strip())) == 64


def test_verify_says_what_a_device_would(made, tmp_path, capsys):
    out = tmp_path / "rel"
    assert sign(made, out) == 0
    assert verify(made, out, "--running", "1.1.9") == 0
    assert "1.2.0: signature, manifest and" in capsys.readouterr().out
    assert verify(made, out, "--running", "1.2.0", "--json") == 1
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is False and found["code"] == "version"
    assert (
        main(["release", "verify", str(out), "--key", str(made["keys"] / "release.pub"), "--app", "kiosk"])
        == 1
    )
    assert "this device runs kiosk" in capsys.readouterr().out
    f = out / "files" / "lib" / "ticks.mpy"
    f.write_bytes(f.read_bytes()[:-1])
    assert verify(made, out) == 1
    assert "refused: size: lib/ticks.mpy has" in capsys.readouterr().out


def test_a_permitted_downgrade_is_signed_as_such(made, tmp_path, capsys):
    out = tmp_path / "rel"
    assert sign(made, out, "--downgrade-ok") == 0
    assert json.loads((out / "release.json").read_bytes())["downgrade_ok"] is True
    assert verify(made, out, "--running", "3.0") == 0


def test_mistakes_are_one_line_and_exit_2(made, tmp_path, capsys):
    pem = str(made["keys"] / "release-key.pem")
    cases = [
        (["--key", str(made["keys"] / "release.pub")], "that is the public key"),
        (["--key", str(tmp_path / "nokey.pem")], "cannot read the release key"),
        (["--version", "v1.2"], "give 1 to 4 numbers"),
        (["--build", str(tmp_path)], "no build there"),
    ]
    for i, (change, said) in enumerate(cases):
        argv = ["release", "sign", "--app", "lamp", "--version", "1.0", "--key", pem]
        argv += ["--build", str(made["build"]), "--out", str(tmp_path / f"r{i}")]
        for flag, value in zip(change[::2], change[1::2], strict=True):
            argv[argv.index(flag) + 1] = value
        assert main(argv) == 2, change
        err = capsys.readouterr().err
        assert err.startswith("parkctl release sign: error: ") and err.count("\n") == 1, err
        assert said in err
        assert not (tmp_path / f"r{i}").exists()
    out = tmp_path / "rel"
    assert sign(made, out) == 0
    assert sign(made, out) == 2
    assert "already holds a release" in capsys.readouterr().err


def test_build_installs_the_public_key_outside_the_manifest(made, tmp_path):
    b = build("lamp", out=tmp_path / "b", chip="vboard", release_key=made["keys"] / "release.pub")
    files = read_image(b.image.read_bytes(), b.chip)
    assert files["/release.pub"].decode().strip() == (made["keys"] / "release.pub").read_text().strip()
    assert "/release.pub" not in b.manifest["files"]
    with pytest.raises(Exception, match="PRIVATE key"):
        build("lamp", out=tmp_path / "c", chip="vboard", release_key=made["keys"] / "release-key.pem")


def test_flash_installs_the_public_key_in_the_image_it_writes(made, tmp_path, capsys):
    not_a_port = tmp_path / "ttyFAKE"
    not_a_port.write_text("")  # esptool fails on it, after the build
    out = tmp_path / "out"
    pub = made["keys"] / "release.pub"
    argv = ["flash", "--port", str(not_a_port), "lamp", "--out", str(out), "--release-key", str(pub)]
    assert main(argv) == 2
    assert "esptool failed" in capsys.readouterr().err
    files = read_image((out / "fs.img").read_bytes(), CHIPS["esp32"])
    assert files["/release.pub"].decode().strip() == pub.read_text().strip()


# --- image releases (docs/updates.md, "The MicroPython image") ---------------


def sign_image(made, out: Path, image: Path, *extra: str, chip: str = "esp32") -> int:
    pem = str(made["keys"] / "release-key.pem")
    argv = ["release", "sign", "--app", "lamp", "--version", "2.0.0", "--key", pem]
    return main([*argv, "--image", str(image), "--chip", chip, "--out", str(out), *extra])


def test_an_image_release_holds_the_image_alone_and_verify_checks_it(made, tmp_path, capsys):
    from sim.appimage import make_app_image

    data = make_app_image("v1.26.0", "esp32", size=30000)
    image = tmp_path / "firmware.app-bin"
    image.write_bytes(data)
    out = tmp_path / "rel"
    assert sign_image(made, out, image, "--json") == 0
    done = json.loads(capsys.readouterr().out)
    assert done["image"] == "v1.26.0" and done["bytes"] == len(data)
    m = json.loads((out / "release.json").read_bytes())
    assert "files" not in m and m["chips"] == ["esp32"]
    assert m["image"] == {
        "path": "firmware.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "desc": "v1.26.0",
    }
    assert (out / "files" / "firmware.bin").read_bytes() == data
    key = str(made["keys"] / "release.pub")
    argv = ["release", "verify", str(out), "--key", key, "--app", "lamp", "--chip", "esp32"]
    assert main(argv) == 0
    assert "2.0.0: signature, manifest and image v1.26.0 good" in capsys.readouterr().out
    # Compared with the image release the device runs (--running).
    assert main([*argv, "--running", "2.0.0"]) == 1
    assert "refused: version: 2.0.0 is not newer" in capsys.readouterr().out
    assert main([*argv[:-1], "esp32s3"]) == 1
    assert "refused: chip: built for ['esp32']" in capsys.readouterr().out
    from parkctl.errors import UserError
    from parkctl.rollout import check_release

    with pytest.raises(UserError, match="parkctl rollout does not roll images out yet"):
        check_release(out, made["keys"] / "release.pub")
    (out / "files" / "firmware.bin").write_bytes(data[:-1] + b"\0")
    assert main(argv) == 1
    assert "refused: sha256: firmware.bin does not have the sha256" in capsys.readouterr().out


def test_an_image_that_is_not_one_for_its_chip_and_slot_is_not_signed(made, tmp_path, capsys):
    from sim.appimage import make_app_image

    cases = [
        (make_app_image("v2.0", "esp32s3"), "esp32", "an image for esp32s3, not esp32"),
        (b"\x00" * 4096, "esp32", "not an ESP-IDF app image"),
        (make_app_image("v2.0", "esp32", size=0x180000 + 4096), "esp32", "more than the 1572864 of an esp32"),
    ]
    for i, (data, chip, said) in enumerate(cases):
        image = tmp_path / f"i{i}.bin"
        image.write_bytes(data)
        assert sign_image(made, tmp_path / f"r{i}", image, chip=chip) == 2
        err = capsys.readouterr().err
        assert err.startswith("parkctl release sign: error: ") and err.count("\n") == 1 and said in err, err
        assert not (tmp_path / f"r{i}").exists()
    image = tmp_path / "i0.bin"
    pem = str(made["keys"] / "release-key.pem")
    argv = [
        "release",
        "sign",
        "--app",
        "lamp",
        "--version",
        "2.0",
        "--key",
        pem,
        "--out",
        str(tmp_path / "x"),
    ]
    assert main([*argv, "--image", str(image)]) == 2
    assert "--image needs --chip" in capsys.readouterr().err
    assert main([*argv, "--image", str(image), "--chip", "esp32s3", "--build", str(made["build"])]) == 2
    assert "--image or --build, not both" in capsys.readouterr().err
