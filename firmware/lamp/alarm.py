# The emergency alarm: its lifecycle, and what the pole shows while it is open.
#
#   raised (a confirmed press, on the device) -> delivered (the broker has it:
#   PUBACK) -> acknowledged (the centre's command) -> resolved (the centre
#   closes it); or cleared, from any state (a technician at the pole, from the
#   console). Each transition is an event, journaled before delivery; the raise
#   is critical (never dropped from the journal before the centre has it).
#
# Flash first: the raise is on flash before the pole shows anything, so an
# alarm a person has seen on the pole is one a power cut cannot take back. A
# cut during that one write leaves no alarm and nothing shown (press again).
# While an alarm is open its records (raise, delivered, acknowledged) are held
# in the journal whatever their delivery (holds()), so that restore() finds it
# after any number of reboots until the centre resolves it.
#
# One alarm is open at a time: more presses while it is open add to its press
# count, nothing else. While open, the lamp shows `flash` (a repeating list of
# [level, ms]) so that responders find the pole; the ring LED on the button
# blinks until the centre acknowledges, then stays lit until it resolves.
# Nothing here resets the board or touches the configuration, whatever the
# presses.

import json

from ticks import diff

KINDS = ("alarm_raised", "alarm_delivered", "alarm_acknowledged", "alarm_resolved", "alarm_cleared")
CLOSED = ("alarm_resolved", "alarm_cleared")  # the centre's resolve, a technician's clear

RAISED = "raised"
DELIVERED = "delivered"
ACKNOWLEDGED = "acknowledged"
BLINK_MS = 250


def _ignore(kind, fields, critical, seq=None):
    return None


def _no_ids():
    return 0, ""


