"""`parkctl provision`: one device's configuration from the park's inventory, onto
the device.

The inventory (CSV) says where each device is and what it connects to; secrets
(Wi-Fi password, MQTT user and password) come from a separate TOML file or the
environment, never from the inventory. The configuration is the app's shipped
one with the device's site, id and network filled in, validated by the
firmware's own parser, and written to the board only: as /lamp.json or /kiosk.json (the
installed configuration, which a later `parkctl deploy` never touches), never to
a file on this machine, and never printed: what is shown has the secrets masked.
There are no default passwords: a device without credentials is refused here.
A device whose broker is `mqtts://` checks the broker's certificate against a CA
certificate on its flash: `--ca FILE` (PEM or DER) is written there as /ca.der.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import ssl
import tomllib
from pathlib import Path
from typing import Any

from .build import INSTALLED, device_files
from .errors import UserError
from .runtime import ROOT, config_errors

COLUMNS = ("device_id", "site", "kind", "latitude", "longitude", "tz", "wifi_ssid", "broker_url")
SECRET_KEYS = ("wifi_password", "mqtt_user", "mqtt_password")
ENV = {
    "wifi_password": "PARK_WIFI_PASSWORD",
    "mqtt_user": "PARK_MQTT_USER",
    "mqtt_password": "PARK_MQTT_PASSWORD",
}


def read_inventory(path: Path) -> dict[str, dict[str, str]]:
    """device id -> its row; errors name the file, the line and the column."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
            header = list(rows[0]) if rows else []
    except OSError as e:
        raise UserError(f"cannot read the inventory {path}: {e.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a CSV file: {e}") from None
    if not rows:
        raise UserError(f"{path}: no devices (a header line {','.join(COLUMNS)} and one line per device)")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    out: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows, start=2):
        dev = (row.get("device_id") or "").strip()
        if not dev:
            raise UserError(f"{path}:{n}: device_id is empty")
        if dev in out:
            raise UserError(f"{path}:{n}: device {dev} is listed twice")
        out[dev] = {k: (row.get(k) or "").strip() for k in COLUMNS}
        out[dev]["line"] = str(n)
    return out


def load_secrets(path: Path) -> dict[str, Any]:
    """The secrets file (TOML), read whole; errors name the file, never a value."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise UserError(f"cannot read the secrets file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        # The message names a line and column, not the value.
        raise UserError(f"{path}: not TOML: {e}") from None


def read_secrets(path: Path | None, device: str) -> dict[str, str]:
    """The device's secrets: the environment, then the file's [devices."ID"] table,
    then its [default] table."""
    found: dict[str, str] = {}
    if path is not None:
        data = load_secrets(path)
        for table in (data.get("default", {}), data.get("devices", {}).get(device, {})):
            if not isinstance(table, dict):
                raise UserError(f'{path}: [default] and [devices."ID"] must be tables')
            for k, v in table.items():
                if k not in SECRET_KEYS:
                    raise UserError(f"{path}: unknown key {k!r} (known: {', '.join(SECRET_KEYS)})")
                if not isinstance(v, str):
                    raise UserError(f"{path}: {k} must be a string")
                found[k] = v
    for k, var in ENV.items():
        if os.environ.get(var):
            found[k] = os.environ[var]
    return found


CA_FILE = "/ca.der"  # the broker's CA certificate on the board, with mqtts://


def read_ca(path: Path) -> bytes:
    """A CA certificate file (PEM or DER) as DER, the form the board's ssl takes."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read the CA certificate {path}: {e.strerror}") from None
    try:
        der = ssl.PEM_cert_to_DER_cert(data.decode("ascii")) if data.lstrip().startswith(b"-----") else data
        ssl.create_default_context(cadata=der)  # parses it: a certificate, or an error
    except (ValueError, ssl.SSLError):
        raise UserError(f"{path}: not a certificate (PEM or DER)") from None
    return der


