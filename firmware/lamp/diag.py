# The lamp's diagnostics console commands (docs/diagnostics.md): those of every
# device (diagbase) and the lamp's own, all run while the lamp stays lit.

import gc
import os
import sys

import diagbase
from uplink import CommandError

RAMP = (25, 50, 75, 100)  # % duty steps of the self-test's PWM ramp
RAMP_STEP_MS = 50


class Diagnostics(diagbase.Diagnostics):
    APP = "lamp"

    def __init__(self, app):
        super().__init__(app)
        self.test_mode = False

    def handlers(self):
        h = super().handlers()
        h["selftest"] = self.selftest
        h["alarm"] = self.alarm
        h["test"] = self.test
        h["safemode"] = self.safemode
        return h

    def safemode(self, args, line):
        # The app runs: not in safe mode (safemode.py has its own command).
        if args:
            raise CommandError("safemode %s: not in safe mode" % " ".join(args))
        import bootcount

        try:
            n, lim, why = bootcount.read()
        finally:
            # Off the heap again, as main.py dropped it once the boot was healthy.
            sys.modules.pop("bootcount", None)
        return {"safe_mode": False, "failed_boots": n, "limit": lim, "failure": why or None}

    def time_set(self):
        self.app.ctl.refresh()

    def selftest(self, args, line):
        app = self.app
        b = app.board
        out = {}
        lit = app.ctl.status()["level"] > 0
        if lit:
            why = "skipped: the lamp is lit (the test would interrupt its light)"
            out["relay"] = out["pwm_ramp"] = why
        else:
            out["relay"], out["pwm_ramp"] = self._ramp(b)
        out["light_adc"] = b.light_adc.read_u16()
        out["current_adc"] = b.current_adc.read_u16()
        out["button"] = "pressed" if app.button.pressed else "released"
        out["button_stuck"] = app.button.stuck
        try:
            out["ds3231"] = 0x68 in b.i2c.scan()
        except OSError:
            out["ds3231"] = False
        st = os.statvfs("/")
        out["flash_free"] = st[0] * st[3]
        gc.collect()
        out["heap_free"] = gc.mem_free()
        out["journal_torn"] = app.journal.torn
        out["ok"] = out["ds3231"] and not out["button_stuck"] and out["flash_free"] > 16384
        return out

    def _ramp(self, b):
        """Relay closed, PWM stepped up with the lamp current read at each step, then
        everything as it was (only while the lamp is meant to be dark)."""
        relay_was = b.relay.value()
        duty_was = b.pwm.duty_u16()
        amps = []
        try:
            b.relay.value(b.relay_active)
            for pct in RAMP:
                b.pwm.duty_u16(pct * 65535 // 100)
                b.sleep_ms(RAMP_STEP_MS)
                amps.append(b.current_adc.read_u16())
        finally:
            b.pwm.duty_u16(duty_was)
            b.relay.value(relay_was)
        rising = all(amps[i] < amps[i + 1] for i in range(len(amps) - 1))
        return "clicked", {"duty_pct": list(RAMP), "current_adc": amps, "rising": rising}

    def alarm(self, args, line):
        if args == ["test"]:
            return self.app.test_alarm()
        if args == ["clear"]:
            # On site: the technician sees the pole; the centre hears of it later.
            aid = self.app.alarms.clear()
            if aid is None:
                raise CommandError("alarm clear: no alarm is open")
            return {"cleared": aid}
        raise CommandError("alarm test (raises a test alarm) or alarm clear (closes the open one, on site)")

    def test(self, args, line):
        """The HIL rig's hands on a real board (docs/hil.md): pins jumpered to the
        app's inputs, driven only in test mode, which only this command enters."""
        b = self.app.board
        what = args[0] if args else None
        if what in ("on", "off"):
            self.test_mode = what == "on"
            return {"test_mode": self.test_mode}
        if not self.test_mode:
            raise CommandError("not in test mode: `test on` first (for the HIL rig only)")
        try:
            nums = [int(a) for a in args[1:]]
        except ValueError:
            raise CommandError("test %s: pins and times are whole numbers" % what)
        if what == "pulse" and len(nums) == 2:
            b.test_pulse(nums[0], nums[1])
            return {"pin": nums[0], "ms": nums[1]}
        if what == "pin" and len(nums) in (1, 2):
            return b.test_pin(nums[0], nums[1] if len(nums) == 2 else None)
        if what == "adc" and len(nums) == 1:
            return b.test_adc(nums[0])
        if what == "hang" and len(nums) <= 1:
            # The watchdog, shortened (S seconds, default the lamp's), then a loop that
            # never feeds it: the board must reset and come back lit right.
            b.start_watchdog(nums[0] * 1000 if nums else None)
            while True:
                pass
        raise CommandError("test on|off, test pulse PIN MS, test pin PIN [0|1], test adc PIN, test hang [S]")
