"""Build, flash, deploy and provision against the virtual board, as a firmware
engineer and a field technician use them: the real CLI, real mpremote transport,
the board's own answers over its console."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import trustme
from paho.mqtt.enums import CallbackAPIVersion
from parkctl.build import build
from parkctl.deploy import deploy
from parkctl.diag import Port
from parkctl.parkbroker import ParkBroker
from parkctl.vboard import VirtualBoard
from serialline import Line
from test_vboard import _fs

from sim.cmdsign import derive_key

ROOT = Path(__file__).resolve().parents[1]
PARKCTL = str(Path(sys.executable).parent / "parkctl")
MASTER = bytes.fromhex("77" * 32)  # the park's master command key, in these tests


def parkctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PARKCTL, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


def status(port: str) -> dict:
    """The firmware's status, asked on its console: an answer also means it runs
    (a board still booting gets the question once its loop reads the console)."""
    with Port(port) as p:
        return p.ask("status", timeout=60)["data"]


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    """A copy of the firmware to change, as an engineer changes theirs."""
    root = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture
def board(firmware: Path, tmp_path: Path) -> Iterator[VirtualBoard]:
    """A fresh board flashed with the build of `firmware`."""
    b = build("lamp", tmp_path / "build", chip="vboard", root=firmware)
    flash = tmp_path / "flash.img"
    shutil.copyfile(b.image, flash)
    with VirtualBoard("lamp", flash) as vb:
        status(vb.port)
        yield vb


def test_a_built_image_boots_and_reports_its_version_and_manifest(tmp_path: Path) -> None:
    r = parkctl("build", "lamp", "--chip", "vboard", "--out", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout)
    manifest = json.loads((tmp_path / "out" / "fs" / "manifest.json").read_text())
    flash = tmp_path / "flash.img"
    shutil.copyfile(tmp_path / "out" / "fs.img", flash)
    with VirtualBoard("lamp", flash) as vb:
        r = parkctl("diag", "--port", vb.port, "status", "--json", "--timeout", "15")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["version"] == manifest["version"] == built["version"]
        assert st["manifest"] == manifest["hash"]
        # The virtual board keeps the wall clock's time: lit (relay closed) at night only.
        assert st["mode"] == "schedule" and (st["relay"] == "closed" or st["level"] == 0)
        # The same sources give the same build: nothing to copy.
        r = parkctl("deploy", "--port", vb.port, "lamp", "--json")
        assert r.returncode == 0, r.stderr
        done = json.loads(r.stdout)
        assert done["copied"] == [] and done["removed"] == []
        assert len(done["up_to_date"]) == len(manifest["files"])


def test_deploy_copies_exactly_the_changed_file_and_keeps_the_boards_data(
    board: VirtualBoard, firmware: Path
) -> None:
    before = status(board.port)
    with open(firmware / "lamp" / "monitor.py", "a") as f:
        f.write("\nDEPLOYED = 1\n")
    done = deploy(board.port, "lamp", root=firmware)
    assert done.copied == ["/monitor.mpy"]
    assert done.removed == []
    after = status(board.port)
    assert after["manifest"] == done.hash != before["manifest"]
    assert after["boot"] == before["boot"] + 1  # the journal (its boot counter) stayed
    # A module added, then taken away again: copied, then removed from the board.
    (firmware / "lamp" / "extra.py").write_text("X = 1\n")
    assert deploy(board.port, "lamp", root=firmware).copied == ["/extra.mpy"]
    (firmware / "lamp" / "extra.py").unlink()
    done = deploy(board.port, "lamp", root=firmware)
    assert done.copied == [] and done.removed == ["/extra.mpy"]
    assert status(board.port)["manifest"] == done.hash


def _inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inventory.csv"
    inv.write_text(
        "device_id,site,kind,latitude,longitude,tz,wifi_ssid,broker_url\n"
        "lamp-g60-007,g60,lamp,31.031,121.229,CST-8,park-iot,mqtt://127.0.0.1:1\n"
        "lamp-g60-008,g60,lamp,31.032,121.229,CST-8,park-iot,mqtt://127.0.0.1:1\n"
        "lamp-g60-009,g60,lamp,31.033,121.229,CST-8,park-iot,mqtts://127.0.0.1:1\n"
    )
    return inv


def _ca(tmp_path: Path) -> tuple[Path, bytes]:
    """A CA certificate as PEM, and the DER the board should get."""
    ca = trustme.CA()
    pem = tmp_path / "park-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return pem, ssl.PEM_cert_to_DER_cert(pem.read_text())


def test_provision_writes_the_secrets_to_the_device_only(board: VirtualBoard, tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[default]\nwifi_password = "wifi-Secret-1"\nmqtt_user = "lamps"\nmqtt_password = "mqtt-Secret-2"\n'
        '[devices."lamp-g60-007"]\nmqtt_user = "lamp-g60-007"\n'
        f'[centre]\ncommand_key = "{MASTER.hex()}"\n'
    )
    r = parkctl(
        "provision",
        "--inventory",
        str(inv),
        "--device",
        "lamp-g60-007",
        "--port",
        board.port,
        "--secrets",
        str(secrets),
        "--broker-dir",
        str(tmp_path / "broker"),
    )
    assert r.returncode == 0, r.stderr
    for secret in ("wifi-Secret-1", "mqtt-Secret-2", MASTER.hex()):
        assert secret not in r.stdout + r.stderr
        assert secret not in (tmp_path / "broker" / "passwd").read_text()
        for dirpath, _, names in os.walk(ROOT / "build"):
            for n in names:
                assert secret.encode() not in Path(dirpath, n).read_bytes(), f"{secret} in {dirpath}/{n}"
    st = status(board.port)
    assert st["device"] == "lamp-g60-007"
    with Port(board.port) as p:
        cfg = p.ask("config get")["data"]
    assert cfg["file"] == "/lamp.json"
    assert cfg["config"]["network"]["password"] == "***" and cfg["config"]["network"]["key"] == "***"
    assert cfg["config"]["network"]["user"] == "lamp-g60-007"
    assert cfg["config"]["site"]["id"] == "g60"
    # A device whose broker is mqtts:// gets the CA certificate to check it against,
    # as DER (all the board's ssl takes), and its configuration names the file.
    pem, der = _ca(tmp_path)
    args = ("--inventory", str(inv), "--device", "lamp-g60-009", "--port", board.port)
    # And the park's release public key (docs/updates.md), as provisioning installs it.
    assert parkctl("release", "keygen", "--out", str(tmp_path / "keys")).returncode == 0
    pub = tmp_path / "keys" / "release.pub"
    r = parkctl("provision", *args, "--secrets", str(secrets), "--ca", str(pem), "--release-key", str(pub))
    assert r.returncode == 0, r.stderr
    board.stop()
    fs = _fs(board.image)  # kept: its files must not outlive it (littlefs-python)
    with fs.open("lamp.json", "r") as f:
        on_device = json.loads(f.read())
    assert on_device["network"]["password"] == "mqtt-Secret-2"
    assert on_device["device"] == "lamp-g60-009" and on_device["network"]["ca"] == "/ca.der"
    with fs.open("ca.der", "rb") as f:
        assert f.read() == der
    with fs.open("release.pub", "r") as f:
        assert f.read() == pub.read_text()
    # Its own command key, derived from the park's: no other device's.
    with fs.open("cmd.key", "r") as f:
        assert (
            bytes.fromhex(f.read())
            == derive_key(MASTER, "lamp-g60-009")
            != derive_key(MASTER, "lamp-g60-007")
        )
    # The account provisioning wrote is one the park's broker lets the lamp in with.
    broker = ParkBroker(tmp_path / "broker", persistence=False).start()
    try:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lamp-g60-007")
        c.username_pw_set("lamp-g60-007", "mqtt-Secret-2")
        c.tls_set_context(ssl.create_default_context(cafile=str(broker.ca)))
        assert c.connect("127.0.0.1", broker.port) == 0
        rc = None
        while rc is None:  # the CONNACK, within paho's own socket timeout
            assert c.loop(timeout=5) == 0
            rc = 0 if c.is_connected() else None
        c.disconnect()
    finally:
        broker.stop()


def test_provision_gives_each_device_its_own_broker_account(tmp_path: Path) -> None:
    from parkctl.parkbroker import BrokerDir

    inv = tmp_path / "inventory.csv"
    inv.write_text(
        "device_id,site,kind,latitude,longitude,tz,wifi_ssid,broker_url\n"
        "lamp-g60-007,g60,lamp,31.031,121.229,CST-8,park-iot,mqtt://127.0.0.1:1\n"
        "centre,g60,lamp,31.031,121.229,CST-8,park-iot,mqtt://127.0.0.1:1\n"
    )
    env = dict(os.environ, PARK_WIFI_PASSWORD="w", PARK_MQTT_USER="lamps", PARK_MQTT_PASSWORD="p")
    args = ("provision", "--inventory", str(inv), "--port", "/dev/null", "--broker-dir", str(tmp_path / "b"))
    # A shared account would defeat the per-device rights: refused before anything is written.
    r = parkctl(*args, "--device", "lamp-g60-007", env=env)
    assert r.returncode == 2 and "user name is its device id" in r.stderr, r.stderr
    env.pop("PARK_MQTT_USER")
    r = parkctl(*args, "--device", "centre", env=env)
    assert r.returncode == 2 and "the centre's broker account" in r.stderr, r.stderr
    assert BrokerDir(tmp_path / "b").users() == []
    # The centre's account: its password from the environment, never an argument.
    r = parkctl("provision", "--centre", "--broker-dir", str(tmp_path / "b"), env=env)
    assert r.returncode == 2 and "PARK_CENTRE_PASSWORD" in r.stderr
    env["PARK_CENTRE_PASSWORD"] = "centre-Secret"
    r = parkctl("provision", "--centre", "--broker-dir", str(tmp_path / "b"), env=env)
    assert r.returncode == 0, r.stderr
    assert BrokerDir(tmp_path / "b").users() == ["centre"]
    assert "centre-Secret" not in r.stdout + (tmp_path / "b" / "passwd").read_text()


def test_provision_refuses_a_device_without_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARK_")}
    r = parkctl(
        "provision",
        "--inventory",
        str(_inventory(tmp_path)),
        "--device",
        "lamp-g60-008",
        "--port",
        "/dev/null",
        env=env,
    )
    assert r.returncode == 2
    assert "PARK_WIFI_PASSWORD" in r.stderr and "PARK_MQTT_PASSWORD" in r.stderr
    assert "no default passwords" in r.stderr
    r = parkctl(
        "provision",
        "--inventory",
        str(_inventory(tmp_path)),
        "--device",
        "lamp-g60-999",
        "--port",
        "/dev/null",
        env=env,
    )
    assert r.returncode == 2 and "lamp-g60-999 is not in" in r.stderr


def test_provision_gives_an_mqtts_device_the_ca_it_needs_and_no_other(tmp_path: Path) -> None:
    env = dict(os.environ, PARK_WIFI_PASSWORD="w", PARK_MQTT_USER="u", PARK_MQTT_PASSWORD="p")
    inv = str(_inventory(tmp_path))
    pem, _ = _ca(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    for device, ca, why in (
        ("lamp-g60-009", None, "lamp-g60-009's broker is mqtts://: give its CA certificate with --ca FILE"),
        ("lamp-g60-007", pem, "--ca is for an mqtts:// broker; lamp-g60-007's is mqtt://127.0.0.1:1"),
        ("lamp-g60-009", junk, f"{junk}: not a certificate (PEM or DER)"),
        ("lamp-g60-009", tmp_path / "none.pem", "cannot read the CA certificate"),
    ):
        extra = ("--ca", str(ca)) if ca else ()
        r = parkctl(
            "provision", "--inventory", inv, "--device", device, "--port", "/dev/null", *extra, env=env
        )
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_lamp_without_credentials_stays_off_the_broker_and_says_why(tmp_path: Path, firmware: Path) -> None:
    cfg = json.loads((firmware / "lamp" / "config.json").read_text())
    cfg["network"] = {"ssid": "park-iot", "key": "k", "broker": "mqtt://127.0.0.1:1883"}
    (firmware / "lamp" / "config.json").write_text(json.dumps(cfg))
    b = build("lamp", tmp_path / "build", chip="vboard", root=firmware)
    flash = tmp_path / "flash.img"
    shutil.copyfile(b.image, flash)
    vb = VirtualBoard("lamp", flash)
    line = Line(vb.port)  # before the power comes: opening a port empties it
    with vb:
        line.expect(rb"event mqtt no MQTT credentials configured")
        line.close()
        assert status(vb.port)["mqtt"].startswith("no MQTT credentials configured")


def test_a_board_with_an_empty_flash_gets_the_whole_app_and_runs_it(tmp_path: Path) -> None:
    from parkctl.build import get_chip, make_image

    blank, _ = make_image({}, get_chip("vboard"))
    flash = tmp_path / "flash.img"
    flash.write_bytes(blank)
    with VirtualBoard("lamp", flash) as vb:
        r = parkctl("diag", "--port", vb.port, "status", "--timeout", "2")
        assert r.returncode == 2 and "at the MicroPython REPL" in r.stderr
        done = deploy(vb.port, "lamp")
        assert done.up_to_date == [] and "/main.py" in done.copied and "/lib/journal.mpy" in done.copied
        assert status(vb.port)["manifest"] == done.hash


def test_diag_says_what_is_wrong_with_the_port(board: VirtualBoard, tmp_path: Path) -> None:
    import pty

    r = parkctl("diag", "--port", str(tmp_path / "ttyUSB9"), "status")
    assert r.returncode == 2 and "no serial port" in r.stderr and "plugged in" in r.stderr
    with Port(board.port):
        r = parkctl("diag", "--port", board.port, "status")
        assert r.returncode == 2 and "busy" in r.stderr
    master, slave = pty.openpty()  # a port with nothing behind it
    try:
        r = parkctl("diag", "--port", os.ttyname(slave), "status", "--timeout", "1")
        assert r.returncode == 2 and "no answer" in r.stderr and "no MicroPython board" in r.stderr
    finally:
        os.close(master)
        os.close(slave)
    r = parkctl("diag", "--port", board.port, "alarm", "test", "--json")
    assert r.returncode == 0, r.stderr
    alarm = json.loads(r.stdout)["alarm"]
    r = parkctl("diag", "--port", board.port, "log", "5", "--json")
    raised = [e for e in json.loads(r.stdout) if e["id"] == alarm]
    assert raised and raised[0]["kind"] == "alarm_raised" and raised[0]["fields"]["test"] is True


def test_a_boards_own_configuration_survives_a_later_deploy(board: VirtualBoard, tmp_path: Path) -> None:
    mine = json.loads((ROOT / "firmware" / "lamp" / "config.json").read_text())
    mine["site"]["name"] = "pole 17"
    path = tmp_path / "pole17.json"
    path.write_text(json.dumps(mine))
    r = parkctl("deploy", "--port", board.port, "lamp", "--device-config", str(path), "--json")
    assert r.returncode == 0, r.stderr

    def installed() -> dict:
        with Port(board.port) as p:
            return p.ask("config get", timeout=60)["data"]

    assert installed()["file"] == "/lamp.json" and installed()["config"]["site"]["name"] == "pole 17"
    r = parkctl("deploy", "--port", board.port, "lamp", "--json")  # a new build, no configuration
    assert r.returncode == 0, r.stderr
    assert "/lamp.json" not in json.loads(r.stdout)["copied"]
    assert installed()["config"]["site"]["name"] == "pole 17"


def test_a_deploy_that_fails_leaves_the_firmware_running(board: VirtualBoard, firmware: Path) -> None:
    from parkctl.errors import UserError

    (firmware / "lamp" / "broken.py").write_text("x = (\n")
    with pytest.raises(UserError, match=r"broken\.py:2: SyntaxError"):
        deploy(board.port, "lamp", root=firmware)
    assert status(board.port)["mode"] == "schedule"  # the lamp's loop answers again


def test_flash_will_not_erase_a_journal_the_centre_has_not_got(board: VirtualBoard) -> None:
    # No broker: the boot's events wait in the journal.
    assert status(board.port)["pending"] > 0
    r = parkctl("flash", "--port", board.port, "lamp")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not yet delivered" in r.stderr and "--force" in r.stderr
    assert status(board.port)["mode"] == "schedule"  # asked, not interrupted


def test_provision_names_what_is_wrong_with_the_inventory_and_the_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARK_")}
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,site,kind\nlamp-1,g60,lamp\n")
    r = parkctl("provision", "--inventory", str(bad), "--device", "lamp-1", "--port", "/dev/null", env=env)
    assert (
        r.returncode == 2 and "missing column(s) latitude, longitude, tz, wifi_ssid, broker_url" in r.stderr
    )
    secrets = tmp_path / "s.toml"
    inv = str(_inventory(tmp_path))

    def provision() -> subprocess.CompletedProcess[str]:
        args = [
            "--inventory",
            inv,
            "--device",
            "lamp-g60-007",
            "--port",
            "/dev/null",
            "--secrets",
            str(secrets),
        ]
        return parkctl("provision", *args, env=env)

    secrets.write_text('[default]\nmqtt_pass = "oops-Secret-3"\n')
    r = provision()
    assert r.returncode == 2 and "unknown key 'mqtt_pass'" in r.stderr
    assert "oops-Secret-3" not in r.stdout + r.stderr
    secrets.write_text('[default\nmqtt_password = "oops-Secret-4"\n')
    r = provision()
    assert r.returncode == 2 and "not TOML" in r.stderr and "oops-Secret-4" not in r.stdout + r.stderr


def test_provision_makes_a_kiosks_configuration_with_the_kiosks_parser(tmp_path: Path) -> None:
    from parkctl.errors import UserError
    from parkctl.provision import device_config, read_inventory

    inv = tmp_path / "inventory.csv"
    inv.write_text(
        "device_id,site,kind,latitude,longitude,tz,wifi_ssid,broker_url\n"
        "kiosk-gate-1,g60,kiosk,,,CST-8,park-iot,mqtt://127.0.0.1:1\n"
        "kiosk-gate-2,g60,kiosk,,,Mars,park-iot,mqtt://127.0.0.1:1\n"
        "bench-1,g60,bench,,,CST-8,park-iot,mqtt://127.0.0.1:1\n"
    )
    rows = read_inventory(inv)
    secrets = {"wifi_password": "w", "mqtt_user": "kiosks", "mqtt_password": "p"}
    cfg = device_config(rows["kiosk-gate-1"], secrets, inv)
    assert cfg["device"] == "kiosk-gate-1" and cfg["site"]["id"] == "g60" and cfg["site"]["tz"] == "CST-8"
    assert "lat" not in cfg["site"] and cfg["checkin"]["window_s"] == 300  # the kiosk's own defaults
    assert cfg["network"]["user"] == "kiosks"
    with pytest.raises(UserError, match=r"inventory.csv:3: the configuration for kiosk-gate-2: site.tz"):
        device_config(rows["kiosk-gate-2"], secrets, inv)
    with pytest.raises(UserError, match=r"kind 'bench': one of lamp, kiosk"):
        device_config(rows["bench-1"], secrets, inv)


@pytest.fixture
def silent_board() -> Iterator[str]:
    """A serial port whose board enters the raw REPL, offers raw-paste mode, and
    then never answers again (hung, or its USB cable pulled halfway)."""
    import select
    import threading

    master, slave = os.openpty()
    done = threading.Event()

    def board() -> None:
        heard = b""
        while not done.is_set():
            if not select.select([master], [], [], 0.05)[0]:
                continue
            try:
                heard += os.read(master, 4096)
            except OSError:
                return
            if heard.endswith(b"\r\x01"):
                os.write(master, b"raw REPL; CTRL-B to exit\r\n>")
            elif heard.endswith(b"\x05A\x01"):
                os.write(master, b"R\x01")  # then silence

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        done.set()
        thread.join()
        os.close(master)
        os.close(slave)


def test_a_board_that_stops_answering_ends_the_deploy_with_an_error(
    silent_board: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parkctl import deploy as deploy_module
    from parkctl.errors import UserError

    monkeypatch.setattr(deploy_module, "ANSWER_TIMEOUT_S", 0.5)
    with pytest.raises(UserError, match=f"the board at {silent_board} stopped answering during the deploy"):
        deploy(silent_board, "lamp")