def device_config(
    row: dict[str, str], secrets: dict[str, str], inventory: Path, ca: bool = False
) -> dict[str, Any]:
    """The device's configuration: the app's shipped one, this device filled in.
    ca: a CA certificate is installed with it (an mqtts:// broker needs one)."""
    where = f"{inventory}:{row['line']}"
    app = row["kind"]
    if app not in INSTALLED:
        raise UserError(f"{where}: kind {app!r}: one of {', '.join(INSTALLED)}")
    with open(ROOT / "firmware" / app / "config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    cfg = copy.deepcopy(cfg)
    site = dict(cfg.get("site", {}))
    site.update(id=row["site"], tz=row["tz"])
    if app == "lamp":  # where the pole is: its sunset and sunrise (a kiosk has no use for it)
        try:
            site.update(lat=float(row["latitude"]), lon=float(row["longitude"]))
        except ValueError:
            raise UserError(f"{where}: latitude and longitude must be numbers") from None
    cfg["site"] = site
    cfg["device"] = row["device_id"]
    missing = [ENV[k] for k in ("mqtt_user", "mqtt_password") if not secrets.get(k)]
    if row["wifi_ssid"] and not secrets.get("wifi_password"):
        missing.insert(0, ENV["wifi_password"])
    if missing:
        raise UserError(
            f"no {', '.join(m[5:].lower().replace('_', ' ') for m in missing)} for {row['device_id']}: "
            f"give them in the secrets file or as {', '.join(missing)} (devices have no default passwords)"
        )
    cfg["network"] = {
        "ssid": row["wifi_ssid"],
        "key": secrets.get("wifi_password", ""),
        "broker": row["broker_url"],
        "user": secrets["mqtt_user"],
        "password": secrets["mqtt_password"],
    }
    tls = row["broker_url"].startswith("mqtts://")
    if tls and not ca:
        raise UserError(
            f"{where}: {row['device_id']}'s broker is mqtts://: give its CA certificate with --ca FILE "
            "(the device checks the broker's certificate against it)"
        )
    if ca and not tls:
        raise UserError(
            f"{where}: --ca is for an mqtts:// broker; {row['device_id']}'s is {row['broker_url']}"
        )
    if tls:
        cfg["network"]["ca"] = CA_FILE
    errors = config_errors(app, cfg)
    if errors:
        raise UserError(f"{where}: the configuration for {row['device_id']}: " + "; ".join(errors))
    return cfg


def masked(cfg: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    net = out.get("network", {})
    for k in ("key", "password"):
        if net.get(k):
            net[k] = "***"
    return out


def command_key(secrets_file: Path | None, device: str) -> dict[str, bytes]:
    """The device's command key file (docs/security.md): derived from the park's
    master key ($PARK_COMMAND_KEY or the secrets file's [centre] command_key) and
    the device id. Without it the device would refuse every command."""
    from sim.cmdsign import KEY_FILE, derive_key

    from .centrecmd import Login

    master = Login.find(secrets_file).command_key
    if master is None:
        raise UserError(
            f"no command key for {device}: give the park's master key as $PARK_COMMAND_KEY or in the "
            "secrets file's [centre] table (command_key); devices act only on commands signed with theirs"
        )
    return {KEY_FILE: derive_key(master, device).hex().encode()}


def broker_account(row: dict[str, str], secrets: dict[str, str], broker_dir: Path) -> None:
    """The device's account on the park's broker (docs/broker.md): its user name is
    its device id, which the broker's rights are written against."""
    from .parkbroker import BrokerDir

    device = row["device_id"]
    bd = BrokerDir(broker_dir)
    bd.set_password(device, secrets["mqtt_password"])
    if row["kind"] == "kiosk":
        bd.add_kiosk(device, row["site"])


def centre_account(broker_dir: Path, secrets_file: Path | None) -> dict[str, Any]:
    """The centre's account on the park's broker, from $PARK_CENTRE_PASSWORD or the
    secrets file's [centre] table."""
    from .centrecmd import Login
    from .parkbroker import CENTRE_USER, BrokerDir

    login = Login.find(secrets_file)
    if login.user and login.user != CENTRE_USER:
        raise UserError(
            f"the centre's broker account is {CENTRE_USER!r}, not {login.user!r} (docs/broker.md)"
        )
    if not login.password:
        raise UserError(
            "no password for the centre's account: give it as $PARK_CENTRE_PASSWORD or in the secrets "
            "file's [centre] table (mqtt_password)"
        )
    BrokerDir(broker_dir).set_password(CENTRE_USER, login.password)
    return {"account": CENTRE_USER, "passwd": str(broker_dir / "passwd")}


def provision(
    inventory: Path,
    device: str,
    port: str,
    secrets: Path | None,
    ca: Path | None = None,
    broker_dir: Path | None = None,
    release_key: Path | None = None,
) -> dict[str, Any]:
    from .deploy import deploy

    rows = read_inventory(inventory)
    row = rows.get(device)
    if row is None:
        near = [d for d in rows if device.lower() in d.lower()][:5]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise UserError(f"device {device} is not in {inventory}{hint}")
    der = read_ca(ca) if ca is not None else None
    if release_key is not None:
        from .release import device_key_files

        keyfiles = device_key_files(release_key)
    else:
        keyfiles = {}
    found = read_secrets(secrets, device)
    if broker_dir is not None:
        from .parkbroker import CENTRE_USER

        if device == CENTRE_USER:
            raise UserError(f"a device cannot be called {CENTRE_USER!r}: that is the centre's broker account")
        # The park's broker grants each device the topics of its own user name.
        user = found.setdefault("mqtt_user", device)
        if user != device:
            raise UserError(
                f"{device}'s MQTT user is {user!r}: on the park's broker (--broker-dir) a device's user "
                "name is its device id, which its rights are written against; drop mqtt_user for it"
            )
    cfg = device_config(row, found, inventory, ca=der is not None)
    key = command_key(secrets, device)
    app = row["kind"]
    if broker_dir is not None:
        broker_account(row, found, broker_dir)
    text = json.dumps(cfg, indent=1, sort_keys=True).encode()
    extra = device_files(app, text)
    if der is not None:
        extra[CA_FILE] = der
    extra.update(key)
    extra.update(keyfiles)  # not a secret: the public half of the park's release key
    done = deploy(port, app, extra=extra, remove=[INSTALLED[app] + ".trial"])
    out = {"device": device, "config": masked(cfg), "installed": INSTALLED[app], "deploy": done.as_json()}
    if keyfiles:
        out["release_key"] = next(iter(keyfiles))
    if broker_dir is not None:
        out["broker_account"] = {"user": device, "passwd": str(broker_dir / "passwd")}
    return out
