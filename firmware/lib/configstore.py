# A device's configuration file on flash: a new one is validated first, written
# to a temp file and renamed over the old one, so a bad or torn write never
# replaces the last good configuration; one from afar is on trial until the
# device reaches the centre with it. The app gives its own parser (`loads`).

from configcheck import ConfigError


class Store:
    """The configuration file on the device's filesystem.

    `load()` gives the configuration in force: the file's if it is good, else
    the last good one (kept beside it), else the app's default. `save(text)`
    validates first and replaces the file atomically (littlefs rename).

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
        self.default_path = default_path
        self.errors = []  # why the file was not used, if it was not
        self.trial = False  # the file in force is on trial

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

    def load(self):
        self.errors = []
        try:
            self._read(self.marker)
            self.trial = True
        except OSError:
            self.trial = False
        for path in (self.path, self.good, self.default_path):
            try:
                text = self._read(path)
            except OSError:
                continue
            try:
                cfg = self.loads(text)
            except ConfigError as e:
                self.errors.extend("%s: %s" % (path, x) for x in e.errors)
                continue
            if path == self.path and not self.trial:
                self._keep_as_good(text)
            return cfg
        raise ConfigError(self.errors or ["no configuration file at %s" % self.path])

    def load_or(self, fallback):
        """The configuration in force, or fallback() when no file can be used;
        each reason a file was passed over goes to the console."""
        try:
            cfg = self.load()
        except ConfigError:
            cfg = fallback()
        for e in self.errors:
            print("config:", e)
        return cfg

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
            self._write(self.marker, "")
            self._write(self.path, text)
        else:
            self._write(self.path, text)
            self._write(self.good, text)
            self._remove(self.marker)
        return cfg

    def confirm(self):
        """The configuration on trial works: it becomes the last good one."""
        self._keep_as_good(self._read(self.path))
        self._remove(self.marker)
        self.trial = False

    def rollback(self):
        """The configuration on trial did not work: the last good one (or the
        app's default, if there never was one) is put back."""
        try:
            self._write(self.path, self._read(self.good))
        except OSError:
            self._remove(self.path)
        self._remove(self.marker)
        self.trial = False
