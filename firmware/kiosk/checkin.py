# What a kiosk does with a recognised face: welcome (and record), already
# checked in (record nothing), or not recognised (count only). No image is
# ever kept; a check-in is the person's id, the time and the device.

from facemodule import FACE

WELCOME = "welcome"
ALREADY = "already"
NOT_RECOGNISED = "not_recognised"
KEEP = 512  # people remembered for the repeat window


class CheckIns:
    def __init__(self, roster, threshold=0.8, window_s=300, require_liveness=True):
        self.roster = roster
        self.threshold = threshold
        self.window_s = window_s
        self.require_liveness = require_liveness
        self.last = {}  # person id -> time of the check-in recorded
        self.rejected = {"unknown": 0, "low_score": 0, "liveness": 0, "not_on_roster": 0}
        self.repeats = 0

    def decide(self, ev, now):
        """(screen, details) for one event from the face module at time now
        (seconds); `details` of a WELCOME is the check-in to record."""
        if ev[0] != FACE:
            return None
        _, pid, score, live = ev
        why = None
        if pid is None:
            why = "unknown"
        elif score < self.threshold:
            why = "low_score"
        elif live is False or (live is None and self.require_liveness):
            why = "liveness"
        else:
            person = self.roster.get(pid)
            if person is None or not person[2]:
                why = "not_on_roster"
        if why is not None:
            self.rejected[why] += 1
            return NOT_RECOGNISED, {"why": why}
        name, dept, _ = self.roster.get(pid)
        first = self.last.get(pid)
        if first is not None and now - first < self.window_s:
            self.repeats += 1
            return ALREADY, {"id": pid, "name": name, "at": first}
        self.last[pid] = now
        if len(self.last) > KEEP:
            self._forget(now)
        return WELCOME, {"id": pid, "name": name, "dept": dept, "at": now}

    def _forget(self, now):
        for pid in [p for p, t in self.last.items() if now - t >= self.window_s]:
            del self.last[pid]
        while len(self.last) > KEEP:  # a crowd within one window: the oldest go
            oldest = None
            for pid, t in self.last.items():
                if oldest is None or t < self.last[oldest]:
                    oldest = pid
            del self.last[oldest]
