"""The kiosk's display path end to end: screens drawn with framebuf, sent by the
ST7789 driver (firmware/kiosk/st7789.py) over a bus whose bytes and pin levels
feed the virtual panel (sim/panel.py), which must rebuild the same picture, in
CPython (with the simulator's framebuf) and in MicroPython (with its own)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import st7789
from hypothesis import given, settings
from hypothesis import strategies as st
from parkctl.frames import save_png
from parkctl.runtime import micropython_binary
from test_framebuf_sim import load_sim_framebuf

from sim import panel as panel_mod
from sim.panel import Panel, to_rgb888

ROOT = Path(__file__).resolve().parents[1]
W, H = 240, 320

# Runs in both interpreters, unchanged. Colours are ones RGB565 holds exactly
# (each channel's low bits repeat its high ones), with unequal bytes so that a
# byte-order slip shows.
CHECK = """
RECTS = [
    (0, 0, 240, 40, (0x84, 0x82, 0x10)),
    (10, 60, 100, 50, (0xFF, 0x00, 0x00)),
    (60, 90, 120, 80, (0x00, 0xFF, 0x00)),
    (200, 280, 100, 100, (0x08, 0x04, 0x42)),
    (0, 319, 1, 1, (0xFF, 0xFF, 0xFF)),
]
SAMPLES = [(0, 0), (239, 39), (120, 40), (10, 60), (109, 109), (60, 90), (179, 169), (59, 89),
           (200, 280), (239, 319), (199, 319), (0, 319), (1, 319), (120, 200)]


class Bus:
    # machine.SPI as the driver sees it: every write reaches the panel as it is.
    def __init__(self, panel):
        self.panel = panel
        self.writes = []

    def write(self, buf):
        self.writes.append(len(buf))
        self.panel.spi(buf)


class Wire:
    # machine.Pin as an output: its level reaches the panel's pin of that name.
    def __init__(self, panel, name, log):
        self.panel = panel
        self.name = name
        self.log = log
        self.level = None

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        self.log.append((self.name, v))
        self.panel.pin(self.name, v)


def check(framebuf, st7789, panel_mod):
    p = panel_mod.Panel()
    frames = []
    p.on_frame = lambda ram: frames.append(len(ram))
    log = []
    bus = Bus(p)
    d = st7789.ST7789(bus, Wire(p, "dc", log), Wire(p, "cs", log), Wire(p, "rst", log),
                      lambda ms: log.append(("sleep", ms)), bl=Wire(p, "bl", log))
    d.init()
    after_init = [p.errors, p.lit(), p.colmod, len(frames)]
    buf = bytearray(240 * 320 * 2)
    fb = framebuf.FrameBuffer(buf, 240, 320, framebuf.RGB565)
    fb.fill(st7789.color(0, 0, 0))
    for x, y, w, h, rgb in RECTS:
        fb.fill_rect(x, y, w, h, st7789.color(rgb[0], rgb[1], rgb[2]))
    shows = []
    for _ in range(2):
        n = len(bus.writes)
        d.show(buf)
        shows.append([len(frames), bus.writes[n:]])
    pixels = []
    for x, y in SAMPLES:
        i = (y * 240 + x) * 2
        pixels.append(list(panel_mod.to_rgb888(p.ram[i : i + 2], 1, 1)))
    d.off()
    dark = p.lit()
    d.on()
    return {"after_init": after_init, "shows": shows, "pixels": pixels, "dark": dark, "lit": p.lit(),
            "errors": p.errors, "log": log}
