# Wi-Fi station management and NTP time, for any app.
#
# Station: connects with a bounded wait per attempt (the ESP32's WLAN would
# otherwise sit in STAT_CONNECTING forever) and backs off between attempts,
# 5 s doubling to 5 minutes; notices when the link drops and starts again.
# NtpSync: asks NTP every `interval` while online, retries a failure after a
# minute; a time outside 2024..2099 is refused (TimeKeeper.sync), and a jump of
# more than a day from a valid clock is believed only when a second answer, a
# minute later, agrees with it.
# Both are deadline-driven: step(now_ms) does what is due and returns the ms
# until it next needs to be called.

from ticks import add, diff

CONNECT_TIMEOUT_MS = 20000
BACKOFF_MIN_MS = 5000
BACKOFF_MAX_MS = 300000
LINK_CHECK_MS = 60000
NTP_RETRY_MS = 60000
BIG_STEP_S = 86400


def _ignore(name, detail):
    pass


class Station:
    def __init__(self, wlan, ssid, key, on_event=_ignore):
        self.wlan = wlan
        self.ssid = ssid
        self.key = key
        self.on_event = on_event
        self.state = "down"
        self.attempts = 0
        self._since = 0
        self._retry_at = None
        self._backoff = BACKOFF_MIN_MS

    @property
    def up(self):
        return self.state == "up"

    def step(self, now):
        w = self.wlan
        if self.state == "up":
            if w.isconnected():
                return LINK_CHECK_MS
            self.state = "down"
            self._retry_at = None
            self.on_event("wifi", "down")
        if self.state == "connecting":
            if w.isconnected():
                self.state = "up"
                self._backoff = BACKOFF_MIN_MS
                self.on_event("wifi", "up after %d attempt(s)" % self.attempts)
                self.attempts = 0
                return 0
            if diff(now, self._since) < CONNECT_TIMEOUT_MS:
                return 1000
            status = w.status()
            w.disconnect()
            self.state = "down"
            self._retry_at = add(now, self._backoff)
            # Said once when the link is first missed and once when retries slow to
            # their longest interval, not at every attempt.
            if self.attempts == 1 or (self._backoff < BACKOFF_MAX_MS <= self._backoff * 2):
                self.on_event(
                    "wifi", "no link (status %d), next try in %d s" % (status, self._backoff // 1000)
                )
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_MS)
            return diff(self._retry_at, now)
        if self._retry_at is not None and diff(now, self._retry_at) < 0:
            return diff(self._retry_at, now)
        w.active(True)
        w.connect(self.ssid, self.key)
        self.state = "connecting"
        self.attempts += 1
        self._since = now
        return 1000


class NtpSync:
    def __init__(self, keeper, ntp_time, interval_s=3600, on_event=_ignore):
        """keeper: a TimeKeeper; ntp_time(): park time from the server, OSError when
        it does not answer."""
        self.keeper = keeper
        self.ntp_time = ntp_time
        self.interval_ms = int(interval_s * 1000)
        self.on_event = on_event
        self._due = None  # ticks; None: as soon as online
        self._candidate = None  # (park time, ticks) of an unconfirmed big jump
        self.failures = 0

    def step(self, now, online):
        if not online:
            return self.interval_ms
        if self._due is not None and diff(now, self._due) < 0:
            return diff(self._due, now)
        try:
            t = self.ntp_time()
        except (OSError, ValueError) as e:  # ValueError: ntptime could not unpack a short answer
            self.failures += 1
            self.on_event(
                "ntp", "%s (%s)" % ("no answer" if isinstance(e, OSError) else "unreadable answer", e)
            )
            self._due = add(now, NTP_RETRY_MS)
            return NTP_RETRY_MS
        k = self.keeper
        if k.valid and abs(t - k.now()) > BIG_STEP_S:
            c = self._candidate
            if c is None or abs(t - (c[0] + diff(now, c[1]) // 1000)) > 10:
                self._candidate = (t, now)
                self.on_event("ntp", "jump of %+d s: waiting for a second answer" % (t - k.now()))
                self._due = add(now, NTP_RETRY_MS)
                return NTP_RETRY_MS
        self._candidate = None
        first = not k.valid
        try:
            step = k.sync(t, "ntp")
        except ValueError as e:
            self.on_event("ntp", "refused: %s" % e)
            self._due = add(now, NTP_RETRY_MS)
            return NTP_RETRY_MS
        if first:
            # Not a step from a time anyone relied on: from none (27 years, from 2000).
            self.on_event("clock", "set by ntp (no valid time before)")
        elif step:
            self.on_event("clock", "ntp %+d s" % step)
        self._due = add(now, self.interval_ms)
        return self.interval_ms
