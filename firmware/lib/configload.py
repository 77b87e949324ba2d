# What the configuration store does once per boot (configstore.py, Store.load):
# put right what a power cut left, then find the configuration in force. Loaded
# for it and forgotten after, so its code is not on the heap while the device runs.

from configstore import ConfigError


def load(st):
    """Store st's configuration in force: the trial one, else the file's, else
    the last good one, else the app's default; raises ConfigError (every reason
    a file was passed over) when none can be used."""
    st.errors = []
    try:
        _repair(st)
    except OSError as e:  # a flash that cannot be written: read what is there
        st.errors.append("repairing after a cut: %s" % e)
    st.trial = False
    st.rolled_back = None
    for path in (st.marker, st.path, st.good, st.default_path):
        try:
            text = st._read(path)
        except OSError:
            continue
        if path == st.marker:
            why = st._trial("start")
            if why:
                st.rolled_back = why
                st.errors.append("%s: %s" % (path, why))
                continue
        try:
            cfg = st.loads(text)
        except ConfigError as e:
            st.errors.extend("%s: %s" % (path, x) for x in e.errors)
            if path == st.marker:
                st._end_trial()  # a trial that cannot run is over
            continue
        st.trial = path == st.marker
        st.source = path
        if path == st.path:
            try:
                st._keep_as_good(text)
            except OSError as e:
                st.errors.append("%s: not kept: %s" % (st.good, e))
        return cfg
    st.source = None
    raise ConfigError(st.errors or ["no configuration file at %s" % st.path])


def _repair(st):
    """What a cut can leave, put right before anything is read: each step is
    again one atomic one, so a cut here leaves a state this resolves too."""
    for p in (st.path, st.good, st.marker, st.age):
        st._remove(p + ".tmp")  # unfinished: the step it was for never happened
    try:
        marker = st._read(st.marker)
    except OSError:
        st._remove(st.age)  # a trial's age, left by a cut after its end
        return
    if marker:
        return
    if st._exists(st.path):
        # Older firmware's trial: <path> is the trial, .good the one before it.
        st.os.rename(st.path, st.marker)
        st.errors.append("%s: an empty trial marker: %s is on trial" % (st.marker, st.path))
    else:
        st._remove(st.marker)
        st.errors.append("%s: a trial marker with no configuration: removed" % st.marker)
