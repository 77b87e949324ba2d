"""The kiosk display's frames as image files: the virtual panel's memory
(sim/panel.py, big-endian RGB565) written as PNG for people and CI artefacts."""

from __future__ import annotations

from pathlib import Path

from sim.panel import to_rgb888


def save_png(ram: bytes | bytearray | memoryview, width: int, height: int, path: str | Path) -> Path:
    """Writes the panel memory `ram` (width*height pixels) to `path` as an RGB PNG."""
    from PIL import Image  # only when a frame is saved: the CLI starts without it

    if len(ram) != width * height * 2:
        raise ValueError(f"{len(ram)} bytes are not a {width}x{height} RGB565 frame")
    path = Path(path)
    Image.frombytes("RGB", (width, height), to_rgb888(ram, width, height)).save(path, format="PNG")
    return path
