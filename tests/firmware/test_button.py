# The button's debouncing. CPython, float32, MicroPython.

from button import Button


class Pin:
    def __init__(self):
        self.v = 1  # pulled up: released

    def value(self):
        return self.v


class Rig:
    """Drives the button through edges at given ms, stepping at each deadline."""

    def __init__(self, held=False, **kw):
        self.now = 0
        self.pin = Pin()
        if held:  # the contact is closed as the board boots
            self.pin.v = 0
        self.events = []
        self.b = Button(self.pin, lambda: self.now, **kw)
        self.deadline = -1

    def emit(self, name):
        self.events.append((self.now, name))

    def step(self):
        wait = self.b.step(self.now, self.emit)
        self.deadline = self.now + wait if wait >= 0 else -1

    def until(self, t):
        while self.deadline >= 0 and self.deadline <= t:
            self.now = self.deadline
            self.step()
        self.now = t

    def set(self, t, v):
        """The contact at ms t reads v (an IRQ stamps it; the loop looks at once)."""
        self.until(t)
        self.pin.v = v
        self.b.irq(self.pin)
        self.step()

    def waveform(self, edges, end):
        for t, v in edges:
            self.set(t, v)
        self.until(end)
        return [name for _, name in self.events]


def bouncy(t, v, flips=5):
    """A contact settling at v after chatter starting at ms t."""
    out = []
    for i in range(flips):
        out.append((t + i, 1 - v if i % 2 == 0 else v))
    out.append((t + flips, v))
    return out


def test_a_clean_press():
    r = Rig()
    assert r.waveform([(100, 0), (400, 1)], 1000) == ["press", "release"]
    assert r.events[0][0] == 150  # confirmed 50 ms after the contact settled


def test_chatter_counts_once():
    r = Rig()
    assert r.waveform(bouncy(100, 0) + bouncy(400, 1), 1000) == ["press", "release"]
    assert r.events[0][0] == 155  # 50 ms after the last bounce


def test_spikes_shorter_than_the_debounce_are_nothing():
    r = Rig()
    assert r.waveform([(100, 0), (130, 1), (300, 0), (349, 1)], 1000) == []
    assert r.b.presses == 0


def test_held_button_gives_one_stuck_then_works_again():
    r = Rig(stuck_ms=30000)
    names = r.waveform([(100, 0), (100 + 95000, 1), (200000, 0), (200200, 1)], 300000)
    assert names == ["press", "stuck", "release", "unstuck", "press", "release"]


def test_lost_edges_are_recovered_from_the_pin():
    r = Rig()
    r.now = 100
    r.pin.v = 0  # pressed, but the IRQ never reported it (queue full)
    r.step()
    r.until(1000)
    assert [n for _, n in r.events] == ["press"]
    # And a burst longer than the ring: the oldest edges are dropped, not misread.
    for i in range(40):
        r.b.edge(1000 + i, i % 2)
    r.now = 1040
    r.pin.v = 1
    r.step()
    r.until(2000)
    assert r.b.lost_edges > 0 and [n for _, n in r.events] == ["press", "release"]


def test_a_button_held_through_power_on_is_a_press():
    # Issue 20, finding 2: pressed during a cut and still held when the power
    # came back, it was taken as already down: no press, no alarm.
    r = Rig(held=True, stuck_ms=30000)
    r.step()  # the main loop's first pass
    assert r.waveform([(800, 1)], 2000) == ["press", "release"]
    assert r.events[0][0] == 50  # the debounce time after power-on


def test_a_button_stuck_at_power_on_is_one_press_and_one_stuck():
    r = Rig(held=True, stuck_ms=30000)
    r.step()  # the main loop's first pass
    r.until(600000)  # ten minutes held
    assert r.events == [(50, "press"), (30000, "stuck")]
