"""hypothesis over the chunks a device is sent (firmware/lib/staging.py): whatever
mix of good, repeated, out-of-order, truncated, too long and foreign chunks
arrives, with resets in between, every refused chunk changes nothing, the one
`want()` names is taken, and the release staged in the end is the release."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import staging
from hypothesis import given, settings
from hypothesis import strategies as st
from release import Refused

sys.path.insert(0, str(Path(__file__).resolve().parent / "firmware"))
from test_staging import NEW, device, files_of, release

PATHS = sorted(NEW)
DATA, SIG, MANIFEST, RID = release()

kind = st.sampled_from(
    ("good", "good", "good", "again", "ahead", "short", "long", "other", "foreign", "reset")
)


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(kind, min_size=1, max_size=60), cut=st.integers(1, 63))
def test_only_the_chunk_wanted_is_taken_and_the_release_comes_out_whole(kinds, cut):
    # fwtest.tempdir() makes its folders in $FWTEST_TMP: one removed after each example.
    before = os.environ.get("FWTEST_TMP")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FWTEST_TMP"] = tmp
        try:
            _example(kinds, cut)
        finally:
            if before is None:
                del os.environ["FWTEST_TMP"]
            else:
                os.environ["FWTEST_TMP"] = before


def _example(kinds: list[str], cut: int) -> None:
    app = device()
    st_ = staging.Staging(os, app, chunk=64)
    st_.begin(DATA, SIG, MANIFEST, RID)
    for k in kinds:
        want = st_.want()
        if want is None:
            break
        path, offset, length = want
        good = NEW[path][offset : offset + length]
        if k == "reset":
            st_ = staging.Staging(os, app, chunk=64)
            assert st_.staged() == (DATA, SIG)
            assert st_.begin(DATA, SIG, MANIFEST, RID) is True
            assert st_.want() == want  # nothing lost, nothing skipped
            continue
        if k == "good":
            st_.chunk(RID, path, offset, good)
            continue
        bad = {
            "again": (RID, path, offset - length, good) if offset else (RID, path, offset + 64, good),
            "ahead": (RID, path, offset + 64, good),
            "short": (RID, path, offset, good[: min(cut, len(good) - 1)]),
            "long": (RID, path, offset, good + b"x" * cut),
            "other": (RID, PATHS[(PATHS.index(path) + 1) % len(PATHS)], offset, good),
            "foreign": ("f" * 16, path, offset, good),
        }[k]
        try:
            st_.chunk(*bad)
        except Refused as e:
            assert e.code == "chunk"
        else:
            raise AssertionError(f"{k} chunk taken: {bad[1:3]}")
        assert st_.want() == want
    while (want := st_.want()) is not None:
        path, offset, length = want
        st_.chunk(RID, path, offset, NEW[path][offset : offset + length])
    st_.verify()
    st_.switch()
    found = files_of(app)
    assert {p: found[p] for p in NEW} == NEW
    assert not list((Path(app) / "stage").iterdir())
