# An update of the app over MQTT, on the device (docs/updates.md, "The transfer
# over MQTT"): the centre offers a release (the `update` command), the device
# asks for each piece it lacks on .../fetch and appends what comes on
# .../chunk to its staging area (staging.py), checks the manifest's signature
# before any file and every file's sha256 after the last, then switches to the
# new app on trial (apptrial.py) and restarts.
#
# What is on flash says where a transfer stands, so it goes on after a reset,
# a cut or a reconnect from the last piece the flash has: the offer in
# /stage/offer ("RID SIZE SIG TRIAL_S"), the manifest as it comes in
# /stage/offer.json, then staging's own files.
#
# An image release (docs/updates.md, "The MicroPython image") goes the same
# way up to its manifest; its one file then streams into the next OTA slot
# (imgupdate.py, fwimage.py) instead of the staging area.
#
# Loaded only while a transfer runs (App.updater), with release, p256 and
# staging; App drops them all when it is over.

import binascii
import hashlib
import json
import os

import sys

import ticks
from apploop import log_event
from staging import CHUNK, Staging
from uplink import CommandError

ASK_MS = 5000  # an ask unanswered this long is made again
ASKS = 12  # unanswered asks in a row before the transfer pauses ("stalled")
WRONG = 3  # times a release's files may come wrong before it is refused
KEY = "/release.pub"
OFFER = "/stage/offer"
PART = "/stage/offer.json"
TRIAL_S = 600
MAX_MANIFEST = 12288  # release.MAX_MANIFEST (release is loaded for the checks alone)
_HEX = "0123456789abcdef"


def _hex(v, n):
    return isinstance(v, str) and len(v) == n and all(c in _HEX for c in v)


def _int(v, lo, hi):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


IMG_RID = "/image.rid"  # imgupdate.RID


def _image_version():
    try:
        with open(IMG_RID) as f:
            return f.read().split()[1]
    except (OSError, IndexError):
        return None


def _drop_checks():
    # The checks' code (release, p256) is loaded for the manifest's check and the
    # files' at the end: not kept through the transfer.
    sys.modules.pop("release", None)
    sys.modules.pop("p256", None)


