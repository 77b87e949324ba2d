# A configuration's trial counted across boots (configstore.Store): loaded only
# while a trial is in force, and forgotten after each use.
#
# <path>.trial.age holds "BOOTS MS": the boots the trial has run and its time on
# trial so far. Each is counted ahead: a boot adds itself and a lease of time
# before the configuration is used, and the app adds a lease every lease while
# the trial runs, so a reset at any moment (a crash, the watchdog, the power)
# has been counted already. Written as a temp file renamed over the old one.

from configstore import TRIAL_LEASE_MS

# A configuration from afar must reach the centre within this much time on
# trial, counted across boots, or the last good one comes back: a wrong broker
# or Wi-Fi key, or a configuration that resets the board, must not strand it.
TRIAL_MS = 600000
# ... and within this many boots, however short they are.
TRIAL_BOOTS = 10


# (Short locals, few names: each new one goes into MicroPython's name table:
# see chips.py.)


def start(s):
    """This boot runs the trial of the configstore.Store s: counted before the
    configuration is used. Returns why the trial is over instead (its files
    removed), or None."""
    try:
        with open(s.age) as f:
            w = f.read().split()
        b, u = int(w[0]), int(w[1])
    except OSError:
        b, u = 0, 0  # a new trial (or one older firmware started)
    except (ValueError, IndexError):
        b, u = TRIAL_BOOTS, TRIAL_MS  # unreadable: taken as spent
    w = None
    if b >= TRIAL_BOOTS or u >= TRIAL_MS:
        w = "no contact with the centre with the new configuration in %d boots (%d s on trial): rolled back"
        w = w % (b, u // 1000)
    else:
        try:
            s._write(s.age, str(b + 1) + " " + str(u + TRIAL_LEASE_MS))
        except OSError as e:
            # Uncounted, it could reset the board for ever: not run.
            w = "the trial's boots cannot be counted (%s): the last good configuration runs" % e
    if w:
        try:
            s._end_trial()
        except OSError:
            pass  # tried again at the next boot, which finds it spent
        return w
    s.counted = [b + 1, u + TRIAL_LEASE_MS, TRIAL_MS - u]
    return None


def extend(s):
    """The trial has run one more lease: the next one counted ahead."""
    c = s.counted
    c[1] += TRIAL_LEASE_MS
    s._write(s.age, str(c[0]) + " " + str(c[1]))
