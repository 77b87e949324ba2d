# Boots that never became healthy, counted on flash so that a power cut or a
# reset cannot lose the count (docs/lamp-config.md, "Safe mode"). main.py counts
# its boot here before it imports anything of the app's, and the app clears the
# count once its first pass has succeeded (apploop.run): a module that raises at
# import, a MemoryError, pins the chip refuses or a loop that hangs before the
# first feed leave their boot counted. After the limit in a row, start() says
# safe mode is due.
#
# PATH holds "COUNT LIMIT" and, from its second line, how the last boot failed.
# It is counted ahead, as configtrial.py counts a trial: a boot adds itself
# before the app runs, so whatever ends it has been counted already. Written as
# a temp file renamed over the old one (one atomic littlefs step: a cut leaves
# the old count or the new one).
#
# Small on purpose: it is imported at every boot (few names, short locals: see
# chips.py), and forgotten once the boot is healthy (main.py); what a failed
# boot needs is in bootfail.py, loaded only then.

PATH = "/boots.bad"
LIMIT = 5  # the default of the lamp's safe_mode_boots


def read():
    """(count, limit, last failure): (0, LIMIT, "") with no file, or one that
    cannot be read (a count that cannot be read never stops the app)."""
    try:
        with open(PATH) as f:
            w = f.read().split("\n", 1)
        n = w[0].split()
        return int(n[0]), int(n[1]), w[1] if len(w) > 1 else ""
    except (OSError, ValueError, IndexError):
        return 0, LIMIT, ""


def _write(n, lim, why):
    import os

    t = PATH + ".tmp"
    with open(t, "w") as f:
        f.write("%d %d\n%s" % (n, lim, why))
    os.rename(t, PATH)


def start():
    """Counts this boot before the app runs; True (and not counted) when the
    limit is reached: safe mode is due."""
    n, lim, why = read()
    if 0 < n < lim:
        import machine

        if machine.reset_cause() == machine.PWRON_RESET:
            # The boot before ended by the power going, not by anything of the
            # app's: not held against it. A pole whose supply fails again and
            # again as it boots must not end in safe mode, which reads no alarm
            # button. (At the limit it stays: safe mode is left as said above.)
            n -= 1
    try:
        open("/app.trial").close()
    except OSError:
        pass
    else:
        # A new app on trial after an update (apptrial.py): one failed boot of
        # it, or its trial spent, and the old one is put back.
        try:
            import apptrial

            back = apptrial.boot(n > 0, why)
        except Exception as e:  # noqa: BLE001 - not checked this boot (said): the app runs, on trial
            print("update: the trial not checked: %r" % e)
            back = False
        if back:
            _write(0, lim, "")  # the old app's boots counted afresh
            import machine

            machine.reset()
        import sys

        sys.modules.pop("apptrial", None)
    if n >= lim:
        return True
    try:
        _write(n + 1, lim, why)
    except OSError:
        pass  # a flash that refuses writes: the app runs, uncounted
    return False


def healthy(lim=None):
    """The count back to 0: a boot became healthy, a new configuration or
    release is installed, a technician left safe mode. lim: the limit from the
    next boot on (the configuration's safe_mode_boots); None keeps it."""
    n, m, why = read()
    if n or (lim is not None and lim != m):
        _write(0, m if lim is None else lim, "")


def failed(e):
    """The boot failed before it was healthy (it is counted already): e said on
    the console and kept for safe mode to report (bootfail.py, loaded only
    now), then the board is reset, whatever fails on the way."""
    try:
        import bootfail

        bootfail.keep(e)
    finally:
        import machine

        machine.reset()
