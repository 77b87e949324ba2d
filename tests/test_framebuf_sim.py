"""sim/vesp32/framebuf.py draws the same bytes as MicroPython's built-in framebuf.

The same drawing programs run in this process against the simulator's framebuf
and, a batch at a time, in the real MicroPython interpreter (one process per
batch, so hundreds of programs cost a few interpreter starts)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from parkctl.runtime import micropython_binary

ROOT = Path(__file__).resolve().parents[1]
FRAMEBUF = ROOT / "sim" / "vesp32" / "framebuf.py"


def load_sim_framebuf() -> ModuleType:
    """The simulator's framebuf, by path: its name must not shadow anything here."""
    spec = importlib.util.spec_from_file_location("sim_vesp32_framebuf", FRAMEBUF)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Runs in both interpreters, unchanged: what a program drew (the whole buffer,
# hex) and what its pixel reads returned.
RUNNER = """
import binascii
import framebuf

BUFSIZE = 17 * 16 * 2  # the largest a program asks for: stride up to 17, MONO_VLSB rounds rows to 8


def _palette(colours):
    p = framebuf.FrameBuffer(bytearray(4), 2, 1, framebuf.RGB565)
    p.pixel(0, 0, colours[0])
    p.pixel(1, 0, colours[1])
    return p


def run(programs):
    out = []
    for fmt, w, h, stride, ops in programs:
        buf = bytearray(BUFSIZE)
        fb = framebuf.FrameBuffer(buf, w, h, fmt, stride)
        reads = []
        for op in ops:
            name = op[0]
            a = op[1:]
            if name == "fill":
                fb.fill(a[0])
            elif name == "fill_rect":
                fb.fill_rect(a[0], a[1], a[2], a[3], a[4])
            elif name == "pixel":
                fb.pixel(a[0], a[1], a[2])
            elif name == "read":
                reads.append(fb.pixel(a[0], a[1]))
            elif name == "hline":
                fb.hline(a[0], a[1], a[2], a[3])
            elif name == "vline":
                fb.vline(a[0], a[1], a[2], a[3])
            elif name == "rect":
                if a[5] is None:
                    fb.rect(a[0], a[1], a[2], a[3], a[4])
                else:
                    fb.rect(a[0], a[1], a[2], a[3], a[4], a[5])
            elif name == "glyph":
                gw, gh, bits, x, y, key, pal = a
                g = framebuf.FrameBuffer(bytearray(bits), gw, gh, framebuf.MONO_HLSB)
                if pal is None:
                    fb.blit(g, x, y, key)
                else:
                    fb.blit(g, x, y, key, _palette(pal))
            elif name == "sprite":
                sw, sh, pixels, x, y, key = a
                s = framebuf.FrameBuffer(bytearray(sw * sh * 2), sw, sh, framebuf.RGB565)
                for i in range(sw * sh):
                    s.pixel(i % sw, i // sw, pixels[i])
                fb.blit(s, x, y, key)
            else:
                raise ValueError(name)
        out.append([binascii.hexlify(buf).decode(), reads])
    return out
"""

MAIN = """
import json
import sys

with open(sys.argv[1]) as f:
    programs = json.load(f)
print(json.dumps(run(programs)))
"""

FORMATS = ["MONO_VLSB", "RGB565", "GS4_HMSB", "MONO_HLSB", "MONO_HMSB", "GS2_HMSB", "GS8"]
FORMAT_IDS = {
    "MONO_VLSB": 0,
    "RGB565": 1,
    "GS4_HMSB": 2,
    "MONO_HLSB": 3,
    "MONO_HMSB": 4,
    "GS2_HMSB": 5,
    "GS8": 6,
}

# A colour wider than 16 bits or negative must be truncated as the C code does.
colour = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 2, 3, 0xFFFF]), st.integers(-70000, 140000))
key = st.one_of(st.just(-1), st.sampled_from([0, 1]), colour)
# Mostly on or just off the 13x9 buffer, sometimes far outside.
coord = st.one_of(st.integers(-3, 13), st.integers(-16, 18))
size = st.integers(-3, 18)