class Alarms:
    def __init__(self, led, flash, post=_ignore, reserve=_no_ids):
        """led: the ring LED's machine.Pin (1 lit); flash: [[level, ms], ...];
        post(kind, fields, critical, seq=None): journal an event, returns its id;
        reserve(): (seq, id) of an event to be posted a little later."""
        self.led = led
        self.flash = flash
        self.post = post
        self.reserve = reserve
        self._unwritten = None  # a raise the flash refused: write() tries again
        self.open = None  # {"id", "state", "presses", "test", "raised"}
        self.seq = 0  # the journal's sequence number of the open alarm's raise
        self._closed = None  # the id of the last alarm closed (its resolve or clear is held)
        self._started = 0  # ticks the indication began
        self.raised = 0
        led.value(0)

    def restore(self, records, now):
        """After a reset: the alarm that was open, from the journal's records
        (seq, id, kind, body) of KINDS, oldest first (by sequence number). The
        pole shows it again at once; returns it, or None. (Presses after the
        raise are counted in RAM only: the count restarts from the last
        journaled one.)

        Only one alarm is ever open, so the open one is the newest raise with no
        resolve after it: a resolve of any alarm closes every raise before it.
        (A raise carried forward in the journal while undelivered may outlive
        its own resolve; the newest resolve is held, so it still closes it.)"""
        a = None
        closed = None
        for seq, eid, kind, body in records:
            try:
                fields = json.loads(body)
            except ValueError:
                continue
            if kind == "alarm_raised":
                a = {
                    "id": eid,
                    "state": RAISED,
                    "presses": fields.get("presses", 1),
                    "test": fields.get("test", False),
                    "raised": fields.get("ts"),
                }
                self.seq = seq
            elif kind in CLOSED:
                a = None
                closed = fields.get("alarm")
            elif a is not None and fields.get("alarm") == a["id"]:
                if kind == "alarm_delivered" and a["state"] == RAISED:
                    a["state"] = DELIVERED
                elif kind == "alarm_acknowledged":
                    a["state"] = ACKNOWLEDGED
                    a["presses"] = fields.get("presses", a["presses"])
        self._closed = closed
        if a is not None:
            self.open = a
            self._started = now
        return a

    def holds(self, eid, kind, body):
        """Must the journal keep this record (id, kind, body) whatever its
        delivery? The open alarm's records, which restore() needs, and the last
        resolve, which closes any older raise still on flash."""
        a = self.open
        if kind not in KINDS:
            return False
        if a is not None:
            return eid == a["id"] or ('"%s"' % a["id"]) in body
        return kind in CLOSED and self._closed is not None and ('"%s"' % self._closed) in body

    # --- transitions -------------------------------------------------------

    def press(self, now, t, test=False):
        """A confirmed press (or a technician's test alarm) at ticks `now`, Unix
        time t. A new alarm's raise goes to flash first (the first write after
        the press), then the pole shows it (the controller's pass that follows)."""
        a = self.open
        if a is not None:
            a["presses"] += 1
            return a["id"]
        self.raised += 1
        seq, aid = self.reserve()
        fields = {"presses": 1, "test": test}
        try:
            self.post("alarm_raised", fields, True, seq)
        except OSError:
            # The flash refused it (full, worn): the pole shows the alarm all the
            # same (someone needs help here) and write() tries again each pass.
            self._unwritten = (seq, fields)
        self.seq = seq
        self._started = now
        self.open = {"id": aid, "state": RAISED, "presses": 1, "test": test, "raised": t}
        return aid

    def write(self):
        """Journal a raise the flash refused in press(), if any."""
        u = self._unwritten
        if u is not None:
            self.post("alarm_raised", u[1], True, u[0])
            self._unwritten = None

    def delivered(self, aid):
        """The raise of `aid` has reached the broker."""
        a = self.open
        if a is not None and a["id"] == aid and a["state"] == RAISED:
            a["state"] = DELIVERED
            self.post("alarm_delivered", {"alarm": aid}, False)

    def acknowledge(self, aid):
        """The centre has seen it. Returns None, or why not."""
        a = self.open
        why = self._check(aid)
        if why or a is None:
            return why
        if a["state"] == ACKNOWLEDGED:
            return "alarm %s is already acknowledged" % aid
        self.post("alarm_acknowledged", {"alarm": aid, "presses": a["presses"]}, True)
        a["state"] = ACKNOWLEDGED
        return None

    def resolve(self, aid):
        """The centre closes it: the pole goes back to normal. None, or why not."""
        a = self.open
        why = self._check(aid)
        if why or a is None:
            return why
        # On flash before the alarm closes: until then its records are held.
        self.post("alarm_resolved", {"alarm": aid, "presses": a["presses"]}, True)
        self.open = None
        self._closed = aid
        self.led.value(0)
        return None

    def clear(self):
        """A technician at the pole closes the open alarm (the console's `alarm
        clear`: a test alarm with no centre to resolve it, say). Journaled as
        alarm_cleared, critical, and sent to the centre when it can be. Returns
        the alarm's id, or None if none was open."""
        a = self.open
        if a is None:
            return None
        aid = a["id"]
        self.post("alarm_cleared", {"alarm": aid, "presses": a["presses"], "on_site": True}, True)
        self.open = None
        self._closed = aid
        self.led.value(0)
        return aid

    def _check(self, aid):
        a = self.open
        if a is None:
            return "no alarm is open"
        if a["id"] != aid:
            return "alarm %s is not the open one (%s)" % (aid, a["id"])
        return None

    # --- the indication ----------------------------------------------------

    def level(self, now):
        """(lamp level, ms until it changes) while an alarm is open; None otherwise.
        Also drives the ring LED."""
        a = self.open
        if a is None:
            return None
        since = diff(now, self._started)
        if a["state"] == ACKNOWLEDGED:
            self.led.value(1)
            led_wait = -1
        else:
            self.led.value(0 if (since // BLINK_MS) % 2 else 1)
            led_wait = BLINK_MS - since % BLINK_MS
        period = 0
        for step in self.flash:
            period += step[1]
        k = since % period
        for level, ms in self.flash:
            if k < ms:
                wait = ms - k
                if 0 <= led_wait < wait:
                    wait = led_wait
                return level, wait
            k -= ms
        return self.flash[0][0], 1  # not reached: k < period
