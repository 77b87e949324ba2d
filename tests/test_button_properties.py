"""hypothesis over button waveforms: bounce, spikes, holds. The presses counted
equal the presses a person made, and so do the alarms raised when the centre
closes each one; a held button gives one stuck fault."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "firmware"))
from test_button import Rig, bouncy

DEBOUNCE = 50
STUCK = 30000

segment = st.one_of(
    # A real press: held well past the debounce time, with chatter on both edges.
    st.tuples(st.just("press"), st.integers(DEBOUNCE + 20, 5000), st.integers(0, 8)),
    # A noise spike or a touch too short to count.
    st.tuples(st.just("spike"), st.integers(1, DEBOUNCE - 10), st.just(0)),
    # Held down: longer than the stuck limit.
    st.tuples(st.just("hold"), st.integers(STUCK + 100, 3 * STUCK), st.integers(0, 8)),
)


@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(segment, max_size=12),
    gaps=st.lists(st.integers(DEBOUNCE + 20, 10000), min_size=12, max_size=12),
)
def test_presses_counted_as_a_person_counts_them(segments, gaps):
    edges, end = _edges(segments, gaps)
    r = Rig(debounce_ms=DEBOUNCE, stuck_ms=STUCK)
    names = r.waveform(edges, end)
    real = sum(1 for k, _, _ in segments if k in ("press", "hold"))
    holds = sum(1 for k, _, _ in segments if k == "hold")
    assert names.count("press") == real
    assert names.count("release") == real
    assert names.count("stuck") == holds == names.count("unstuck")


class AlarmRig(Rig):
    """The button's decisions fed to the alarm as the lamp's main loop does
    (a press -> Alarms.press, journaled after the pole shows it); a centre that
    resolves each alarm at the button's release, when `resolving`."""

    def __init__(self, resolving, **kw):
        from alarm import Alarms
        from fakehw import Pin

        super().__init__(**kw)
        self.resolving = resolving
        self.raised = []
        self.seq = 0
        self.alarms = Alarms(Pin(), [(100, 700), (20, 300)], self._post, self._reserve)

    def _reserve(self):
        self.seq += 1
        return self.seq, f"lamp-1-1-{self.seq}"

    def _post(self, kind, fields, critical, seq=None):
        if kind == "alarm_raised":
            self.raised.append(seq)
        return f"lamp-1-1-{seq or 0}"

    def emit(self, name):
        super().emit(name)
        a = self.alarms
        if name == "press":
            a.press(self.now, None)
            a.write()
        elif name == "release" and self.resolving and a.open is not None:
            a.resolve(a.open["id"])


def _edges(segments, gaps):
    edges = []
    t = 100
    for (_, length, flips), gap in zip(segments, gaps, strict=False):
        edges += bouncy(t, 0, flips) if flips else [(t, 0)]
        t += length
        edges += bouncy(t, 1, flips) if flips else [(t, 1)]
        t += gap
    return edges, t + 1000


@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(segment, max_size=12),
    gaps=st.lists(st.integers(DEBOUNCE + 20, 10000), min_size=12, max_size=12),
    resolving=st.booleans(),
)
def test_alarms_raised_as_a_person_counts_presses(segments, gaps, resolving):
    edges, end = _edges(segments, gaps)
    r = AlarmRig(resolving, debounce_ms=DEBOUNCE, stuck_ms=STUCK)
    names = r.waveform(edges, end)
    real = sum(1 for k, _, _ in segments if k in ("press", "hold"))
    holds = sum(1 for k, _, _ in segments if k == "hold")
    if resolving:
        # The centre closes each alarm: every real press raises one, no more.
        assert len(r.raised) == real
    else:
        # One alarm, however many presses: they add to its count.
        assert len(r.raised) == min(real, 1)
        assert (r.alarms.open or {}).get("presses", 0) == real
    # A held button: one stuck fault each time, never a stream of alarms.
    assert names.count("stuck") == holds
