# A new app on trial after an update (docs/updates.md, "The new app's trial"),
# counted across boots as a configuration's trial is (configtrial.py).
#
# PATH: "BOOTS MS" (boots and time on trial so far, each counted ahead: a boot
# adds itself and a lease before the app runs, the app a lease every lease),
# then "FROM TO RID TRIAL_S". Written by the updater before the switch, so a
# cut after it finds the trial; a trial whose TO is not the app on flash is one
# whose switch never happened, and is dropped.
#
# Loaded by bootcount.start() at a boot on trial, and by the app's pass while
# the trial runs; forgotten when it ends.

import os

from configstore import TRIAL_LEASE_MS

PATH = "/app.trial"
RID = "/app.rid"  # "RID VERSION" of the release running since its trial ended well
RESULT = "/update.result"  # "VERSION TO\nwhy": a rollback at boot, for the old app to say
BOOTS = 10


def _write(path, text):
    t = path + ".tmp"
    with open(t, "w") as f:
        f.write(text)
    os.rename(t, path)


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def read():
    with open(PATH) as f:
        w = f.read().split()
    return [int(w[0]), int(w[1]), w[2], w[3], w[4], int(w[5])]


def write(t):
    _write(PATH, "%d %d\n%s %s %s %d" % tuple(t))


def begin(frm, to, rid, trial_s):
    """Before the switch to release `rid` (version `to`) from version `frm`."""
    _rm(RID)
    write([0, 0, frm or "-", to, rid, trial_s])


def version():
    """The version in /manifest.json: its last member (written with keys sorted)."""
    t = b""
    try:
        with open("/manifest.json", "rb") as f:
            while True:
                b = f.read(256)
                if not b:
                    break
                t = (t + b)[-300:]
    except OSError:
        return None
    i = t.rfind(b'"version":"')
    j = t.find(b'"', i + 11)
    return t[i + 11 : j].decode() if i >= 0 and j > 0 else None


def boot(failed, why):
    """At a boot with a trial in force, before the app runs (bootcount.start):
    True if the old app was put back (the board must reset); failed: the boot
    before this one failed before it was healthy, `why`."""
    try:
        t = read()
    except (OSError, ValueError, IndexError):
        t = None
    if t is None or version() != t[3]:
        _rm(PATH)  # unreadable, or its switch never happened: the app on flash runs
        return False
    if failed:
        return back(t, "a boot of %s failed before it was healthy: %s" % (t[3], why or "reset"))
    if t[0] >= BOOTS or t[1] >= t[5] * 1000:
        return back(t, "%s was not healthy within %d s (%d boots) on trial" % (t[3], t[5], t[0]))
    t[0] += 1
    t[1] += TRIAL_LEASE_MS
    write(t)
    return False


def back(t, why, result=True):
    """The old app put back (staging.py), `why` kept for it to say (result)."""
    import staging

    if result:
        _write(RESULT, "%s %s\n%s" % (t[3], t[2], why))
    try:
        staging.Staging(os).rollback()
    except Exception as e:  # noqa: BLE001 - no app kept (a board flashed without one): the new one stays
        _rm(RESULT)
        print("update: cannot roll back: %s" % e)
    _rm(PATH)
    return True


def result():
    """(fields of an update_rolled_back event) left by a rollback at boot, or
    None; a result whose rollback never happened is dropped. The app removes
    it (said()) once the event is journaled: a cut before finds it again."""
    try:
        with open(RESULT) as f:
            w = f.read().split("\n", 1)
    except OSError:
        return None
    v = w[0].split()
    if len(v) < 2 or version() != v[1]:
        said()
        return None
    return {"version": v[0], "to": v[1], "detail": w[1] if len(w) > 1 else ""}


def said():
    _rm(RESULT)


def step(a, now, deadline):
    """The app's pass while its trial runs: healthy once the centre is reached
    (the pass itself succeeded), rolled back when its time is spent."""
    import ticks
    from apploop import earliest

    t = a.app_trial
    if t is True:  # this boot's first pass: the time left, from what boot counted
        f = read()
        t = a.app_trial = [
            ticks.add(now, f[5] * 1000 - f[1] + TRIAL_LEASE_MS),
            ticks.add(now, TRIAL_LEASE_MS),
            f,
        ]
    f = t[2]
    if a.link.up:
        a.app_trial = None
        # Said first: a cut before the trial's end finds it still on trial, and
        # says it again (at least once, as every event).
        a.post(
            "update_done",
            {"version": f[3], "from": f[2], "detail": "healthy on trial: the centre is reachable"},
        )
        _write(RID, "%s %s" % (f[4], f[3]))
        _rm(PATH)
    elif ticks.diff(now, t[0]) >= 0:
        a.app_trial = None
        why = "%s was not healthy within %d s on trial: no contact with the centre" % (f[3], f[5])
        a.post("update_rolled_back", {"version": f[3], "to": f[2], "detail": why})
        back(f, why, False)
        a.restart_at = now
        a.restart_why = "update rolled back"
    else:
        if ticks.diff(now, t[1]) >= 0:
            t[1] = ticks.add(now, TRIAL_LEASE_MS)
            f[1] += TRIAL_LEASE_MS
            try:
                write(f)
            except OSError:
                pass  # the boots still bound it
        deadline = earliest(now, deadline, ticks.diff(t[0], now))
        deadline = earliest(now, deadline, ticks.diff(t[1], now))
    return deadline
