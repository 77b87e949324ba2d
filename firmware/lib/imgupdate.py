# An update of the MicroPython image over MQTT (docs/updates.md, "The
# MicroPython image"): an image release's firmware.bin streams into the next OTA
# slot (fwimage.Writer) as its pieces come, finish() checks its sha256 and makes
# it the next boot, and the bootloader boots it once on trial: the app confirms
# it (fwimage.confirm()) once healthy, as a new app's trial ends (a pass
# succeeded, the centre reached); any reset before that and the bootloader goes
# back to the old image by itself, whose app then says so.
#
# MARK, written before set_boot, says where the switch stands, one field a line.
# It is apptrial.RESULT's file, "image FLAG" on its first line: the file the
# first pass of a boot looks for already (apploop: no new check stays resident),
# and never both at once (an offer is refused while an app's trial runs).
#   0 FLAG: "S" set_boot not known to be done (nor update_installed said), "B"
#     done and said (the reset into the new image is due or happened)
#   1 "FROM TO": the slots (ota_0, ota_1) the board ran and is to run
#   2 the release's version, 3 the old image's version string, 4 the new one's
#   5 the offer ("RID SIZE SIG TRIAL_S", updater.OFFER's line), put back when
#     set_boot never happened (a cut before it): the transfer starts again
#   6 why the new image gave up its trial, when it did (said by the old one)
# At a boot, the running slot and FLAG tell which: TO running, the trial (the
# new image, its first boot or one a cut made before the end); FROM with "B",
# the bootloader went back; FROM with "S", the switch never happened.
#
# Loaded only for an image release, with fwimage; dropped with the updater's code.


import fwimage
from apploop import log_event
from apptrial import _rm, _write  # an atomic write, a remove that may find nothing

MARK = "/update.result"  # apptrial.RESULT: "image FLAG" first
RID = "/image.rid"  # "RID VERSION" of the image release running since its trial ended well
IMAGE = "firmware.bin"


def _slot(which):
    import esp32

    return esp32.Partition(which).info()[4]  # type: ignore  # (the stubs allow only a label)


def running_slot():
    import esp32

    return _slot(esp32.Partition.RUNNING)


def running_version():
    """The version of the image release that runs (its trial over), or None."""
    try:
        with open(RID) as f:
            return f.read().split()[1]
    except (OSError, IndexError):
        return None


def running_rid():
    try:
        with open(RID) as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return ""


def writer(image):
    """A Writer for the manifest's checked `image`, or release.Refused (code
    image) when the board cannot take it: no OTA table, a slot too small."""
    from release import Refused

    try:
        return fwimage.Writer(image["size"], image["sha256"])
    except fwimage.ImageError as e:
        raise Refused("image", str(e))


def read():
    with open(MARK) as f:
        m = f.read().split("\n")
    while len(m) < 7:
        m.append("")
    m[0] = m[0][6:]  # "image S": S
    return m


def write(m):
    _write(MARK, "image " + "\n".join(m))


def install(u, w):
    """The whole image is in the next slot: checked, made the next boot (the
    marker first, and the offer gone, so a cut anywhere finds one or the other).
    Raises fwimage.ImageError (the running image untouched) when it is wrong."""
    a = u.app
    frm = running_slot()
    to = w.part.info()[4]
    with open(u.offer_file) as f:
        offer = f.read()
    m = ["S", "%s %s" % (frm, to), u.to, fwimage.version(), u.img["desc"], offer, ""]
    write(m)
    u.st.abandon()  # the offer and the manifest: a new image on trial must not fetch it again
    try:
        # Its version string before set_boot (the first block is in the slot by now).
        if w.block and fwimage.version(w.part) != u.img["desc"]:
            raise fwimage.ImageError(
                "the image says %s, its release %s" % (fwimage.version(w.part), u.img["desc"])
            )
        desc = w.finish()
    except Exception:
        _rm(MARK)
        u.restore(offer)  # fetched again or refused: the offer as it was
        raise
    # Said before the flag that says it was said: a cut in between says it again
    # at the new image's first boot (at least once, as every event).
    a.post(
        "update_installed",
        {
            "release": u.rid,
            "version": u.to,
            "from": m[3],
            "image": desc,
            "bad_chunks": u.info[1],
            "refetched": u.wrong,
        },
    )
    m[0] = "B"
    write(m)
    return desc


def boot(a, now):
    """At the first pass of a boot with MARK there: the trial (returned, for
    a.app_trial), the old image's report of a rollback, or the offer put back."""
    try:
        m = read()
        frm, to = m[1].split()
    except (OSError, ValueError):
        _rm(MARK)
        return None
    run = running_slot()
    if run == to:
        if m[0] != "B":
            # set_boot was done, and the power went before update_installed was said.
            a.post(
                "update_installed", {"release": m[5].split()[0], "version": m[2], "from": m[3], "image": m[4]}
            )
            m[0] = "B"
            write(m)
        try:
            trial_s = int(m[5].split()[3])
        except (ValueError, IndexError):
            trial_s = 600
        import ticks

        log_event("update", "image %s on trial" % m[4])
        return ["image", ticks.add(now, trial_s * 1000), m]
    if m[0] == "B" and run == frm:
        why = m[
            6
        ] or "the new image (%s) was not confirmed before a reset: the bootloader went back to %s" % (
            m[4],
            m[3],
        )
        a.upd_info[2] = "rolled back: %s" % why
        a.post("update_rolled_back", {"version": m[2], "to": m[3], "detail": why})
    elif run == frm:
        # The power went before set_boot was done: the transfer starts again.
        _write("/stage/offer", m[5])
        log_event("update", "image %s not switched to: fetched again" % m[4])
    _rm(MARK)
    return None


def step(a, now, deadline):
    """The new image's trial, at the end of each pass."""
    import ticks
    from apploop import earliest

    t = a.app_trial
    m = t[2]
    if a.link.up:
        a.app_trial = None
        fwimage.confirm()
        a.post(
            "update_done",
            {
                "version": m[2],
                "from": m[3],
                "image": m[4],
                "detail": "healthy on trial: the centre is reachable",
            },
        )
        _write(RID, "%s %s" % (m[5].split()[0], m[2]))
        _rm(MARK)
    elif ticks.diff(now, t[1]) >= 0:
        a.app_trial = None
        try:
            trial_s = m[5].split()[3]
        except IndexError:
            trial_s = "?"
        m[6] = "the new image (%s) was not healthy within %s s on trial: no contact with the centre" % (
            m[4],
            trial_s,
        )
        write(m)
        a.restart_at = now
        a.restart_why = "the new image not healthy: the bootloader goes back"
    else:
        deadline = earliest(now, deadline, ticks.diff(t[1], now))
    return deadline