"""


def expected_pixels(namespace: dict[str, Any]) -> list[list[int]]:
    """What each sample point must show: the last rectangle drawn over it, else black."""
    out = []
    for x, y in namespace["SAMPLES"]:
        colour = (0, 0, 0)
        for rx, ry, rw, rh, rgb in namespace["RECTS"]:
            if rx <= x < rx + rw and ry <= y < ry + rh:
                colour = rgb
        out.append(list(colour))
    return out


def check_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(CHECK, namespace)
    return namespace


def assert_the_picture_arrives(result: dict[str, Any], namespace: dict[str, Any]) -> None:
    assert result["after_init"] == [0, True, 0x55, 0]  # awake, on, 16-bit, nothing shown yet
    # One frame per show, and the pixels go as one write of the whole buffer.
    assert result["shows"] == [[1, [1, 4, 1, 4, 1, W * H * 2]], [2, [1, 4, 1, 4, 1, W * H * 2]]]
    assert result["pixels"] == expected_pixels(namespace)
    assert result["dark"] is False and result["lit"] is True
    assert result["errors"] == 0


def test_rectangles_drawn_in_the_firmware_show_on_the_panel() -> None:
    namespace = check_namespace()
    result = namespace["check"](load_sim_framebuf(), st7789, panel_mod)
    assert_the_picture_arrives(result, namespace)


def test_the_same_in_micropython_with_its_own_framebuf(tmp_path: Path) -> None:
    script = tmp_path / "panel_check.py"  # a file: this interpreter crashes on long -c arguments
    script.write_text(
        "import json, framebuf, st7789, panel\n"
        + CHECK
        + "\nr = check(framebuf, st7789, panel)\n"
        + "r['log'] = [list(e) for e in r['log']]\n"
        + "print(json.dumps(r))\n"
    )
    proc = subprocess.run(
        # The kiosk is an ESP32-S3 with PSRAM: a frame buffer (150 KB) fits, with the panel's own.
        [micropython_binary(), "-X", "heapsize=2M", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MICROPYPATH": f"{ROOT / 'firmware' / 'kiosk'}:{ROOT / 'sim'}"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert_the_picture_arrives(result, check_namespace())
    # The same wire activity as in CPython, pin for pin.
    cpython = check_namespace()["check"](load_sim_framebuf(), st7789, panel_mod)
    assert result["log"] == [list(e) for e in cpython["log"]]


def init_trace() -> list[tuple[str, int]]:
    """The driver's init as the wires see it: commands, pin changes and sleeps, in order."""
    seq: list[tuple[str, int]] = []

    class Bus:
        def write(self, buf: Any) -> None:
            if dc.level == 0:
                seq.append(("cmd", buf[0]))

    class Wire:
        def __init__(self, name: str) -> None:
            self.name = name
            self.level = 1

        def value(self, v: int | None = None) -> int:
            if v is not None:
                self.level = v
                seq.append((self.name, v))
            return self.level

    dc = Wire("dc")
    d = st7789.ST7789(Bus(), dc, Wire("cs"), Wire("rst"), lambda ms: seq.append(("sleep", ms)), bl=Wire("bl"))
    d.init()
    return seq


def test_init_waits_as_the_datasheet_says() -> None:
    seq = init_trace()

    def slept(start: tuple[str, int], end: tuple[str, int]) -> int:
        i = seq.index(start)
        j = seq.index(end, i + 1)
        return sum(v for what, v in seq[i:j] if what == "sleep")

    assert seq.index(("rst", 0)) < seq.index(("rst", 1), seq.index(("rst", 0))) < seq.index(("cmd", 0x01))
    assert slept(("rst", 0), ("rst", 1)) >= 1  # the pulse: at least 10 us low
    assert slept(("cmd", 0x01), ("cmd", 0x11)) >= 120  # SWRESET, then SLPOUT
    assert slept(("cmd", 0x11), ("cmd", 0x3A)) >= 5  # SLPOUT, then anything
    after_pulse = seq.index(("rst", 1), seq.index(("rst", 0)))  # the reset takes up to 120 ms
    assert sum(v for what, v in seq[after_pulse : seq.index(("cmd", 0x01))] if what == "sleep") >= 120
    commands = [v for what, v in seq if what == "cmd"]
    assert commands == [0x01, 0x11, 0x3A, 0x36, 0x21, 0x13, 0x29]
    assert seq[-1] == ("bl", 1)


# -- the panel on its own ------------------------------------------------------


def command(p: Panel, cmd: int, data: bytes = b"") -> None:
    p.pin("cs", 0)
    p.pin("dc", 0)
    p.spi(bytes([cmd]))
    p.pin("dc", 1)
    if data:
        p.spi(data)
    p.pin("cs", 1)


def ready(width: int = 4, height: int = 3) -> Panel:
    p = Panel(width, height)
    for cmd, data in ((0x11, b""), (0x3A, b"\x55"), (0x29, b"")):
        command(p, cmd, data)
    assert p.lit() and p.errors == 0
    return p


def test_garbage_is_counted_never_raised() -> None:
    p = Panel(4, 3)
    p.pin("cs", 0)
    p.spi(b"\x00\xff\x12")  # data before any command
    assert p.errors == 1
    command(p, 0x2C, b"\x12\x34")  # RAMWR while still in 18-bit colour mode
    assert p.errors == 2 and p.ram == bytearray(24)
    command(p, 0x2A, b"\x00")  # CASET with one of its four parameters
    command(p, 0x29, b"\x01")  # DISPON takes none
    assert p.errors == 4
    p.pin("cs", 1)
    p.spi(b"\x01")  # not selected: the panel does not listen
    assert p.errors == 4 and p.resets == 1


def test_a_small_window_wraps_within_itself_and_makes_a_frame() -> None:
    p = ready()
    frames: list[bytes] = []
    p.on_frame = lambda ram: frames.append(bytes(ram))
    command(p, 0x2A, b"\x00\x01\x00\x02")  # columns 1..2
    command(p, 0x2B, b"\x00\x01\x00\x01")  # row 1
    command(p, 0x2C, b"\xaa\x01\xaa\x02\xbb\x03")  # three pixels in a two-pixel window
    assert len(frames) == 1 and p.errors == 0
    row1 = frames[0][8:16]
    assert row1 == b"\x00\x00\xbb\x03\xaa\x02\x00\x00"  # the third wrote over the first
    command(p, 0x2C, b"\x01")  # half a pixel, then CS high
    assert p.errors == 1 and len(frames) == 1


