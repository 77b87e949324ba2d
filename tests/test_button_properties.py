"""hypothesis over button waveforms: bounce, spikes, holds. The presses counted
equal the presses a person made; a held button gives one stuck fault."""

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
    edges = []
    t = 100
    for (_, length, flips), gap in zip(segments, gaps, strict=False):
        edges += bouncy(t, 0, flips) if flips else [(t, 0)]
        t += length
        edges += bouncy(t, 1, flips) if flips else [(t, 1)]
        t += gap
    r = Rig(debounce_ms=DEBOUNCE, stuck_ms=STUCK)
    names = r.waveform(edges, t + 1000)
    real = sum(1 for k, _, _ in segments if k in ("press", "hold"))
    holds = sum(1 for k, _, _ in segments if k == "hold")
    assert names.count("press") == real
    assert names.count("release") == real
    assert names.count("stuck") == holds == names.count("unstuck")