@st.composite
def glyph_op(draw: st.DrawFn) -> list[Any]:
    gw = draw(st.integers(1, 10))
    gh = draw(st.integers(1, 6))
    bits = draw(st.lists(st.integers(0, 255), min_size=((gw + 7) // 8) * gh, max_size=((gw + 7) // 8) * gh))
    pal = draw(st.one_of(st.none(), st.lists(colour.map(lambda c: c & 0xFFFF), min_size=2, max_size=2)))
    k = draw(st.one_of(key, st.sampled_from(pal or [0])))  # often the palette's own colour
    return ["glyph", gw, gh, bits, draw(coord), draw(coord), k, pal]


@st.composite
def sprite_op(draw: st.DrawFn) -> list[Any]:
    sw = draw(st.integers(1, 5))
    sh = draw(st.integers(1, 4))
    pixels = draw(st.lists(st.sampled_from([0, 0x1234, 0xF800, 0xFFFF]), min_size=sw * sh, max_size=sw * sh))
    return ["sprite", sw, sh, pixels, draw(coord), draw(coord), draw(st.sampled_from([-1, 0, 0x1234]))]


op = st.one_of(
    st.tuples(st.just("fill"), colour).map(list),
    st.tuples(st.just("fill_rect"), coord, coord, size, size, colour).map(list),
    st.tuples(st.just("pixel"), coord, coord, colour).map(list),
    st.tuples(st.just("read"), coord, coord).map(list),
    st.tuples(st.just("hline"), coord, coord, size, colour).map(list),
    st.tuples(st.just("vline"), coord, coord, size, colour).map(list),
    st.tuples(st.just("rect"), coord, coord, size, size, colour, st.sampled_from([None, False, True])).map(
        list
    ),
    glyph_op(),
    sprite_op(),
)


@st.composite
def program(draw: st.DrawFn) -> list[Any]:
    # RGB565 is what the kiosk draws in and MONO_HLSB is its glyphs' format: most programs.
    fmt = draw(st.sampled_from(["RGB565"] * 4 + ["MONO_HLSB"] * 2 + FORMATS))
    w = draw(st.integers(1, 13))
    stride = draw(st.one_of(st.just(w), st.integers(w, w + 4)))
    # Mostly on a painted background, so that keys and clipping show.
    start = draw(st.one_of(st.just([]), st.tuples(st.just("fill"), colour).map(lambda t: [list(t)])))
    return [FORMAT_IDS[fmt], w, draw(st.integers(1, 9)), stride, start + draw(st.lists(op, max_size=12))]


def run_in_cpython(programs: list[Any]) -> list[Any]:
    namespace: dict[str, Any] = {}
    saved = sys.modules.get("framebuf")
    sys.modules["framebuf"] = load_sim_framebuf()
    try:
        exec(RUNNER, namespace)
    finally:
        if saved is None:
            del sys.modules["framebuf"]
        else:
            sys.modules["framebuf"] = saved
    return namespace["run"](programs)


@pytest.fixture(scope="module")
def mp_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A file, not -c: this interpreter build crashes on long command-line arguments.
    script = tmp_path_factory.mktemp("framebuf") / "run_framebuf.py"
    script.write_text(RUNNER + MAIN)
    return script


def run_in_micropython(script: Path, programs: list[Any]) -> list[Any]:
    data = script.with_name("programs.json")
    data.write_text(json.dumps(programs))
    proc = subprocess.run(
        [micropython_binary(), str(script), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def first_divergence(script: Path, prog: list[Any]) -> str:
    """Which operation of a failing program first draws differently: every prefix of
    the program, in one interpreter run."""
    fmt, w, h, stride, ops = prog
    prefixes = [[fmt, w, h, stride, ops[:n]] for n in range(1, len(ops) + 1)]
    for n, want, have in zip(
        range(len(ops)), run_in_micropython(script, prefixes), run_in_cpython(prefixes), strict=True
    ):
        if want != have:
            return f"operation {n} {ops[n]}, after {ops[:n]}:\nMicroPython {want}\nsimulator   {have}"
    return "no prefix differs"


# Shrinking is off: each step would start the interpreter, and a failing batch
# takes minutes to shrink. first_divergence names the operation instead.
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(program(), min_size=20, max_size=40))
def test_drawing_programs_give_micropythons_bytes(mp_script: Path, batch: list[Any]) -> None:
    expected = run_in_micropython(mp_script, batch)
    got = run_in_cpython(batch)
    for prog, want, have in zip(batch, expected, got, strict=True):
        if have != want:
            fmt, w, h, stride, _ = prog
            pytest.fail(f"format {fmt}, {w}x{h}, stride {stride}: {first_divergence(mp_script, prog)}")


def test_a_full_screen_fill_is_little_endian_rgb565_everywhere() -> None:
    fb_mod = load_sim_framebuf()
    buf = bytearray(240 * 320 * 2)
    fb = fb_mod.FrameBuffer(buf, 240, 320, fb_mod.RGB565)
    fb.fill(0x1234)
    assert buf == b"\x34\x12" * (240 * 320)
    fb.fill_rect(-5, 318, 10, 10, 0xABCD)  # clipped to the bottom-left corner, 5x2
    assert fb.pixel(4, 319) == 0xABCD and fb.pixel(5, 319) == 0x1234 and fb.pixel(4, 317) == 0x1234
    assert fb.pixel(240, 0) is None and fb.pixel(0, -1) is None
    fb.pixel(-1, 0, 0)  # out of range: ignored
    assert buf[:2] == b"\x34\x12"


def test_what_micropython_refuses_the_simulator_refuses() -> None:
    fb_mod = load_sim_framebuf()
    fb = fb_mod.FrameBuffer
    with pytest.raises(ValueError):
        fb(bytearray(8), 5, 1, fb_mod.RGB565)  # buffer too small
    with pytest.raises(ValueError):
        fb(bytearray(8), 4, 1, fb_mod.RGB565, 2)  # stride below width
    with pytest.raises(ValueError):
        fb(bytearray(8), 4, 1, 99)
    with pytest.raises(TypeError):
        fb(b"12345678", 4, 1, fb_mod.RGB565)  # read-only
    with pytest.raises(ValueError):
        fb(bytearray(3), 9, 2, fb_mod.MONO_HLSB)  # rows start on a byte: 2 bytes a row
    fb(bytearray(4), 9, 2, fb_mod.MONO_HLSB)
    assert not hasattr(fb(bytearray(8), 4, 1, fb_mod.RGB565), "width")  # none on MicroPython either
    with pytest.raises(NotImplementedError, match=r"font\.Font"):
        fb(bytearray(8), 4, 1, fb_mod.RGB565).text("a", 0, 0, 1)
