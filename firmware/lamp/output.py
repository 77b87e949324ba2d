# The lamp output: LEDC PWM into the LED driver's dimming input, and the relay
# that powers the driver.
#
# - Levels are percent. The dimming curve maps them to a 16-bit duty: linear, or
#   a gamma curve so that equal steps look equal to the eye.
# - Fades are linear in level, in steps of STEP_LEVEL percent at most, and no
#   more often than every FRAME_MS: a quarter-percent step with 16-bit duty is
#   below what the eye sees, and a slow fade does not wake the loop 50 times a
#   second for nothing.
# - The relay closes for any level above 0 and opens once the lamp has faded to
#   0; it never switches twice within relay_min_interval seconds (the contacts
#   and the driver's inrush limiter need the rest). While it may not close yet,
#   the level applied is 0 and the output reports that beside the target.
# - Wiring: the relay's normally-closed contact feeds the driver, so a board
#   that is off, resetting or dead leaves the lamp lit ("fails lit").
#   `relay_active` is the pin level that keeps the driver powered: 0 for that
#   wiring (coil off), 1 for a normally-open one (docs/lamp-config.md).

from ticks import diff

FRAME_MS = 20
STEP_LEVEL = 0.25


class Output:
    def __init__(self, pwm, relay, relay_active, cfg):
        self.pwm = pwm
        self.relay = relay
        self.relay_active = relay_active
        self.gamma = cfg.gamma
        self.min_level = cfg.min_level
        self.min_interval_ms = int(cfg.relay_min_interval * 1000)
        self.target = 100
        self.applied = 100.0  # the level the PWM shows now (0 while the relay is open)
        self.relay_closed = True
        self._from = 0.0
        self._fade_start = 0
        self._fade_ms = 0
        self._last_switch = None  # ticks of the last relay change; None: never
        self._urgent = False
        self.relay_switches = 0
        self._duty = -1
        # The board comes up lit (relay closed, full duty: see board.py), so that is
        # where the output starts; the first command then moves it without a
        # needless off-on cycle of the relay at every boot at night.
        self._set_relay(True, None)
        self._write(100.0)

    def duty(self, level):
        """16-bit duty for a level in percent."""
        if level <= 0:
            return 0
        x = level / 100.0
        if self.gamma != 1.0:
            x = x**self.gamma
        d = int(x * 65535 + 0.5)
        return 65535 if d > 65535 else d

    def duty_fraction(self):
        """The duty written last, 0..1."""
        return self._duty / 65535 if self._duty > 0 else 0.0

    def _write(self, level):
        if 0 < level < self.min_level:
            level = self.min_level  # lit, within what the driver can do
        d = self.duty(level)
        if d != self._duty:
            self.pwm.duty_u16(d)
            self._duty = d
        self.applied = level

    def _set_relay(self, closed, now):
        self.relay.value(self.relay_active if closed else 1 - self.relay_active)
        if now is not None and closed != self.relay_closed:
            self._last_switch = now
            self.relay_switches += 1
        self.relay_closed = closed

    def _relay_wait(self, now):
        """ms until the relay may switch again (0: now)."""
        if self._last_switch is None:
            return 0
        left = self.min_interval_ms - diff(now, self._last_switch)
        return left if left > 0 else 0

    def command(self, level, fade_s, now, at_once=False, urgent=False):
        """Go to `level` over `fade_s` seconds (at once when at_once, as at boot);
        urgent: close the relay now, even within its minimum interval (an alarm)."""
        self._urgent = urgent
        if level == self.target and not at_once:
            return
        self.target = level
        self._from = self.applied
        self._fade_start = now
        self._fade_ms = 0 if at_once else int(fade_s * 1000)

    def update(self, now):
        """Move the output on; returns ms until it next needs an update, or -1 when idle."""
        want_closed = self.target > 0
        if want_closed and not self.relay_closed:
            wait = 0 if self._urgent else self._relay_wait(now)
            if wait:
                return wait
            self._set_relay(True, now)
            # The fade starts from dark once the driver has power.
            self._from = 0.0
            self._fade_start = now
        if self.relay_closed:
            elapsed = diff(now, self._fade_start)
            # The driver's band below min_level is never written: a fade up from
            # dark starts at min_level, one down to 0 ends there and then goes off.
            a, b, lo = self._from, self.target, self.min_level
            if a < lo < b:
                a = lo
            elif b <= 0 and a > lo:
                b = lo
            if self._fade_ms <= 0 or elapsed >= self._fade_ms:
                level = float(self.target)
            else:
                level = a + (b - a) * elapsed / self._fade_ms
            self._write(level)
            if level != self.target:
                frame = int(self._fade_ms * STEP_LEVEL / abs(b - a))
                return frame if frame > FRAME_MS else FRAME_MS
        if not want_closed and self.relay_closed and self.applied <= 0:
            wait = self._relay_wait(now)
            if wait:
                return wait
            self._set_relay(False, now)
        return -1
