"""The park's own broker: the shipped Mosquitto configuration (deploy/mosquitto/),
its accounts and rights, and `parkctl broker`, which runs it here.

A broker folder holds what the configuration names: `passwd` (Mosquitto's
password file, PBKDF2-SHA512 hashes as `mosquitto_passwd` writes them), `acl`
(deploy/mosquitto/park.acl and one block per kiosk for its site's roster),
and the TLS files `ca.pem`, `server.pem`, `server.key`. `parkctl provision
--broker-dir DIR` adds each device it provisions (user name = device id);
`parkctl provision --centre --broker-dir DIR` adds the centre's tools."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import re
import secrets
import subprocess
import tempfile
from pathlib import Path

from .brokers import _wait_listening, free_port, mosquitto_binary, stop_process
from .errors import UserError
from .runtime import ROOT

SHIPPED = ROOT / "deploy" / "mosquitto"
CENTRE_USER = "centre"  # the account park.acl gives the centre's rights
_ITERATIONS = 101  # what mosquitto_passwd uses for its $7$ (PBKDF2-SHA512) hashes
_USER = re.compile(r"^[A-Za-z0-9_-]+$")
_KIOSK_BLOCK = re.compile(r"^user (\S+)\ntopic read park/(\S+)/kiosk/roster$", re.M)
_GENERATED = "# --- kiosks (parkctl provision) ---\n"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """`$7$101$SALT$HASH`, the form Mosquitto 2 reads in its password file."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _ITERATIONS)
    return f"$7${_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def _write_private(path: Path, text: str) -> None:
    """Atomically, readable by its owner only (a password file, a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BrokerDir:
    """A broker folder: its accounts and its rights."""

    def __init__(self, path: Path):
        self.path = path
        self.passwd = path / "passwd"
        self.acl = path / "acl"

    def _check_user(self, user: str) -> None:
        if not _USER.match(user):
            raise UserError(f"{user!r} cannot be a broker account: letters, digits, - and _ only")

    def set_password(self, user: str, password: str) -> None:
        """Add the account, or give it a new password."""
        self._check_user(user)
        if not password:
            raise UserError(f"no password for {user}: accounts have no default or empty passwords")
        lines = []
        try:
            lines = self.passwd.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise UserError(f"cannot read {self.passwd}: {e.strerror}") from None
        lines = [ln for ln in lines if ln.split(":", 1)[0] != user]
        lines.append(f"{user}:{password_hash(password)}")
        try:
            _write_private(self.passwd, "\n".join(lines) + "\n")
        except OSError as e:
            raise UserError(f"cannot write {self.passwd}: {e.strerror}") from None
        self.write_acl()

    def users(self) -> list[str]:
        try:
            text = self.passwd.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [ln.split(":", 1)[0] for ln in text.splitlines() if ":" in ln]

    def kiosks(self) -> dict[str, str]:
        """kiosk device -> its site, as the acl grants them the roster."""
        try:
            text = self.acl.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        _, _, generated = text.partition(_GENERATED)
        return {m.group(1): m.group(2) for m in _KIOSK_BLOCK.finditer(generated)}

    def add_kiosk(self, device: str, site: str) -> None:
        self._check_user(device)
        kiosks = self.kiosks()
        kiosks[device] = site
        self.write_acl(kiosks)

    def write_acl(self, kiosks: dict[str, str] | None = None) -> None:
        """The shipped rights, then each kiosk's roster."""
        kiosks = self.kiosks() if kiosks is None else kiosks
        text = (SHIPPED / "park.acl").read_text(encoding="utf-8") + "\n" + _GENERATED
        for device, site in sorted(kiosks.items()):
            text += f"user {device}\ntopic read park/{site}/kiosk/roster\n"
        try:
            _write_private(self.acl, text)
        except OSError as e:
            raise UserError(f"cannot write {self.acl}: {e.strerror}") from None


def make_certificates(folder: Path, names: list[str]) -> None:
    """A CA made for this broker and a server certificate it signs for `names`
    (host names or addresses): ca.pem, server.pem, server.key in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "park broker CA (parkctl broker)")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        folder / "server.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def run_config(
    folder: Path,
    port: int,
    bind: str | None,
    plain_port: int | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    persistence: bool = True,
) -> str:
    """The shipped park.conf with this run's paths and ports: the folder's
    passwd and acl, TLS files `tls` = (ca, cert, key) (default: the folder's),
    the TLS listener on `port` (at `bind`, or every address), and, given
    `plain_port`, a listener without TLS on 127.0.0.1 only (for the simulator,
    whose lamps cannot speak TLS), under the same accounts and rights."""
    ca, cert, key = tls or (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths = {
        "password_file": folder / "passwd",
        "acl_file": folder / "acl",
        "persistence_location": folder / "data",
        "cafile": ca,
        "certfile": cert,
        "keyfile": key,
    }
    out = []
    for line in (SHIPPED / "park.conf").read_text(encoding="utf-8").splitlines():
        word = line.split(" ", 1)[0]
        if word in paths:
            line = f"{word} {paths[word]}"
        elif word == "persistence" and not persistence:
            line = "persistence false"
        elif word == "listener":
            if plain_port is not None:
                out.append(f"listener {plain_port} 127.0.0.1")
            line = f"listener {port}" + (f" {bind}" if bind else "")
        out.append(line)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # Started as root, Mosquitto would drop to the `mosquitto` user, who cannot
        # read this folder's password file (0600, the caller's): it runs as the
        # caller, as every other file of the folder is the caller's.
        out.append("user root")
    out.append(f"log_dest file {folder / 'mosquitto.log'}")
    out += ["log_type error", "log_type warning", "log_type notice"]
    return "\n".join(out) + "\n"


class ParkBroker:
    """Mosquitto running the shipped configuration from a broker folder."""

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        bind: str | None = "127.0.0.1",
        plain_port: int | None = None,
        names: list[str] | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        persistence: bool = True,
    ):
        self.folder = folder
        self.port = port or free_port()
        self.plain_port = plain_port
        self.bind = bind
        self.proc: subprocess.Popen | None = None
        self.ca = tls[0] if tls else folder / "ca.pem"
        self.conf = folder / "mosquitto.conf"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if tls is None and not (folder / "server.pem").exists():
                make_certificates(folder, names or ["localhost", "127.0.0.1"])
            bd = BrokerDir(folder)
            if not bd.acl.exists():
                bd.write_acl()
            if not bd.passwd.exists():
                _write_private(bd.passwd, "")
            self.conf.write_text(run_config(folder, self.port, bind, plain_port, tls, persistence))
        except OSError as e:
            raise UserError(f"cannot use {folder} as the broker's folder: {e.strerror or e}") from None

    @property
    def url(self) -> str:
        return f"mqtts://{self.bind or 'localhost'}:{self.port}"

    @property
    def plain_url(self) -> str | None:
        return None if self.plain_port is None else f"mqtt://127.0.0.1:{self.plain_port}"

    def start(self) -> ParkBroker:
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # it logs to the folder's mosquitto.log
        )
        proc = self.proc
        try:
            _wait_listening(self.port, lambda: proc.poll() is None)
        except RuntimeError as e:
            self.stop()
            raise UserError(
                f"Mosquitto did not start: {e}; its log: {self.folder / 'mosquitto.log'}"
            ) from None
        return self

    def reload(self) -> None:
        """Read the password file and the acl again (SIGHUP), as after a provision."""
        import signal

        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