class Updater:
    """One release at a time. state: fetching, stalled, installing, refused,
    idle (the app's state says it: state())."""

    def __init__(self, app, info):
        """info: the app's counts, kept across updaters: [refused, bad chunks, last]."""
        self.app = app
        self.info = info
        self.st = Staging(os)
        self.state = "idle"
        self.rid = ""
        self.size = 0  # of the manifest
        self.sig = ""
        self.trial_s = TRIAL_S
        self.to = None  # the release's version, once its manifest is checked
        self.asked = None  # (path, offset, length) asked for, and when
        self.asks = 0
        self.wrong = 0
        self.total = 0
        self.img = None  # an image release's "image" (docs/updates.md, "The MicroPython image")
        self.w = None  # its fwimage.Writer, from the manifest's check on
        self.err = None  # what the Writer refused of a piece
        self.offer_file = OFFER
        # The pieces' topic, listened to from the first update of this boot on
        # (not at boot: the lamp's heap holds only what it uses).
        up = app.link.uplink
        if up is not None and up.base + "/chunk" not in up.topics:
            up.listen(up.base + "/chunk", app._chunk)
        self._resume()

    # --- what is on flash ------------------------------------------------------

    def _resume(self):
        # A transfer a reset or a cut stopped: goes on, if what is on flash is whole.
        try:
            with open(OFFER) as f:
                w = f.read().split()
            rid, size, sig, trial_s = w[0], int(w[1]), w[2], int(w[3])
        except (OSError, ValueError, IndexError):
            return
        self.rid, self.size, self.sig, self.trial_s = rid, size, sig, trial_s
        self.state = "fetching"
        staged = self.st.staged()
        if staged is not None:
            try:
                self._take(staged[0])
            except Exception as e:  # noqa: BLE001 - as in step()
                if getattr(e, "code", None) is None:
                    raise
                self._refuse(e)

    def _write_offer(self):
        self.restore("%s %d %s %d" % (self.rid, self.size, self.sig, self.trial_s))

    # --- the centre's command --------------------------------------------------

    def offer(self, msg):
        """The `update` command: returns its result, or raises CommandError."""
        if msg.get("cancel") is True:
            self.cancel("cancelled by the centre")
            return {"state": "cancelled"}
        rid = msg.get("release")
        if not _hex(rid, 64):
            raise CommandError(
                '"release" must be the release id: the sha256 of its release.json, 64 hex digits'
            )
        size = msg.get("size")
        if not _int(size, 1, MAX_MANIFEST):
            raise CommandError('"size" must be the bytes of release.json, 1 to %d' % MAX_MANIFEST)
        sig = msg.get("sig")
        if not _hex(sig, 128):
            raise CommandError('"sig" must be release.sig: 128 hex digits')
        trial_s = msg.get("trial_s", TRIAL_S)
        if not _int(trial_s, 60, 86400):
            raise CommandError('"trial_s" must be whole seconds from 60 to 86400')
        if self.app.app_trial:
            raise CommandError("the app is on trial after an update: offer again once it is done")
        if self._running(rid):
            return {"state": "running"}
        if rid == self.rid and (size, sig) == (self.size, self.sig) and self.state in ("fetching", "stalled"):
            self.state = "fetching"  # the same offer again: on from where it stands
            self.asks = 0
            self.asked = None
            return {"state": "fetching"}
        self.st.abandon()
        self.rid, self.size, self.sig, self.trial_s = rid, size, sig, trial_s
        self.to = None
        self.w = self.img = self.err = None
        self.wrong = 0
        self._write_offer()
        self.state = "fetching"
        self.asks = 0
        self.asked = None
        log_event("update", "release %s offered: fetching" % rid[:16])
        return {"state": "fetching"}

    def _running(self, rid):
        for path in ("/app.rid", IMG_RID):
            try:
                with open(path) as f:
                    if f.read().split()[0] == rid:
                        return True
            except (OSError, IndexError):
                pass
        return False

    def cancel(self, why):
        if self.state in ("fetching", "stalled", "installing"):
            log_event("update", "release %s: %s" % (self.rid[:16], why))
        self.st.abandon()  # /stage emptied: the offer goes with it
        self.state = "idle"
        self.rid = ""
        self.to = None
        self.w = self.img = self.err = None

    # --- the transfer ----------------------------------------------------------

    def _next(self):
        """(path, offset, length) of the next piece; None when all is here."""
        if self.to is None:
            have = max(_size(PART), 0)
            if have > self.size:
                os.remove(PART)
                have = 0
            if have < self.size:
                return "release.json", have, min(CHUNK, self.size - have)
            with open(PART, "rb") as f:
                data = f.read()
            self._take(data)
        w = self.w
        if w is not None:
            return ("firmware.bin", w.got, min(CHUNK, w.size - w.got)) if w.got < w.size else None
        return self.st.want()

    def _take(self, data):
        """The manifest, whole on flash: checked, then its files are staged."""
        from release import Refused, check_manifest, load_key

        if binascii.hexlify(hashlib.sha256(data).digest()).decode() != self.rid:
            try:
                os.remove(PART)  # fetched again
            except OSError:
                pass
            raise Refused("manifest", "its sha256 is not the release id offered")
        a = self.app
        try:
            m = check_manifest(
                data,
                binascii.unhexlify(self.sig),
                load_key(KEY),
                a.APP,
                chip(a),
                a.version,
                self.st.room(),
                _image_version(),
            )
            if "image" in m:
                # Streamed into the next OTA slot, from offset 0 at every boot (the
                # hash's state cannot be kept): the manifest stays where it is.
                import imgupdate

                self.w = imgupdate.writer(m["image"])
                self.img = m["image"]
                self.to = m["version"]
                self.total = self.img["size"]
                self.app.link.changed()
                return
            # The offer stays until the manifest is in its place: a cut in between
            # finds the offer and the manifest fetched, and does this again.
            self.st.begin(data, binascii.unhexlify(self.sig), m, self.rid, ("offer", "offer.json"))
            self.to = m["version"]
            self.total = sum(e["size"] for e in m["files"])
        finally:
            m = data = None
            _drop_checks()
        try:
            os.remove(PART)
        except OSError:
            pass  # (resumed: gone already)
        self.app.link.changed()

    def have(self):
        if self.w is not None:
            return self.w.got
        if self.to is None:
            return max(_size(PART), 0)
        n = 0
        for path, _ in self.st.entries or ():
            s = _size(self.st.files + "/" + path)
            n += s if s > 0 else 0
        return n

    def chunk(self, payload):
        """A piece from the centre (.../chunk, QoS 0): taken only if it is the one asked for."""
        a = self.asked
        try:
            m = json.loads(payload)
            ok = a is not None and m["release"] == self.rid and (m["path"], m["offset"]) == a[:2]
            data = binascii.a2b_base64(m["data"]) if ok else b""
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok or a is None or len(data) != a[2] or self.state != "fetching":
            self.info[1] += 1
            return
        if a[0] == "release.json" and self.to is None:
            with open(PART, "ab") as f:
                f.write(data)
        elif self.w is not None:
            try:
                self.w.write(data)
            except Exception as e:  # noqa: BLE001 - an ImageError (not an image for this board): refused at the next step
                self.err = e
        else:
            try:
                self.st.chunk(self.rid, a[0], a[1], data)
            except Exception:  # noqa: BLE001 - Refused: not what staging wants next (a file removed since the ask)
                self.info[1] += 1
                return
        self.asked = None  # the next is asked for at once
        self.asks = 0

    def step(self, now):
        """The transfer's part of a pass; returns ms until it wants the next (-1: none)."""
        if self.state == "installing":
            self._install()
            return 0
        if self.state != "fetching" or not self.app.link.up:
            return -1
        if self.err is not None:
            from release import Refused

            e, self.err = self.err, None
            self._refuse(Refused("image", str(e)))
            _drop_checks()
            return -1
        a = self.asked
        if a is not None and ticks.diff(now, a[3]) < ASK_MS:
            return ASK_MS - ticks.diff(now, a[3])
        if a is not None:
            self.asks += 1
            if self.asks >= ASKS:
                self.state = "stalled"
                log_event("update", "release %s: the centre stopped answering: paused" % self.rid[:16])
                self.app.link.changed()
                return -1
        try:
            nxt = self._next()
        except Exception as e:  # noqa: BLE001 - a Refused (the manifest's check): anything else goes on up
            if getattr(e, "code", None) is None:
                raise
            self._refuse(e)
            return -1
        if nxt is None:
            self.state = "installing"
            self.asked = None
            return 0
        self.asked = (nxt[0], nxt[1], nxt[2], now)
        up = self.app.link.uplink
        up.client.publish(
            up.base + "/fetch",
            '{"release":"%s","path":"%s","offset":%d,"length":%d}' % (self.rid, nxt[0], nxt[1], nxt[2]),
        )
        up.client.send()  # now, not at the next pass: one round trip a piece
        return ASK_MS

    def resume(self):
        """The link is back: a paused transfer asks again."""
        if self.state == "stalled":
            self.state = "fetching"
            self.asks = 0
            self.asked = None

    # --- the end -----------------------------------------------------------------

    def _install(self):
        from release import Refused

        if self.w is not None:
            self._install_image()
            return
        try:
            self.st.verify()
        except Refused as e:
            self.wrong += 1
            if self.wrong >= WRONG:
                self._refuse(Refused(e.code, "%s (%d times)" % (e, self.wrong)))
            else:
                self.state = "fetching"  # the wrong file is fetched again
            _drop_checks()
            return
        import apptrial
        import bootcount

        _drop_checks()
        a = self.app
        to = self.to
        # The trial first: a cut after the switch must find it (apptrial.py).
        apptrial.begin(a.version, to, self.rid, self.trial_s)
        bootcount.healthy()  # the new app's boots counted afresh (a board in safe mode leaves it)
        a.post(
            "update_installed",
            {
                "release": self.rid,
                "version": to,
                "from": a.version,
                "bad_chunks": self.info[1],
                "refetched": self.wrong,
            },
        )
        self.st.switch()
        self.state = "idle"
        a.restart_at = ticks.add(a.board.ticks_ms(), 0)
        a.restart_why = "update to %s installed: the new app on trial" % to

    def _install_image(self):
        import fwimage
        import imgupdate
        from release import Refused

        try:
            to = imgupdate.install(self, self.w)
        except fwimage.ImageError as e:
            self.wrong += 1
            code = "sha256" if "sha256" in str(e) else "image"
            if self.wrong >= WRONG or code != "sha256":
                self._refuse(Refused(code, "%s (%d times)" % (e, self.wrong) if code == "sha256" else str(e)))
            else:
                self.w = imgupdate.writer(self.img)  # fetched again, from offset 0
                self.state = "fetching"
            _drop_checks()
            return
        _drop_checks()
        self.state = "idle"
        a = self.app
        a.restart_at = ticks.add(a.board.ticks_ms(), 0)
        a.restart_why = "image %s installed: the bootloader boots it on trial" % to

    def restore(self, offer):
        """The offer (its line) on flash, in one atomic step: at an offer, and
        put back by imgupdate.install when the image was refused at its end (a
        reset goes on from the manifest)."""
        t = OFFER + ".tmp"
        with open(t, "w") as f:
            f.write(offer)
        os.rename(t, OFFER)

    def _refuse(self, e):
        self.info[0] += 1
        self.info[2] = "refused: %s" % e
        rid = self.rid
        self.cancel("refused: %s" % e)
        self.state = "refused"
        self.app.post("update_refused", {"release": rid, "code": e.code, "detail": str(e)})


