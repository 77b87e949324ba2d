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


def start(store):
    """This boot runs the trial: counted before the configuration is used.
    Returns why the trial is over instead (its files removed), or None."""
    try:
        with open(store.age) as f:
            words = f.read().split()
        boots, used = int(words[0]), int(words[1])
    except OSError:
        boots, used = 0, 0  # a new trial (or one older firmware started)
    except (ValueError, IndexError):
        boots, used = TRIAL_BOOTS, TRIAL_MS  # unreadable: taken as spent
    why = None
    if boots >= TRIAL_BOOTS or used >= TRIAL_MS:
        why = "no contact with the centre with the new configuration in %d boots (%d s on trial): rolled back"
        why = why % (boots, used // 1000)
    else:
        try:
            store._write(store.age, "%d %d" % (boots + 1, used + TRIAL_LEASE_MS))
        except OSError as e:
            # Uncounted, it could reset the board for ever: not run.
            why = "the trial's boots cannot be counted (%s): the last good configuration runs" % e
    if why:
        try:
            store._end_trial()
        except OSError:
            pass  # tried again at the next boot, which finds it spent
        return why
    store.counted = [boots + 1, used + TRIAL_LEASE_MS, TRIAL_MS - used]
    return None


def extend(store):
    c = store.counted
    c[1] += TRIAL_LEASE_MS
    store._write(store.age, "%d %d" % (c[0], c[1]))
