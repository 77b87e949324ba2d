# A device's configuration file on flash: a new one is validated first, written
# to a temp file and renamed over the old one, so a bad or torn write never
# replaces the last good configuration; one from afar is on trial until the
# device reaches the centre with it. The app gives its own parser (`loads`).
#
# Power can go at any flash write. Every change is one atomic littlefs step (a
# rename or a remove) after writes that nothing reads yet, so whatever a cut
# leaves is one of these states, and load() at boot resolves each to the old
# or the new configuration (docs/lamp-config.md, "Power cuts"):
#
#   <path>       the configuration confirmed last (the centre was reached with it,
#                or a technician installed it)
#   <path>.good  a copy of the last one that loaded well: used if <path> is bad
#   <path>.trial a configuration from afar, on trial: in force while it is there
#   <path>.trial.age  "BOOTS MS": the boots the trial has run and the time on trial
#                counted so far (ahead of time: see start_trial); none: a new trial
#   *.tmp        a write that was not finished: nothing reads it, boot removes it
#
# Installing a trial is one rename (.trial.tmp -> .trial) after the old age is
# removed, confirming it one rename (.trial -> <path>), rolling it back one
# remove (.trial); the age goes after either (an age with no trial is removed
# at boot). An empty .trial is the marker older firmware wrote beside a trial
# <path>: boot turns it into this layout (the same trial), or removes it when
# there is no <path>.

import sys

# The trial's time is counted ahead on flash, this much at a time (configtrial.py).
TRIAL_LEASE_MS = 30000


class ConfigError(ValueError):
    """A configuration refused: `errors` lists every problem, "path: reason".

    Defined here, with the store that is resident, and not in configcheck: the
    checker is loaded only while a configuration is parsed (settings.loads)."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = errors


class Store:
    """The configuration file on the device's filesystem.

    `load()` gives the configuration in force: the trial one if there is one,
    else the file's if it is good, else the last good one (kept beside it), else
    the app's default. `save(text)` validates first and replaces the file
    atomically (littlefs rename).

    A configuration from afar is installed on trial (`save(text, trial=True)`):
    it is not the last good one until `confirm()` (the app calls it once the
    centre is reachable with it); `rollback()` puts the last good one back."""

    def __init__(self, os_module, path, default_path, loads):
        """loads(text) -> the app's configuration, or raises ConfigError."""
        self.os = os_module
        self.loads = loads
        self.path = path
        self.good = path + ".good"
        self.marker = path + ".trial"
        self.age = path + ".trial.age"
        self.default_path = default_path
        self.errors = []  # why a file was not used, or what boot had to repair
        self.trial = False  # the configuration in force is on trial
        self.source = None  # the file the configuration in force came from
        # The trial in force: [boots, ms on trial counted (this lease included),
        # ms left at this boot] (configtrial.py); None with no trial.
        self.counted = None
        self.rolled_back = None  # why load() ended a trial, for the app to say

    def _read(self, path):
        with open(path) as f:
            return f.read()

    def _write(self, path, text):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        self.os.rename(tmp, path)

    def _remove(self, path):
        try:
            self.os.remove(path)
        except OSError:
            pass  # not there

    def _exists(self, path):
        try:
            self.os.stat(path)
            return True
        except OSError:
            return False

    def load(self):
        """The configuration in force (see the class), after putting right what a
        cut left; raises ConfigError, every reason in it, when no file can be used.
        Done once, at boot: its code (configload.py) is loaded for it and forgotten."""
        import configload

        try:
            return configload.load(self)
        finally:
            sys.modules.pop("configload", None)

    def load_or(self, fallback):
        """The configuration in force, or fallback() when no file can be used;
        each reason a file was passed over goes to the console."""
        try:
            cfg = self.load()
        except ConfigError:
            cfg = fallback()
        for e in self.errors:
            print("config:", e)
        if getattr(cfg, "warnings", None):  # allowed, with a catch (a strapping pin)
            for w in cfg.warnings:
                print("config: warning: %s: %s" % (self.source, w))
            del cfg.warnings  # said: not kept on the heap
        return cfg

    def _trial(self, what):
        # Loaded only while there is a trial, and forgotten after each use.
        import configtrial

        try:
            return getattr(configtrial, what)(self)
        finally:
            sys.modules.pop("configtrial", None)

    def extend_trial(self):
        """The trial in force has run one more lease: the next one counted ahead."""
        self._trial("extend")

    def _end_trial(self):
        self._remove(self.marker)
        self._remove(self.age)

    def _keep_as_good(self, text):
        try:
            if self._read(self.good) == text:
                return
        except OSError:
            pass
        self._write(self.good, text)

    def save(self, text, trial=False):
        """Validate and install a new configuration; raises ConfigError and changes nothing if bad."""
        cfg = self.loads(text)
        if trial:
            tmp = self.marker + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            self._remove(self.age)  # the new trial's clock starts at 0
            self.os.rename(tmp, self.marker)
        else:
            self._write(self.path, text)
            self._end_trial()  # a trial before it is over
            self._write(self.good, text)
        return cfg

    def confirm(self):
        """The configuration on trial works: it becomes the last good one. Done
        already (nothing on trial) is not an error."""
        self.trial = False
        try:
            self.os.rename(self.marker, self.path)
        except OSError:
            if self._exists(self.marker):
                raise
            return
        self._remove(self.age)
        self._keep_as_good(self._read(self.path))

    def rollback(self):
        """The configuration on trial did not work: the last good one (or the
        app's default, if there never was one) is back at the next load()."""
        self.trial = False
        self._end_trial()
