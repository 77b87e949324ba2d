# The lamp's burning hours, energy and relay switch cycles (TALQ's LampMonitor
# burning hours and energy meter), counted over the controller's passes and kept
# on flash (docs/lamp-config.md, "Burning hours, energy, switch cycles").
#
# Burning: the relay closed and current flowing (above monitor.off_amps); with
# no current sense (energy.current_sense false), the relay closed and a level
# above 0. Energy: the measured current x mains volts x power factor, or
# without current sense the rated power x the duty written (the level through
# the dimming curve: what the driver draws follows the light, not the level). Between two samples of the
# current (5 min apart while nothing happens) it follows the duty written, so a
# fade between samples is not counted at the power before it.
#
# Integers only, and small ones (the ESP32's are 31-bit; past that every sum
# would be a heap object): seconds with a millisecond remainder, Wh with a
# remainder in deciwatt-milliseconds, added in chunks that cannot overflow.
#
# On flash: two slots, <path>.0 and <path>.1, each one line
#   SEQ BURNING_S WH CYCLES CRC
# (CRC-32 of the rest, hex). A save writes the slot the older copy is in, so
# a cut or a torn write leaves the newer copy whole; boot takes the good copy
# with the highest SEQ. A save comes after at most SAVE_MS of burning and at
# every switch-off: a cut loses at most that. What the lamp reports is what is
# on flash: a reported counter can never be taken back by a cut.

from binascii import crc32

from ticks import diff

SAVE_MS = 840000  # 14 min: with the write's own time, under the 15 the issue allows
_CHUNK_MS = 8000  # 100,000 dW x 8,000 ms + a remainder < 2**30
_WH = 36000000  # deciwatt-milliseconds in a watt-hour
_MAX_DW = 100000  # 10 kW: more is a wrong configuration, not a street lamp


def _ignore():
    pass


def _record(text):
    """(seq, burning_s, wh, cycles) from a slot's text, or None if it is not one."""
    f = text.split()
    if len(f) != 5:
        return None
    line = " ".join(f[:4])
    try:
        if int(f[4], 16) != crc32(line.encode()) & 0xFFFFFFFF:
            return None
        r = tuple(int(x) for x in f[:4])
    except ValueError:
        return None
    return r if min(r) >= 0 else None


class Counters:
    def __init__(self, os_module, path, cfg):
        self.os = os_module
        self.paths = (path + ".0", path + ".1")
        self.sense, volts, pf, watts = cfg.energy
        per_amp = volts * pf * 10  # deciwatts per amp (0: no volts, no energy)
        self.per_amp = per_amp if self.sense else 0
        # With current sense and a relay closed since the last sample: what the
        # monitor expects at full duty, until the next sample says.
        self.full_dw = int(cfg.mon_lamp * per_amp)
        self.rated_dw = int(watts * 10)
        self.metered = bool(self.per_amp if self.sense else self.rated_dw)
        self.off_amps = cfg.mon_off
        self.on_saved = _ignore  # a switch-off's save: the centre hears the night's count
        self.seq = self.burn_s = self.wh = self.cycles = 0
        self._ms = 0  # burning not yet a whole second
        self._e = 0  # deciwatt-ms not yet a whole Wh
        self._unsaved = 0  # ms burnt since the last save
        self._dirty = False
        self._last = None  # ticks of the last pass
        self._burning = False
        self._p = 0  # deciwatts since the last pass
        self._closed = True  # the output starts with the relay closed, at full duty
        self._duty = 4095
        self._amps = None  # the monitor's last reading, to tell a new one
        self._s = None  # the last sample: (relay closed, duty >> 4, deciwatts, current flowing)
        self.writes = 0  # saves since boot (flash wear: docs/lamp-config.md)
        self.problem = None
        self._load()
        self.saved = (self.burn_s, self.wh, self.cycles)  # on flash: what is reported

    def _load(self):
        best = None
        bad = []
        for p in self.paths:
            try:
                with open(p) as f:
                    r = _record(f.read())
            except OSError:
                continue  # never written
            if r is None:
                bad.append(p)
            elif best is None or r[0] > best[0]:
                best = r
        if best is not None:
            self.seq, self.burn_s, self.wh, self.cycles = best
        if bad:
            self.problem = "%s unreadable: %s" % (
                ", ".join(bad),
                "counting on from the other copy" if best else "counting from 0",
            )

    def _add(self, dt):
        self._unsaved += dt
        self._dirty = True
        ms = self._ms + dt
        self.burn_s += ms // 1000
        self._ms = ms % 1000
        p = self._p
        while p and dt > 0:
            n = dt if dt < _CHUNK_MS else _CHUNK_MS
            e = self._e + p * n
            if e >= _WH:
                self.wh += e // _WH
                e %= _WH
            self._e = e
            dt -= n

    def step(self, now, ctl):
        """After the controller's pass: count the time since the last one as it
        was, take the output as it is now; returns ms until a save is due (-1: none)."""
        if self._burning:
            dt = diff(now, self._last)
            if dt > 0:
                self._add(dt)
        self._last = now
        out = ctl.output
        closed = out.relay_closed
        was = self._closed
        amps = ctl.monitor.amps
        if closed != was or out._duty >> 4 != self._duty or amps is not self._amps:
            self._take(out, closed, was, amps)  # else as in the last pass (most passes)
        if (was and not closed and self._dirty) or self._unsaved >= SAVE_MS:
            self.save()
            if not closed:
                self.on_saved()
        return SAVE_MS - self._unsaved if self._burning else -1

    def _take(self, out, closed, was, amps):
        duty = out._duty >> 4  # 0..4095
        if amps is not self._amps:
            # A sample in this pass (each reading is a new float, a heap object in
            # MicroPython as in CPython): taken at its start, with the relay and
            # duty as the last pass left them.
            self._amps = amps
            p = int(amps * self.per_amp + 0.5)
            self._s = (was, self._duty, p if p < _MAX_DW else _MAX_DW, amps > self.off_amps)
        self._closed = closed
        self._duty = duty
        if closed and not was:
            self.cycles += 1
            self._dirty = True
        p = 0
        if not closed:
            burning = False
        elif not self.sense:
            # The driver's power follows the duty (the level through the dimming curve).
            burning = out.applied > 0
            p = self.rated_dw * duty // 4095
        else:
            s = self._s
            if s is not None and s[0]:
                burning = s[3] and (duty > 0 or not s[1])
                p = s[2] * duty // s[1] if s[1] else s[2]
            else:  # closed since the last sample: as the monitor expects, until the next
                burning = duty > 0
                p = self.full_dw * duty // 4095
        self._burning = burning
        self._p = p if burning else 0

    def save(self):
        # Unsaved time starts again even if the write fails, so that a flash
        # that refuses it is tried again in SAVE_MS, not at every pass.
        self._unsaved = 0
        seq = self.seq + 1
        line = "%d %d %d %d" % (seq, self.burn_s, self.wh, self.cycles)
        try:
            with open(self.paths[seq & 1], "w") as f:
                f.write("%s %08x\n" % (line, crc32(line.encode()) & 0xFFFFFFFF))
        except OSError as e:
            self.problem = "not saved: %s" % e
            return
        self.writes += 1
        if self.problem and self.problem.startswith("not saved"):
            self.problem = None
        self.seq = seq
        self._dirty = False
        self.saved = (self.burn_s, self.wh, self.cycles)

    def report(self, s):
        """The counters on flash into a state dict."""
        s["burning_s"], wh, s["switch_cycles"] = self.saved
        s["energy_wh"] = wh if self.metered else None
        s["counters_problem"] = self.problem
