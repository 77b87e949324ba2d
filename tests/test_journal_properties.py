"""The journal under random histories (hypothesis): appends, deliveries, reboots
and power cuts that tear the last write. Whatever happens, no undelivered alarm
is ever lost, nothing delivered comes back, and ids are never reused."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from journal import Journal

step = st.one_of(
    st.tuples(st.just("alarm"), st.integers(0, 9)),
    st.tuples(st.just("event"), st.integers(0, 9)),
    st.tuples(st.just("deliver"), st.integers(0, 30)),
    st.tuples(st.just("reboot"), st.just(0)),
    st.tuples(st.just("cut"), st.integers(1, 60)),  # a power cut tears the last write
)


@settings(max_examples=150, deadline=None)
@given(history=st.lists(step, max_size=60))
def test_no_alarm_lost_no_delivered_event_back(history):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "j"

        def boot() -> Journal:
            return Journal(os, str(folder), "lamp-1", max_segments=3, segment_records=4)

        j = boot()
        alarms: set[str] = set()  # journaled, not yet delivered
        delivered: set[str] = set()
        ids: set[str] = set()
        for op, arg in history:
            if op in ("alarm", "event"):
                eid = j.append(op, f'{{"n": {arg}}}', critical=op == "alarm")
                assert eid not in ids
                ids.add(eid)
                if op == "alarm":
                    alarms.add(eid)
            elif op == "deliver":
                waiting = j.undelivered(100)
                if waiting:
                    seq, eid, _, _ = waiting[arg % len(waiting)]
                    j.delivered(seq)
                    delivered.add(eid)
                    alarms.discard(eid)
            elif op == "reboot":
                j = boot()
            else:
                # Power lost in the middle of the next write: part of a line on flash.
                segs = sorted(p for p in folder.iterdir() if p.suffix == ".log")
                if segs:
                    with open(segs[-1], "a") as f:
                        f.write("9999 1 alarm 1 {}"[: arg % 18])
                j = boot()
            waiting = {eid for _, eid, _, _ in j.undelivered(1000)}
            assert alarms <= waiting  # every undelivered alarm is still there
            assert not (waiting & delivered)  # nothing delivered comes back
