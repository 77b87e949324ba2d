# A push button: pin IRQ on both edges, debounced in the main loop.
#
# The IRQ handler only stores the edge's time and level in preallocated arrays
# (no allocation: small ints in array('i') slots) and raises a flag. The main
# loop's step() turns edges into decisions: the contact counts as pressed once it
# has read low for `debounce_ms` with no edge, released once it has read high as
# long. Chatter (a few ms of bounce on each edge) and noise spikes shorter than
# the debounce time never make a press. A press held longer than `stuck_ms`
# gives one "stuck" event, and "unstuck" at its release; nothing else, however
# the button is pressed: this module only reports, it never acts.
#
# Edges lost to a full ring (or a full schedule queue) cannot fool it: step()
# also reads the pin, and a level that disagrees with the last edge seen counts
# as an edge at that moment. A button held at power-on counts as pressed at
# that moment: one press after the debounce time, "stuck" if it stays held.

from array import array

from ticks import diff

RING = 16


class Button:
    def __init__(self, pin, ticks_ms, debounce_ms=50, stuck_ms=30000, active=0):
        """pin: a machine.Pin (input); ticks_ms: time.ticks_ms, for the IRQ's stamps."""
        self.pin = pin
        self._ticks = ticks_ms
        now = ticks_ms()
        self.debounce_ms = debounce_ms
        self.stuck_ms = stuck_ms
        self.active = active  # the level that means "pressed" (0: pulled up, contact to ground)
        self._t = array("i", [0] * RING)
        self._v = array("i", [0] * RING)
        self._head = 0  # written by the IRQ
        self._tail = 0  # read by step()
        self.flag = False  # set by the IRQ: something to look at
        self.level = pin.value()  # the raw level after the last edge seen
        self._edge_at = now  # ticks of that edge
        # Released, whatever the pin says: a button already held at power-on
        # (pressed during a cut, held as the power came back) is a press once
        # it has read pressed for debounce_ms, as any other.
        self.pressed = False  # the debounced state
        self._since = now  # ticks the debounced state began
        self.stuck = False
        self.presses = 0
        self.lost_edges = 0

    def irq(self, pin):
        # Pin.irq's handler, a scheduled soft IRQ on the ESP32: no allocation.
        self.edge(self._ticks(), pin.value())

    def edge(self, t, v):
        """Record one edge at ticks t, level v."""
        h = self._head
        self._t[h % RING] = t
        self._v[h % RING] = v
        self._head = (h + 1) % (RING * 4)
        self.flag = True

    def step(self, now, emit):
        """Process edges up to `now`; emit(name) for "press", "release", "stuck",
        "unstuck". Returns ms until step() is next needed, or -1 to wait for an edge."""
        self.flag = False
        n = (self._head - self._tail) % (RING * 4)
        if n > RING:
            self.lost_edges += n - RING
            self._tail = (self._head - RING) % (RING * 4)
            n = RING
        for _ in range(n):
            k = self._tail % RING
            self._consider(self._t[k], now, emit)
            if self._v[k] != self.level:
                self.level = self._v[k]
                self._edge_at = self._t[k]
            self._tail = (self._tail + 1) % (RING * 4)
        v = self.pin.value()
        if v != self.level:  # an edge the ring did not keep
            self._consider(now, now, emit)
            self.level = v
            self._edge_at = now
        return self._consider(now, now, emit)

    def _consider(self, t, now, emit):
        """Settle the debounced state as of `t` (no edge since _edge_at)."""
        want = self.level == self.active
        if want != self.pressed and diff(t, self._edge_at) >= self.debounce_ms:
            self.pressed = want
            self._since = self._edge_at
            if want:
                self.presses += 1
                emit("press")
            else:
                emit("release")
                if self.stuck:
                    self.stuck = False
                    emit("unstuck")
        if self.pressed and not self.stuck and diff(t, self._since) >= self.stuck_ms:
            self.stuck = True
            emit("stuck")
        if want != self.pressed:
            return (
                self.debounce_ms - diff(now, self._edge_at)
                if diff(now, self._edge_at) < self.debounce_ms
                else 0
            )
        if self.pressed and not self.stuck:
            return self.stuck_ms - diff(now, self._since)
        return -1