# --- what the app's pass does for updates (apploop.App: its code stays here) ---


def get(a):
    """The app's Updater, made when first needed."""
    u = a.upd
    if u is None:
        u = a.upd = Updater(a, a.upd_info)
    return u


def chip(a):
    """The chip, as releases name it: the running build's, else the app's."""
    try:
        with open("/manifest.json") as f:
            return json.loads(f.read()).get("chip") or a.CHIP
    except (OSError, ValueError, AttributeError):
        return a.CHIP


def state(a):
    u = a.upd
    i = a.upd_info
    return {
        "release": u.rid if u else None,
        "state": u.state if u else "idle",
        "have": u.have() if u else 0,
        "size": u.total if u else 0,
        "refused": i[0],
        "bad_chunks": i[1],
        "last": i[2],
    }


def app_pass(a, now, deadline, boot):
    """At the end of the app's pass, while an update has something to do: what a
    rollback at boot left to say, a transfer a reset stopped, the new app's
    trial, the transfer's next step. Anything it raises ends the transfer
    (App._updates)."""
    from apploop import UPDATE_CODE, earliest

    if boot:
        try:
            with open("/update.result") as f:
                image = f.read(6) == "image "
        except OSError:
            pass
        else:
            if image:  # an image's switch under way (imgupdate.MARK)
                import imgupdate

                t = imgupdate.boot(a, now)  # the new image's trial, or None
                if t is not None:
                    a.app_trial = t
            else:
                import apptrial

                r = apptrial.result()
                if r is not None:  # the new app failed at boot: put back then, said now
                    a.upd_info[2] = "rolled back: %s" % r["detail"]
                    a.post("update_rolled_back", r)
                    apptrial.said()
        if _size(OFFER) >= 0:
            get(a)  # a transfer a reset stopped: on from where it stands
    t = a.app_trial
    if isinstance(t, list) and t[0] == "image":
        import imgupdate

        deadline = imgupdate.step(a, now, deadline)
    elif t:
        import apptrial

        deadline = apptrial.step(a, now, deadline)
    u = a.upd
    if u is not None:
        if a.link.up and not a._upd_up:
            u.resume()
        a._upd_up = a.link.up
        deadline = earliest(now, deadline, u.step(now))
        if u.state == "refused" or u.state == "idle":
            a.upd = None
    if a.upd is None and not a.app_trial:
        for m in UPDATE_CODE + ("imgupdate", "fwimage"):
            sys.modules.pop(m, None)
    return deadline
