"""Signed releases of the lamp app for the tests of updates (docs/updates.md).

The simulator runs the app's own sources for every module that is not on the
board's flash as `.py` (docs/sim.md), so a release for it need only hold what a
test changes: boot.py and main.py (and a manifest, as every app has). A release
of the whole built app, `.mpy` and all, runs on the virtual board
(tests/test_vboard_updates.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from parkctl import release
from parkctl.updatecuts import sim_build

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


class Releases:
    """A release key (made once) and releases signed with it, in `root`."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        release.keygen(root / "keys")
        self.key = root / "keys" / "release-key.pem"
        self.public = root / "keys" / "release.pub"

    def make(
        self,
        version: str,
        app: str = "lamp",
        main: str | None = None,
        downgrade_ok: bool = False,
    ) -> Path:
        """The release folder of `version` (main.py replaced by `main` if given),
        made once: a version names one release, as at a park."""
        if (self.root / f"release-{version}").exists():
            return self.root / f"release-{version}"
        build = sim_build(self.root / f"build-{version}", app, main)
        out = self.root / f"release-{version}"
        release.sign(app, version, self.key, out, build, downgrade_ok)
        return out

    def edited(self, version: str, name: str, edit: Callable[[dict], None]) -> Path:
        """A copy of release `version` whose manifest `edit` changed, signed anew
        with the park's key: what only a mistake at the signing end would make."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        out = self.root / f"release-{version}-{name}"
        shutil.copytree(self.root / f"release-{version}", out)
        manifest = json.loads((out / "release.json").read_bytes())
        edit(manifest)
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        (out / "release.json").write_bytes(data)
        (out / "release.sig").write_text((r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex() + "\n")
        return out
