# Lamp faults from the current-sense ADC, as TALQ's LampMonitor.
#
#   lamp_failure        relay closed and lit for `warmup` s, but drawing less than
#                       half the current expected at that duty (lamp_amps at full
#                       output, in proportion below it: a dimmed lamp draws less)
#   lamp_on_unexpected  relay closed, level 0 (driver told dark), current flows
#   relay_failure       relay open, current flows (welded contact)
#
# A condition must hold for `confirm` s to raise its fault, and be gone for
# `confirm` s to clear it: one bad sample raises nothing. Each fault is raised
# once and cleared once, through emit(name, raised, detail).

from ticks import diff

FAULTS = ("lamp_failure", "lamp_on_unexpected", "relay_failure")


class LampMonitor:
    def __init__(self, adc, cfg, emit):
        self.adc = adc
        self.scale = cfg.mon_full_scale / 65535.0
        self.lamp_amps = cfg.mon_lamp
        self.off_amps = cfg.mon_off
        self.warmup_ms = int(cfg.mon_warmup * 1000)
        self.confirm_ms = int(cfg.mon_confirm * 1000)
        self.emit = emit
        self.amps = 0.0
        self.active = {}  # fault -> True while raised
        self._pending = {}  # fault -> ticks since its condition changed
        self._lit_since = None
        self._warm = False

    def busy(self):
        """Is a fault being confirmed or the lamp warming up (sample often)?"""
        return bool(self._pending) or (self._lit_since is not None and not self._warm)

    def sample(self, now, relay_closed, level, duty=1.0):
        """level: percent applied; duty: the PWM duty as a fraction (0..1)."""
        self.amps = amps = self.adc.read_u16() * self.scale
        lit = relay_closed and level > 0
        if lit:
            if self._lit_since is None:
                self._lit_since = now
            warm = diff(now, self._lit_since) >= self.warmup_ms
        else:
            self._lit_since = None
            warm = False
        self._warm = warm
        # Each fault's condition; None where it cannot be judged now.
        conds = (
            (amps < 0.5 * self.lamp_amps * duty) if warm else (None if lit else False),
            (amps > self.off_amps) if relay_closed and level <= 0 else False,
            (amps > self.off_amps) if not relay_closed else False,
        )
        for name, cond in zip(FAULTS, conds):
            if cond is None:
                continue
            raised = self.active.get(name, False)
            if cond == raised:
                self._pending.pop(name, None)
                continue
            since = self._pending.get(name)
            if since is None:
                self._pending[name] = now
            elif diff(now, since) >= self.confirm_ms:
                del self._pending[name]
                self.active[name] = cond
                self.emit(name, cond, "%.2f A" % amps)
