"""The kiosk's CJK font: made from Debian's font on the host, read glyph by glyph
by the firmware (CPython and the real MicroPython), drawn as the host renders it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from font import Font
from parkctl.font import charset, find_font, make_font, render

ROOT = Path(__file__).resolve().parents[1]

NAME = "张伟 Li Na"


@pytest.fixture(scope="module")
def font_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("font") / "font16.bin"
    p.write_bytes(make_font())
    return p


def _reference(text: str) -> tuple[int, list[str]]:
    """The line as the host renders it, glyph by glyph: (width, rows of 0/1).
    CJK takes a whole 16-pixel cell; ASCII, which the font draws narrower, its
    ink and a pixel (a space, a third of a cell)."""
    path = find_font()
    rows = [""] * 16
    for ch in text:
        g = render(ch, path)
        if ord(ch) >= 0x80:
            adv = 16
        else:
            ink = [x for row in g for x, v in enumerate(row) if v]
            adv = max(ink) + 2 if ink else 16 // 3
        for y in range(16):
            rows[y] += "".join(str(v) for v in g[y][:adv]).ljust(adv, "0")
    return len(rows[0]), rows


DRAW = """
from font import Font
from screens import Screens

class Line:
    # one line of pixels, 1 where drawn
    def __init__(self, w):
        self.w = w
        self.px = bytearray(w * 16)

    def pixel(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < 16:
            self.px[y * self.w + x] = 1

def draw(path, text):
    line = Line(400)
    w = Screens(line, Font(path)).text(0, 0, text, 1)
    return w, ["".join(str(line.px[y * 400 + x]) for x in range(w)) for y in range(16)]
"""


def _drawn(font_file: Path, text: str) -> tuple[int, list[str]]:
    """The line as the firmware draws it (CPython)."""
    scope: dict = {}
    exec(DRAW, scope)
    return scope["draw"](str(font_file), text)


def test_the_font_covers_ascii_and_gb2312_level_1(font_file: Path) -> None:
    cps = charset()
    assert len(cps) == 95 + 3755
    f = Font(str(font_file))
    assert (f.width, f.height, f.count) == (16, 16, len(cps))
    for ch in ("A", "~", "啊", "座", "张", "伟"):  # first and last of level 1, a name
        assert f.find(ord(ch)) >= 0, ch
    assert f.find(ord("龘")) < 0  # not in GB2312 level 1
    assert font_file.stat().st_size == 8 + 2 * len(cps) + 32 * len(cps)


def test_a_chinese_name_is_drawn_as_the_host_renders_it(font_file: Path) -> None:
    width, rows = _drawn(font_file, NAME)
    assert (width, rows) == _reference(NAME)
    assert "1" in "".join(rows)


def test_a_missing_character_is_a_visible_box_not_an_error(font_file: Path) -> None:
    f = Font(str(font_file))
    box = bytes(f.glyph("龘"))
    assert f.missing == 1
    assert box[2:4] == b"\xff\xff" and box[28:30] == b"\xff\xff"  # top and bottom edges
    assert bytes(f.glyph("\U0001f600")) == box  # outside the BMP too
    assert _drawn(font_file, "张龘")[0] == 32  # the box takes a whole cell


def test_the_real_micropython_reads_the_same_glyphs(font_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "draw.py"  # a file: this interpreter build crashes on long -c arguments
    script.write_text(DRAW + f"w, rows = draw({str(font_file)!r}, {NAME!r})\nprint(w, ' '.join(rows))\n")
    micropython = str(Path(sys.executable).parent / "micropython")
    r = subprocess.run(
        [micropython, "-X", "heapsize=100k", str(script)],
        capture_output=True,
        text=True,
        env={"MICROPYPATH": str(ROOT / "firmware" / "kiosk")},
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    w, *rows = r.stdout.split()
    assert (int(w), rows) == _reference(NAME)


def test_parkctl_build_kiosk_puts_the_font_on_the_board(tmp_path: Path) -> None:
    import shutil

    from parkctl.build import build, read_image

    fw = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware" / "lib", fw / "lib")
    shutil.copytree(ROOT / "firmware" / "kiosk", fw / "kiosk")
    b = build("kiosk", tmp_path / "out", chip="vboard", root=fw)
    files = read_image(b.image.read_bytes(), b.chip)
    assert files["/font16.bin"] == make_font()
    assert b.manifest["files"]["/font16.bin"]


class Canvas:
    """A frame buffer that keeps RGB565 pixels (framebuf's fill, fill_rect, pixel)."""

    def __init__(self, w: int = 240, h: int = 320) -> None:
        self.w, self.h = w, h
        self.px = [0] * (w * h)

    def fill(self, c: int) -> None:
        self.px = [c] * (self.w * self.h)

    def fill_rect(self, x: int, y: int, w: int, h: int, c: int) -> None:
        for yy in range(max(0, y), min(self.h, y + h)):
            for xx in range(max(0, x), min(self.w, x + w)):
                self.px[yy * self.w + xx] = c

    def pixel(self, x: int, y: int, c: int) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            self.px[y * self.w + x] = c


def test_the_welcome_screen_draws_the_chinese_name_as_the_host_renders_it(font_file: Path) -> None:
    from screens import BLACK, GREEN, WHITE, Screens

    canvas = Canvas()
    s = Screens(canvas, Font(str(font_file)), site="G60 park")
    x, y = s.welcome("张伟", "08:59")
    path = find_font()
    for k, ch in enumerate("张伟"):
        ref = render(ch, path)
        for yy in range(16):
            for xx in range(16):
                want = WHITE if ref[yy][xx] else BLACK
                assert canvas.px[(y + yy) * 240 + x + 16 * k + xx] == want, (ch, xx, yy)
    assert canvas.px[5 * 240 + 2] == GREEN  # the header bar
    ink = sum(1 for p in canvas.px if p == WHITE)
    assert ink > 2 * 30  # the name and the time, not an empty frame
