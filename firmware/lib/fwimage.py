# A new MicroPython image, written into the board's next OTA slot while the old
# one runs, and confirmed after the reset into it. Loaded only while an image
# update runs (and by the health check that confirms it): nothing stays resident.
#
# On a board flashed with an OTA partition table (parkctl flash --chip esp32-ota),
# the update goes through MicroPython's esp32.Partition: the image streams into
# get_next_update() one 4 KiB block at a time (erased, then written), its SHA-256
# is checked against the one announced, and set_boot() makes it the next boot
# (ESP-IDF checks the image once more: header, checksum, its own SHA-256). The
# bootloader boots it once on trial: unless confirm() marks it valid before the
# next reset, the bootloader goes back to the previous image by itself.
#
# The hook for the health check (safe mode, the trial of a release): call
# fwimage.confirm() once the app is healthy after a boot; it changes nothing when
# the running image is not on trial, nor while a new image waits for the reset,
# so calling it at every healthy boot is right.

import esp32
import hashlib
from micropython import const

_BLOCK = const(4096)
_MAGIC = const(0xE9)
# ESP-IDF's esp_app_desc_t starts the first segment: after the 24-byte image
# header and the segment's 8-byte header; its version string is 16 bytes in.
_VERSION_AT = const(48)
_NAME = ("esp32", "esp32s2", "esp32c3", "", "", "esp32c6", "", "", "", "esp32s3")


class ImageError(Exception):
    """An image refused: the message says why. The running image is untouched."""


def _chip(b):
    c = b[12] | (b[13] << 8)
    return _NAME[c] if c < len(_NAME) and _NAME[c] else "chip id %d" % c


def version(part=None):
    """The version string of the image in `part` (the running one by default), as
    esp_app_desc_t holds it; "" when it has none."""
    if part is None:
        part = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore  # (the stubs allow only a label)
    b = bytearray(32)
    part.readblocks(0, b, _VERSION_AT)
    n = 0
    while n < 32 and b[n] not in (0, 0xFF):
        n += 1
    return bytes(b[:n]).decode()


class Writer:
    """Streams one image of `size` bytes whose SHA-256 is `sha256` (hex) into the
    next OTA slot: write(chunk) as the chunks come, any length, then finish().
    Nothing holds the whole image: one 4 KiB block is buffered."""

    def __init__(self, size, sha256):
        run = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore  # (the stubs allow only a label)
        try:
            self.part = run.get_next_update()
        except OSError:
            raise ImageError(
                "no OTA partition table on this board: flash it with one (parkctl flash --chip esp32-ota)"
            )
        room = self.part.info()[3]
        if size <= 24 or size > room:
            raise ImageError(
                "an image of %d bytes does not fit the %d bytes of %s" % (size, room, self.part.info()[4])
            )
        self.size = size
        self.want = sha256.lower()
        self.h = hashlib.sha256()
        self.buf = bytearray(_BLOCK)
        self.fill = 0
        self.block = 0
        self.got = 0
        self.own = bytearray(14)
        run.readblocks(0, self.own)  # the running image's header: its chip id

    def write(self, chunk):
        if self.got + len(chunk) > self.size:
            raise ImageError("more than the %d bytes announced" % self.size)
        self.h.update(chunk)
        self.got += len(chunk)
        mv = memoryview(chunk)
        while len(mv):
            k = min(len(mv), _BLOCK - self.fill)
            self.buf[self.fill : self.fill + k] = mv[:k]
            self.fill += k
            mv = mv[k:]
            if self.fill == _BLOCK:
                self._flush()

    def _flush(self):
        b = self.buf
        if self.block == 0:
            # Refused before anything is written when the header is not an image
            # for this chip.
            if b[0] != _MAGIC:
                raise ImageError("not an ESP32 app image (its first byte is %#x, not 0xe9)" % b[0])
            if b[12] != self.own[12] or b[13] != self.own[13]:
                raise ImageError("an image for %s; this board is %s" % (_chip(b), _chip(self.own)))
        for i in range(self.fill, _BLOCK):
            b[i] = 0xFF
        self.part.ioctl(6, self.block)  # erase, then write at an offset (no second erase)
        self.part.writeblocks(self.block, b, 0)
        self.block += 1
        self.fill = 0

    def finish(self):
        """The whole image is written: check it and make it the next boot. Returns
        its version string."""
        if self.got != self.size:
            raise ImageError("%d bytes of the %d announced" % (self.got, self.size))
        if self.fill:
            if self.block == 0 and self.fill < 14:
                raise ImageError("not an ESP32 app image (too short)")
            self._flush()
        got = self.h.digest()
        hexd = "".join("%02x" % x for x in got)
        if hexd != self.want:
            raise ImageError("sha256 %s, not the %s announced" % (hexd, self.want))
        try:
            self.part.set_boot()
        except OSError as e:
            raise ImageError("the bootloader would not boot it (%s)" % (e.args[-1],))
        return version(self.part)


def confirm():
    """The running image is healthy: cancel the bootloader's rollback (the hook
    for the health check). True when otadata now says so; False when there was
    nothing to confirm: a board with the plain table (ESP_ERR_NOT_FOUND), otadata
    as flashed (ESP_FAIL: the first image boots without a trial), or a new image
    waiting for the reset, whose trial ESP-IDF would take away (it marks the
    entry in force valid, whatever it is)."""
    P = esp32.Partition
    if P(P.BOOT).info()[4] != P(P.RUNNING).info()[4]:  # type: ignore  # (the stubs allow only a label)
        return False
    try:
        P.mark_app_valid_cancel_rollback()
    except OSError:
        return False
    return True