def test_a_pixel_split_across_writes_lands_whole() -> None:
    p = ready()
    p.pin("cs", 0)
    p.pin("dc", 0)
    p.spi(b"\x2c")
    p.pin("dc", 1)
    for b in b"\x12\x34\x56":
        p.spi(bytes([b]))
    p.spi(b"\x78" + b"\x00" * 20)
    p.pin("cs", 1)
    assert p.ram[:4] == b"\x12\x34\x56\x78" and p.frames == 1 and p.errors == 0


def test_a_reset_puts_the_panel_to_sleep_and_dark() -> None:
    for reset in ("pin", "SWRESET"):
        p = ready()
        if reset == "pin":
            p.pin("rst", 0)
            p.pin("rst", 1)
        else:
            command(p, 0x01)
        assert not p.lit() and p.asleep and not p.display_on and p.colmod == 0x66
        command(p, 0x3A, b"\x55")
        command(p, 0x2C, b"\x12\x34")  # drawing while asleep still fills the memory
        assert p.ram[:2] == b"\x12\x34" and not p.lit()


@st.composite
def window_writes(draw: st.DrawFn) -> tuple[int, int, int, int, list[bytes]]:
    xs = draw(st.integers(0, 4))
    xe = draw(st.integers(xs, 4))
    ys = draw(st.integers(0, 3))
    ye = draw(st.integers(ys, 3))
    data = draw(st.binary(min_size=0, max_size=2 * 5 * 4 * 3))
    data = data[: len(data) & ~1]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return xs, xe, ys, ye, chunks


@settings(max_examples=300, deadline=None)
@given(window_writes())
def test_pixels_land_where_the_datasheet_puts_them(case: tuple[int, int, int, int, list[bytes]]) -> None:
    xs, xe, ys, ye, chunks = case
    p = ready(5, 4)
    command(p, 0x2A, bytes([0, xs, 0, xe]))
    command(p, 0x2B, bytes([0, ys, 0, ye]))
    p.pin("cs", 0)
    p.pin("dc", 0)
    p.spi(b"\x2c")
    p.pin("dc", 1)
    for chunk in chunks:
        p.spi(chunk)
    p.pin("cs", 1)
    # One pixel at a time, left to right, top to bottom, back to the start after the last.
    want = bytearray(5 * 4 * 2)
    data = b"".join(chunks)
    cells = [(x, y) for y in range(ys, ye + 1) for x in range(xs, xe + 1)]
    for k in range(len(data) // 2):
        x, y = cells[k % len(cells)]
        want[(y * 5 + x) * 2 : (y * 5 + x) * 2 + 2] = data[2 * k : 2 * k + 2]
    assert p.ram == want and p.errors == 0
    assert p.frames == (1 if len(data) // 2 >= len(cells) else 0)


events = st.one_of(
    st.tuples(st.sampled_from(["dc", "cs", "rst", "bl"]), st.integers(0, 1)),
    st.tuples(st.just("spi"), st.binary(max_size=40)),
    st.tuples(st.just("spi"), st.sampled_from([b"\x2a", b"\x2b", b"\x2c", b"\x3a", b"\x01", b"\x11"])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=60))
def test_any_wire_activity_is_survived(seq: list[tuple[str, Any]]) -> None:
    p = Panel(5, 4)
    p.on_frame = lambda ram: None
    for name, arg in seq:
        if name == "spi":
            p.spi(arg)
        else:
            p.pin(name, arg)
    assert len(p.ram) == 5 * 4 * 2 and p.errors >= 0
    assert 0 <= p.xs <= p.xe < 5 and 0 <= p.ys <= p.ye < 4


def test_color_is_byte_swapped_rgb565() -> None:
    assert st7789.color(0xFF, 0, 0) == 0x00F8
    assert st7789.color(0, 0xFF, 0) == 0xE007
    assert st7789.color(0, 0, 0xFF) == 0x1F00
    assert st7789.color(0xFF, 0xFF, 0xFF) == 0xFFFF


def test_to_rgb888_widens_each_channel() -> None:
    assert to_rgb888(b"\xf8\x00\x07\xe0\x00\x1f\x08\x41", 4, 1) == bytes(
        [255, 0, 0, 0, 255, 0, 0, 0, 255, 0x08, 0x08, 0x08]
    )


def test_a_frame_saves_as_png(tmp_path: Path) -> None:
    from PIL import Image

    p = ready(3, 2)
    command(p, 0x2C, b"\xf8\x00" + b"\x00\x00" * 4 + b"\x00\x1f")
    path = save_png(p.ram, 3, 2, tmp_path / "frame.png")
    with Image.open(path) as img:
        assert img.size == (3, 2)
        assert img.getpixel((0, 0)) == (255, 0, 0) and img.getpixel((2, 1)) == (0, 0, 255)
    with pytest.raises(ValueError, match="3x3"):
        save_png(p.ram, 3, 3, tmp_path / "bad.png")
