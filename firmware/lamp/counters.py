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
#
# Few functions and attributes, on purpose: it stays on the heap for good (each
# function object, and each attribute in the instance's table, costs RAM even
# with the code run from flash).

from binascii import crc32

from ticks import diff

SAVE_MS = 840000  # 14 min: with the write's own time, under the 15 the issue allows
_CHUNK_MS = 8000  # 100,000 dW x 8,000 ms + a remainder < 2**30
_WH = 36000000  # deciwatt-milliseconds in a watt-hour
_MAX_DW = 100000  # 10 kW: more is a wrong configuration, not a street lamp


def _none():
    pass


class Counters:
    def __init__(self, path, cfg):
        """path: the slots are path.0 and path.1; cfg: a settings.Config."""
        self.path = path
        sense, volts, pf, watts = cfg.energy
        per_amp = volts * pf * 10 if sense else 0  # deciwatts per amp (0: no volts, no energy)
        # (deciwatts per amp; with current sense and the relay closed since the
        # last sample, what the monitor expects at full duty until the next one;
        # without current sense, the rated deciwatts; monitor.off_amps)
        self._k = (per_amp, int(cfg.mon_lamp * per_amp), 0 if sense else int(watts * 10), cfg.mon_off)
        self.on_saved = _none  # a switch-off's save: the centre hears the night's count
        self.seq = self.burn_s = self.wh = self.cycles = 0
        self._ms = 0  # burning not yet a whole second
        self._e = 0  # deciwatt-ms not yet a whole Wh
        self._unsaved = 0  # ms burnt since the last save
        self._last = 0  # ticks of the last pass
        self._p = None  # deciwatts since the last pass; None: not burning
        # The output as the last pass left it (relay closed, duty >> 4, the
        # monitor's reading): it starts closed at full duty.
        self._out = (True, 4095, None)
        self._s = None  # the last sample: (relay closed, duty >> 4, deciwatts, current flowing)
        self.writes = 0  # saves since boot (flash wear: docs/lamp-config.md)
        self.problem = None
        best = None
        bad = []
        for n in ".0", ".1":
            try:
                with open(path + n) as f:
                    r = f.read().split()
            except OSError:
                continue  # never written
            try:
                line = " ".join(r[:4])
                ok = len(r) == 5 and int(r[4], 16) == crc32(line.encode()) & 0xFFFFFFFF
                r = tuple(int(x) for x in r[:4])
            except ValueError:
                ok = False
            if not ok or min(r) < 0:
                bad.append(path + n)
            elif best is None or r[0] > best[0]:
                best = r
        if best is not None:
            self.seq, self.burn_s, self.wh, self.cycles = best
        if bad:
            self.problem = "%s unreadable: %s" % (
                ", ".join(bad),
                "counting on from the other copy" if best else "counting from 0",
            )
        self.saved = (self.burn_s, self.wh, self.cycles)  # on flash: what is reported

    def step(self, now, ctl):
        """After the controller's pass: count the time since the last one as it
        was, take the output as it is now; returns ms until a save is due (-1: none)."""
        p = self._p
        dt = diff(now, self._last)
        self._last = now
        if p is not None and dt > 0:
            self._unsaved += dt
            ms = self._ms + dt
            self.burn_s += ms // 1000
            self._ms = ms % 1000
            while p and dt > 0:
                n = dt if dt < _CHUNK_MS else _CHUNK_MS
                e = self._e + p * n
                if e >= _WH:
                    self.wh += e // _WH
                    e %= _WH
                self._e = e
                dt -= n
        out = ctl.output
        closed = out.relay_closed
        duty = out._duty >> 4  # 0..4095
        amps = ctl.monitor.amps
        was, last_duty, last_amps = self._out
        if closed != was or duty != last_duty or amps is not last_amps:  # else as before (most passes)
            self._out = (closed, duty, amps)
            k = self._k
            if amps is not last_amps:
                # A sample in this pass (each reading is a new float, a heap
                # object in MicroPython as in CPython): taken at its start, with
                # the relay and duty as the last pass left them.
                w = int(amps * k[0] + 0.5)
                self._s = (was, last_duty, w if w < _MAX_DW else _MAX_DW, amps > k[3])
            if closed and not was:
                self.cycles += 1
            s = self._s
            p = None
            if not closed:
                pass
            elif k[2]:
                # No current sense: the driver's power follows the duty (the
                # level through the dimming curve).
                p = k[2] * duty // 4095 if out.applied > 0 else None
            elif s is not None and s[0]:
                if s[3] and (duty > 0 or not s[1]):
                    p = s[2] * duty // s[1] if s[1] else s[2]
            elif duty > 0:  # closed since the last sample: as the monitor expects, until the next
                p = k[1] * duty // 4095
            self._p = p
            if was and not closed and self.saved != (self.burn_s, self.wh, self.cycles):
                self.save()
                self.on_saved()
        if self._unsaved >= SAVE_MS:
            self.save()
        return SAVE_MS - self._unsaved if self._p is not None else -1

    def save(self):
        # Unsaved time starts again even if the write fails, so that a flash
        # that refuses it is tried again in SAVE_MS, not at every pass.
        self._unsaved = 0
        seq = self.seq + 1
        line = "%d %d %d %d" % (seq, self.burn_s, self.wh, self.cycles)
        try:
            with open(self.path + (".1" if seq & 1 else ".0"), "w") as f:
                f.write("%s %08x\n" % (line, crc32(line.encode()) & 0xFFFFFFFF))
        except OSError as e:
            self.problem = "not saved: %s" % e
            return
        self.writes += 1
        if self.problem and self.problem.startswith("not saved"):
            self.problem = None
        self.seq = seq
        self.saved = (self.burn_s, self.wh, self.cycles)

    def report(self, s):
        """The counters on flash into a state dict."""
        s["burning_s"], wh, s["switch_cycles"] = self.saved
        k = self._k
        s["energy_wh"] = wh if k[0] or k[2] else None
        s["counters_problem"] = self.problem
