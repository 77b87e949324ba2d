# The lamp controller: one pass of the main loop, and when the next is due.
#
# The fail-safe ladder, top rung first:
#   1. valid time: the schedule (or an override); with photocell.mode "assist" a
#      believable photocell's confirmed darkness lights a lamp the schedule has
#      off (a storm afternoon), with "control" it decides on and off and the
#      schedule the level while on;
#   2. no valid time: the photocell, dark -> photocell level, light -> off;
#   3. no valid time and a photocell that cannot be believed: the fail-safe level.
# The level is computed at boot before anything else, and after every change of
# the clock; between changes the loop sleeps until the engine's next change, the
# next fade frame or the next sensor sample, whichever is first.

from monitor import LampMonitor
from output import Output
from photocell import Photocell
from schedule import SCHEDULE, Engine
from ticks import add, diff

# Sensors (photocell, lamp current) are read every SAMPLE_FAST_MS while they
# matter now (the photocell decides the level, a fault is being confirmed, the
# lamp is warming up) and every SAMPLE_IDLE_MS otherwise: the loop sleeps until
# something is due, not once a second.
SAMPLE_FAST_MS = 1000
SAMPLE_IDLE_MS = 300000
EVENTS_KEPT = 32

PHOTOCELL = "photocell"
FAILSAFE = "failsafe"
ALARM = "alarm"


def _ignore(name, detail):
    pass


class Controller:
    def __init__(self, cfg, hw, clock, alarms=None):
        """hw: pwm, relay, relay_active, light_adc, current_adc (MicroPython APIs);
        clock: a TimeKeeper; alarms: an alarm.Alarms (while one is open, its
        indication rules the lamp)."""
        self.cfg = cfg
        self.clock = clock
        self.engine = Engine(cfg)
        self.output = Output(hw.pwm, hw.relay, hw.relay_active, cfg)
        self.photocell = Photocell(hw.light_adc, cfg)
        self.monitor = LampMonitor(hw.current_adc, cfg, self._fault)
        self.events = []  # (park time or None, name, detail), the newest EVENTS_KEPT
        self.on_event = _ignore  # called with (name, detail) as each event happens
        self.alarms = alarms
        self._alarm_shown = False
        self.level = None
        self.reason = None
        self.mode = None
        self._gen = -1
        self._valid_until = None  # park time up to which the current level holds
        self._last_t = None
        self._heard = None  # the photocell's say in the last decision (modes assist, control)
        self._next_sample = None
        self.passes = 0

    def event(self, name, detail):
        t = self.clock.now() if self.clock.valid else None
        self.events.append((t, name, detail))
        if len(self.events) > EVENTS_KEPT:
            self.events.pop(0)
        self.on_event(name, detail)

    def _fault(self, name, raised, detail):
        self.event(name if raised else name + "_cleared", detail)

    def _decide(self, t):
        """(level, fade, reason, valid_until or None) at park time t (None: no valid time)."""
        pc = self.photocell
        until = None
        if t is not None:
            level, fade, _, reason = self.engine.target(t)
            until = self.engine.next_change(t)
            mode = self.cfg.pc_mode
            # Heard only when believable (so a dead photocell never switches off
            # what the schedule lights, nor lights by day): darkness lights a lamp
            # the schedule has off; with "control" light also switches one off.
            if not (
                mode
                and pc.plausible
                and reason[0] == SCHEDULE
                and pc.dark == (not level)
                and (pc.dark or mode == 2)
            ):
                return level, fade, reason, until
        elif not pc.plausible:
            why = pc.problem or "no reading yet"
            return self.cfg.failsafe_level, 0, (FAILSAFE, -1, -1, why), None
        return (self.cfg.pc_level if pc.dark else 0), 30, (PHOTOCELL, -1, -1, "%.0f lux" % pc.lux), until

    def status(self):
        """What a technician or the centre is shown: target and applied level side by side."""
        out = self.output
        pc = self.photocell
        return {
            "mode": self.mode,
            "level": self.level,
            "applied": int(out.applied + 0.5),
            "relay": "closed" if out.relay_closed else "open",
            "reason": self.describe(),
            "time_valid": self.clock.valid,
            "time_source": self.clock.source,
            "lux": int(pc.lux + 0.5),
            "dark": pc.dark,
            "photocell_problem": pc.problem,
            "amps": int(self.monitor.amps * 100 + 0.5) / 100,
            "faults": [k for k, v in self.monitor.active.items() if v],
        }

    def refresh(self):
        """Something the level depends on changed (an override): decide again."""
        self._valid_until = None

    def describe(self):
        return self.engine.describe(self.reason) if self.reason else "starting"

    def step(self, now_ms):
        """One pass. Returns the ticks (ms) by which the next pass is due."""
        self.passes += 1
        first = self.level is None
        if first or diff(now_ms, self._next_sample) >= 0:
            self.photocell.sample(now_ms)
            out = self.output
            self.monitor.sample(now_ms, out.relay_closed, out.applied, out.duty_fraction())
            fast = self.mode != SCHEDULE or self.monitor.busy() or self.photocell.busy()
            self._next_sample = add(now_ms, SAMPLE_FAST_MS if fast else SAMPLE_IDLE_MS)
        t = self.clock.now() if self.clock.valid else None
        pc = self.photocell
        heard = pc.dark if self.cfg.pc_mode and pc.plausible else None
        stale = (
            first
            or heard != self._heard  # the photocell's say changed (modes assist, control)
            or self._gen != self.clock.generation
            or t is None  # no valid time: the photocell's answer can change any pass
            or self._valid_until is None
            or t >= self._valid_until
            or (self._last_t is not None and t < self._last_t)  # the clock went back
        )
        self._last_t = t
        self._heard = heard
        shown = self.alarms.level(now_ms) if self.alarms is not None else None
        if shown is None and self._alarm_shown:
            # Resolved: back to what the schedule says, at once.
            self._alarm_shown = False
            stale = True
            self.mode = None  # said again below
            self.output.command(self.level, 0, now_ms, at_once=True)
        if stale:
            self._gen = self.clock.generation
            level, fade, reason, until = self._decide(t)
            self._valid_until = until
            mode = reason[0] if reason[0] in (PHOTOCELL, FAILSAFE) else SCHEDULE
            if mode != self.mode and shown is None:
                self.event("mode", mode)
                self.mode = mode
            if level != self.level:
                # The schedule's level; while an alarm shows, it waits for its end.
                if shown is None:
                    self.output.command(level, fade, now_ms, at_once=first)
                    self._next_sample = now_ms  # a change: watch the lamp from now
                self.level = level
                self.event("level", "%s %s" % (level, self.engine.describe(reason)))
            self.reason = reason
        if shown is not None:
            # The alarm's pattern, at once (no fade, relay interval or not).
            if not self._alarm_shown:
                self._alarm_shown = True
                self.mode = ALARM
                self.event("mode", ALARM)
            self.output.command(shown[0], 0, now_ms, at_once=True, urgent=True)
        wait = self.output.update(now_ms)
        deadline = diff(self._next_sample, now_ms)
        if wait >= 0 and wait < deadline:
            deadline = wait
        if shown is not None and shown[1] < deadline:
            deadline = shown[1]
        if self._valid_until is not None and t is not None:
            until_ms = (self._valid_until - t) * 1000
            if until_ms < deadline:
                deadline = until_ms
        return add(now_ms, deadline if deadline > 0 else 0)
