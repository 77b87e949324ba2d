"""The kiosk's bitmap font: ASCII and GB2312 level 1 (3,755 hanzi) from a CJK
font of Debian's packages, rendered by Pillow into 1-bit glyphs.

The file (firmware/kiosk/font.py reads it glyph by glyph, never whole):
    b"PKF1", width (u8), height (u8), count (u16 LE);
    count code points (u16 LE), sorted;
    count glyphs of height rows, each row (width + 7) // 8 bytes, most
    significant bit leftmost (framebuf's MONO_HLSB).
"""

from __future__ import annotations

import struct
from pathlib import Path

from .errors import UserError

# fonts-wqy-microhei (installed by `make setup`); fonts-noto-cjk works as well.
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
SIZE = 16
FONT_FILE = "/font16.bin"  # on the kiosk's filesystem
THRESHOLD = 128  # grey levels at or above it are ink


def charset() -> list[int]:
    """ASCII printable and GB2312 level 1 (rows 0xB0-0xD7), as code points, sorted."""
    cps = set(range(0x20, 0x7F))
    for row in range(0xB0, 0xD8):
        for col in range(0xA1, 0xFF):
            try:
                cps.add(ord(bytes((row, col)).decode("gb2312")))
            except UnicodeDecodeError:
                pass  # 0xD7FA-0xD7FE: unassigned
    return sorted(cps)


def find_font() -> Path:
    for p in FONT_PATHS:
        if p.exists():
            return p
    raise UserError("no CJK font: install Debian's fonts-wqy-microhei (make setup does) or fonts-noto-cjk")


def _font(font_path: Path, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path), size)


def render(ch: str, font_path: Path, size: int = SIZE, font=None) -> list[list[int]]:
    """One character as rows of 0/1, size x size: the kiosk's glyph and the tests' reference."""
    from PIL import Image, ImageDraw

    font = font or _font(font_path, size)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    # Placed by the font's own metrics: the same baseline for every glyph.
    draw.text((0, size - 2), ch, font=font, fill=255, anchor="ls")
    grey = img.tobytes()  # one byte per pixel, row after row
    return [[1 if grey[y * size + x] >= THRESHOLD else 0 for x in range(size)] for y in range(size)]


def pack(rows: list[list[int]]) -> bytes:
    out = bytearray()
    for row in rows:
        for i in range(0, len(row), 8):
            byte = 0
            for bit, v in enumerate(row[i : i + 8]):
                byte |= v << (7 - bit)
            out.append(byte)
    return bytes(out)


def make_font(font_path: Path | None = None, size: int = SIZE) -> bytes:
    path = font_path or find_font()
    cps = charset()
    head = b"PKF1" + struct.pack("<BBH", size, size, len(cps))
    index = struct.pack(f"<{len(cps)}H", *cps)
    font = _font(path, size)
    glyphs = b"".join(pack(render(chr(cp), path, size, font)) for cp in cps)
    return head + index + glyphs
