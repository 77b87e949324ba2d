"""The face module's UART (firmware/kiosk/facemodule.py) against whatever the
line can carry: nothing stops the parser, and every line it ends is counted
exactly once: a frame, a bad CRC or malformed."""

from __future__ import annotations

import json

from facemodule import FACE, LINE_MAX, JsonFaceModule, crc16
from hypothesis import given
from hypothesis import strategies as st


def framed(obj: object, crc: bool) -> bytes:
    body = json.dumps(obj).encode()
    return body + (b"*%04X" % crc16(body) if crc else b"")


faces = st.fixed_dictionaries(
    {"type": st.just(FACE), "score": st.floats(0, 1)},
    optional={"id": st.text(max_size=8), "live": st.booleans()},
)
lines = st.one_of(
    st.builds(framed, faces, st.booleans()),
    st.binary(max_size=LINE_MAX + 20).map(lambda b: b.replace(b"\n", b"")),
)


@given(
    st.lists(lines, max_size=8),
    st.binary(max_size=300),
    st.lists(st.integers(0, 4000), max_size=6),
    st.booleans(),
)
def test_every_line_is_counted_once_and_nothing_stops_the_parser(good, garbage, cuts, require_crc):
    m = JsonFaceModule(require_crc=require_crc)
    data = garbage + b"\n" + b"\r\n".join(good) + b"\n"
    at = sorted({min(c, len(data)) for c in cuts})
    events = []
    for a, b in zip([0, *at], [*at, len(data)], strict=True):
        events += m.feed(data[a:b])  # raises nothing
    ended = [ln for ln in data.split(b"\n")[:-1] if ln.replace(b"\r", b"")]
    assert m.frames + m.bad_crc + m.malformed == len(ended)
    assert len(events) == m.frames
    # After all that, a good frame is still read.
    assert m.feed(framed({"type": FACE, "id": "0001", "score": 0.9}, True) + b"\n") == [
        (FACE, "0001", 0.9, None)
    ]
