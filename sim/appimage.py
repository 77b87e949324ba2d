"""ESP-IDF app images for the simulated OTA slots (sim/vesp32/esp32.py): the
layout of a real MicroPython .app-bin, filled with made-up code.

An image is ESP-IDF's: a 24-byte header (magic 0xE9, the segment count, the
entry address, then the extended header: the chip id at byte 12, `hash_appended`
at byte 23), segments (load address, length, data), zero padding up to a 16-byte
row whose last byte is the checksum (0xEF XOR every data byte), then the SHA-256
of all that. The first segment starts with esp_app_desc_t: its magic 0xABCD5432,
the secure version, two reserved words, then the 32-byte version string (byte 48
of the image) and the 32-byte project name."""

from __future__ import annotations

import hashlib
import struct

CHIP_IDS = {"esp32": 0, "esp32s3": 9}
APP_DESC_MAGIC = 0xABCD5432


def app_desc(version: str, project: str = "micropython") -> bytes:
    d = struct.pack("<III I", APP_DESC_MAGIC, 0, 0, 0)
    d += version.encode()[:31].ljust(32, b"\0") + project.encode()[:31].ljust(32, b"\0")
    d += b"00:00:00".ljust(16, b"\0") + b"Dec  8 2026".ljust(16, b"\0") + b"v5.4.1".ljust(32, b"\0")
    return d.ljust(256, b"\0")


def make_app_image(version: str, chip: str = "esp32", size: int = 24 * 1024, seed: int = 1) -> bytes:
    """An image of about `size` bytes for `chip` whose esp_app_desc_t says `version`."""
    fill = hashlib.sha256(b"%d %s" % (seed, version.encode())).digest()
    body = (fill * (size // 32 + 1))[: max(0, size - 256 - 64) // 4 * 4]
    segments = [
        (0x3F400020, app_desc(version) + body[: len(body) // 2 // 4 * 4]),
        (0x40080000, body[len(body) // 2 // 4 * 4 :]),
    ]
    header = bytearray(24)
    header[0] = 0xE9
    header[1] = len(segments)
    header[2] = 2  # DIO
    header[3] = 0x20  # 40 MHz, 4 MiB
    struct.pack_into("<I", header, 4, 0x40081000)
    header[8] = 0xEE
    struct.pack_into("<H", header, 12, CHIP_IDS[chip])
    header[23] = 1  # hash appended
    out = bytearray(header)
    check = 0xEF
    for addr, data in segments:
        out += struct.pack("<II", addr, len(data)) + data
        for b in data:
            check ^= b
    out += bytes(15 - len(out) % 16) + bytes((check,))
    out += hashlib.sha256(out).digest()
    return bytes(out)
