# The photocell (ambient light sensor on an ADC): dark or light, with hysteresis
# and a delay, as TALQ's PhotocellFunction; and whether it can be believed.
#
# Dark when the light stays below on_lux for `delay` seconds, light again when
# it stays above off_lux for `delay`. Implausible when the reading sits on a
# rail (open or shorted sensor), has not moved for a day (stuck), or the
# decision flaps more than FLAP_LIMIT times in an hour.

from ticks import diff

RAIL_LOW = 16
RAIL_HIGH = 65519
FLAP_LIMIT = 6
STUCK_MS = 24 * 3600 * 1000
STUCK_BAND = 64  # counts: the noise of a live sensor is more than this over a day


class Photocell:
    def __init__(self, adc, cfg):
        self.adc = adc
        self.scale = cfg.pc_full_scale / 65535.0
        self.on_lux = cfg.pc_on
        self.off_lux = cfg.pc_off
        self.delay_ms = int(cfg.pc_delay * 1000)
        self.dark = None  # None until the first decision
        self.lux = 0.0
        self.problem = None  # why it is implausible, or None
        self._since = None  # ticks when the reading first crossed the other threshold
        self._rail_since = None
        self._rail = False
        self._band = None  # (lo, hi, since) of the readings, for "stuck"
        self._flips = []  # ticks of recent decisions
        self._start = None

    def busy(self):
        """Is a crossing or a rail being timed (sample often)?"""
        return self._since is not None or (self._rail_since is not None and not self._rail)

    @property
    def plausible(self):
        return self.problem is None and self.dark is not None

    def sample(self, now):
        raw = self.adc.read_u16()
        self.lux = raw * self.scale
        if self._start is None:
            self._start = now
        # Rails.
        if raw <= RAIL_LOW or raw >= RAIL_HIGH:
            if self._rail_since is None:
                self._rail_since = now
            rail = diff(now, self._rail_since) >= self.delay_ms
        else:
            self._rail_since = None
            rail = False
        self._rail = rail
        # Stuck.
        band = self._band
        if band is None or raw < band[0] - STUCK_BAND or raw > band[1] + STUCK_BAND:
            self._band = (raw, raw, now)
            stuck = False
        else:
            self._band = (min(band[0], raw), max(band[1], raw), band[2])
            stuck = diff(now, band[2]) >= STUCK_MS
        # The decision, with hysteresis and delay.
        if self.dark is None:
            crossing = self.lux < self.on_lux or self.lux > self.off_lux
            want = self.lux < self.on_lux
        elif self.dark:
            crossing = self.lux > self.off_lux
            want = False
        else:
            crossing = self.lux < self.on_lux
            want = True
        if crossing:
            if self._since is None:
                self._since = now
            if diff(now, self._since) >= self.delay_ms:
                if self.dark is not None:
                    self._flips.append(now)
                self.dark = want
                self._since = None
        else:
            self._since = None
        while self._flips and diff(now, self._flips[0]) > 3600000:
            self._flips.pop(0)
        if len(self._flips) > FLAP_LIMIT:
            del self._flips[0]
            flapping = True
        else:
            flapping = len(self._flips) >= FLAP_LIMIT
        if rail:
            self.problem = "reading on the rail (%d)" % raw
        elif stuck:
            self.problem = "reading stuck at %d for a day" % raw
        elif flapping:
            self.problem = "flapping (%d changes in an hour)" % len(self._flips)
        else:
            self.problem = None
