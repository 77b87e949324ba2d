# The virtual ESP32's `esp32` module: MicroPython's `esp32.Partition`, with the
# OTA interface (get_next_update, set_boot, mark_app_valid_cancel_rollback) and
# the second-stage bootloader's choice of app at every reset, as ESP-IDF does it
# with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (MicroPython's sdkconfig.base sets it).
#
# The board's partition table is MicroPython's: partitions-4MiBplus.csv (nvs,
# phy_init, one factory app, "vfs" added at run time up to the end of the flash),
# or, for a board flashed with the OTA variant, partitions-4MiB-ota.csv on the
# ESP32 (partitions-8MiBplus-ota.csv on the S3): otadata and two app slots.
# Only the OTA table's app slots and otadata hold bytes here: they live in a file
# of their own beside the littlefs image (OtaFlash, at their flash addresses),
# so that they outlive resets, power cuts and the process, like the image. The
# filesystem stays the littlefs image the runner mounts; the other partitions
# can be found and described, not read or written (OSError EOPNOTSUPP).
#
# docs/sim.md ("The MicroPython image and OTA") says what is modelled and what not.

import io  # io.open: the host's files (the simulator gives the firmware's `open` the board's flash)

import _hub

TYPE_APP = 0
TYPE_DATA = 1
_ANY = 255
_BLOCK = 4096
_PAGE = 256  # a program command of the flash chip: the ESP-IDF driver splits writes into them

# ESP-IDF's error codes, raised as MicroPython's check_esp_err does: OSError(-code, name).
_ERRORS = {
    -1: "ESP_FAIL",
    0x102: "ESP_ERR_INVALID_ARG",
    0x104: "ESP_ERR_INVALID_SIZE",
    0x105: "ESP_ERR_NOT_FOUND",
    0x1503: "ESP_ERR_OTA_VALIDATE_FAILED",
}


def _esp_err(code):
    return OSError(-code, _ERRORS[code])


# (label, type, subtype, address, size): MicroPython's tables (ports/esp32/*.csv).
# "vfs" is what main.c registers from the end of the last partition to the end of flash.
_PLAIN = {
    "esp32": (
        ("nvs", 1, 0x02, 0x9000, 0x6000),
        ("phy_init", 1, 0x01, 0xF000, 0x1000),
        ("factory", 0, 0x00, 0x10000, 0x1F0000),
        ("vfs", 1, 0x81, 0x200000, 0x200000),
    ),
    "esp32s3": (
        ("nvs", 1, 0x02, 0x9000, 0x6000),
        ("phy_init", 1, 0x01, 0xF000, 0x1000),
        ("factory", 0, 0x00, 0x10000, 0x1F0000),
        ("vfs", 1, 0x81, 0x200000, 0x600000),
    ),
}
_OTA = {
    "esp32": (
        ("nvs", 1, 0x02, 0x9000, 0x4000),
        ("otadata", 1, 0x00, 0xD000, 0x2000),
        ("phy_init", 1, 0x01, 0xF000, 0x1000),
        ("ota_0", 0, 0x10, 0x10000, 0x180000),
        ("ota_1", 0, 0x11, 0x190000, 0x180000),
        ("vfs", 1, 0x81, 0x310000, 0xF0000),
    ),
    "esp32s3": (
        ("nvs", 1, 0x02, 0x9000, 0x4000),
        ("otadata", 1, 0x00, 0xD000, 0x2000),
        ("phy_init", 1, 0x01, 0xF000, 0x1000),
        ("ota_0", 0, 0x10, 0x10000, 0x270000),
        ("ota_1", 0, 0x11, 0x280000, 0x270000),
        ("vfs", 1, 0x81, 0x4F0000, 0x310000),
    ),
}
# The chip id in an app image's extended header (esp_chip_id_t).
CHIP_IDS = {"esp32": 0, "esp32s3": 9}

_OTADATA = 0xD000
# esp_ota_img_states_t
_NEW = 0
_PENDING_VERIFY = 1
_VALID = 2
_INVALID = 3
_ABORTED = 4
_UNDEFINED = 0xFFFFFFFF


def flash_end(chip):
    """Bytes the OTA flash file holds: up to the end of the last app slot."""
    t = _OTA[chip]
    return t[4][3] + t[4][4]


def make_flash(path, chip, image=None):
    """A board's flash as `parkctl flash --chip esp32-ota` leaves it: erased
    otadata and slots, `image` (bytes: an app image) in ota_0, as esptool writes
    the firmware there; the bootloader then boots ota_0 (and writes otadata)."""
    ff = b"\xff" * _BLOCK
    with io.open(path, "wb") as f:
        for _ in range(flash_end(chip) // _BLOCK):
            f.write(ff)
        if image is not None:
            f.seek(_OTA[chip][3][3])
            f.write(image)


def _crc32(data):
    # ESP-IDF's otadata CRC: esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4), zlib's CRC-32
    # started from 0xFFFFFFFF (four bytes: no table is worth its RAM).
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _u32(b, at):
    return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)


class OtaFlash:
    """The part of a board's flash that holds its MicroPython images and otadata,
    in a file (flash addresses from 0, up to the end of ota_1), and what the
    bootloader decided at the last reset (`running`: the slot, 0 or 1)."""

    def __init__(self, path, board):
        self.f = io.open(path, "r+b")
        self.board = board
        self.table = _OTA[board.chip]
        self.page = bytearray(_PAGE)
        self.one = bytearray(1)
        self.running = 0
        self.boot_note = ""

    # --- the chip's operations (NOR: a program only clears bits) ---------

    def read(self, addr, buf):
        self.f.seek(addr)
        self.f.readinto(buf)

    def _op(self, erase, n):
        w = self.board.world
        return w.flash_op(erase, n) if hasattr(w, "flash_op") else n

    def _stop_if_cut(self):
        w = self.board.world
        if not getattr(w, "powered", True):
            raise _hub.PowerLoss()

    def _tear(self, at, erase, value):
        w = self.board.world
        if getattr(w, "torn", False):
            w.torn = False
            one = self.one
            self.f.seek(at)
            self.f.readinto(one)
            bits = w.tear_bits
            one[0] = (one[0] | bits) if erase else (one[0] & (value | bits))
            self.f.seek(at)
            self.f.write(one)

    def program(self, addr, data):
        """esp_partition_write: page by page, each a program command a power cut can tear."""
        mv = memoryview(data)
        done = 0
        while done < len(data):
            n = min(_PAGE - (addr + done) % _PAGE, len(data) - done)
            k = self._op(False, n)
            page = memoryview(self.page)[:k]
            if k:
                self.f.seek(addr + done)
                self.f.readinto(page)
                for i in range(k):
                    page[i] &= mv[done + i]
                self.f.seek(addr + done)
                self.f.write(page)
            if k < n:
                self._tear(addr + done + k, False, mv[done + k])
            self._stop_if_cut()
            done += n
        self.f.flush()

    def erase(self, addr):
        """One 4 KiB sector erase."""
        k = self._op(True, _BLOCK)
        if k:
            for i in range(_PAGE):
                self.page[i] = 0xFF
            self.f.seek(addr)
            left = k
            while left > 0:
                self.f.write(memoryview(self.page)[: min(left, _PAGE)])
                left -= _PAGE
        if k < _BLOCK:
            self._tear(addr + k, True, 0xFF)
        self._stop_if_cut()
        self.f.flush()

    # --- otadata ---------------------------------------------------------

    def _entry(self, i):
        """(seq, state) of otadata sector i, or None when it holds no valid entry."""
        b = bytearray(32)
        self.read(_OTADATA + i * _BLOCK, b)
        seq = _u32(b, 0)
        if seq == 0xFFFFFFFF or _crc32(b[0:4]) != _u32(b, 28):
            return None
        return seq, _u32(b, 24)

    def _write_entry(self, i, seq, state):
        b = bytearray(b"\xff" * 32)
        for k in range(4):
            b[k] = (seq >> (8 * k)) & 0xFF
            b[24 + k] = (state >> (8 * k)) & 0xFF
        crc = _crc32(b[0:4])
        for k in range(4):
            b[28 + k] = (crc >> (8 * k)) & 0xFF
        self.erase(_OTADATA + i * _BLOCK)
        self.program(_OTADATA + i * _BLOCK, b)

    def _active(self):
        """The otadata sector in force (the higher sequence of the usable ones; on
        a tie the second, as bootloader_common_select_otadata does), or -1."""
        best = -1
        best_seq = -1
        for i in (0, 1):
            e = self._entry(i)
            if e is not None and e[1] not in (_INVALID, _ABORTED) and e[0] >= best_seq:
                best, best_seq = i, e[0]
        return best

    # --- the bootloader --------------------------------------------------

    def boot(self):
        """What the second-stage bootloader does at every reset
        (bootloader_utility_get_selected_boot_partition, then load_boot_image):
        an entry still on trial (PENDING_VERIFY) from the boot before is marked
        ABORTED, so the slot before it boots again (the rollback); the entry in
        force, if NEW, becomes PENDING_VERIFY and its slot boots on trial; with
        no entry in force, ota_0 is tried first; a slot whose image does not
        verify is skipped for the other. With otadata as flashed (both sectors
        erased), the slot that boots is written into sector 0 as VALID."""
        self.boot_note = ""
        initial = True
        for i in (0, 1):
            e = self._entry(i)
            if e is None:
                continue
            initial = False
            if e[1] == _PENDING_VERIFY:
                # Not confirmed before this reset: roll back.
                self._write_entry(i, e[0], _ABORTED)
                self.boot_note = "rollback: ota_%d was not marked valid" % ((e[0] - 1) % 2)
        a = self._active()
        first = 0
        if a >= 0:
            seq, st = self._entry(a)
            first = (seq - 1) % 2
            if st == _NEW:
                self._write_entry(a, seq, _PENDING_VERIFY)
                self.boot_note = "ota_%d boots on trial" % first
        if self.boot_note and hasattr(self.board.world, "note"):
            self.board.world.note("reset", "bootloader: " + self.boot_note)
        for s in (first, 1 - first):
            if self.verify(s) is None:
                self.running = s
                if initial:
                    self._write_entry(0, s + 1, _VALID)  # set_actual_ota_seq
                return
        # No app to boot: the bootloader prints and loops; the simulation cannot run firmware.
        raise RuntimeError("no bootable app in ota_0 or ota_1")

    def slot_range(self, slot):
        t = self.table[3 + slot]
        return t[3], t[4]

    def verify(self, slot):
        """esp_image_verify, as esp_ota_set_boot_partition and the bootloader run it:
        None when the image in `slot` is good, else why not."""
        addr, size = self.slot_range(slot)
        hdr = bytearray(24)
        self.read(addr, hdr)
        if hdr[0] != 0xE9:
            return "no image header (magic %#x)" % hdr[0]
        if hdr[12] | (hdr[13] << 8) != CHIP_IDS[self.board.chip]:
            return "image for chip id %d" % (hdr[12] | (hdr[13] << 8))
        nseg = hdr[1]
        if not 0 < nseg <= 16:
            return "bad segment count %d" % nseg
        import hashlib

        h = hashlib.sha256(hdr)
        pos = 24
        check = 0xEF
        buf = bytearray(_BLOCK)
        for _ in range(nseg):
            sh = bytearray(8)
            self.read(addr + pos, sh)
            h.update(sh)
            n = _u32(sh, 4)
            pos += 8
            if n % 4 or pos + n + 33 > size:
                return "segment runs past the partition"
            left = n
            while left:
                k = min(left, _BLOCK)
                mv = memoryview(buf)[:k]
                self.read(addr + pos, mv)
                h.update(mv)
                for i in range(k):
                    check ^= mv[i]
                pos += k
                left -= k
        pad = 15 - pos % 16  # the checksum byte is the last of a 16-byte row
        tail = bytearray(pad + 1)
        self.read(addr + pos, tail)
        h.update(tail)
        if tail[pad] != check:
            return "checksum"
        pos += pad + 1
        if hdr[23] == 1:  # hash_appended
            want = bytearray(32)
            self.read(addr + pos, want)
            if h.digest() != bytes(want):
                return "SHA-256"
        return None


def _ota():
    return getattr(_hub.board, "ota", None)


def attach(board, path):
    """Give `board` the OTA partition table, its slots and otadata in the file at
    `path` (make_flash makes one), and run the bootloader as at power-on."""
    board.ota = OtaFlash(path, board)
    board.ota.boot()


def _table():
    ota = _ota()
    return ota.table if ota is not None else _PLAIN[_hub.board.chip]


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = TYPE_APP
    TYPE_DATA = TYPE_DATA

    def __init__(self, id, block_size=_BLOCK):
        t = _table()
        if isinstance(id, int):
            if id not in (0, 1):
                raise ValueError
            e = _apps(t)[_boot_slot(id)]
        else:
            e = None
            for want in (TYPE_APP, TYPE_DATA):
                for p in t:
                    if p[1] == want and p[0] == id:
                        e = e or p
            if e is None:
                raise OSError(2)  # MP_ENOENT
        self._e = e
        self.block_size = block_size

    def __repr__(self):
        e = self._e
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            e[1],
            e[2],
            e[3],
            e[4],
            e[0],
        )

    def __eq__(self, other):
        return isinstance(other, Partition) and other._e is self._e

    @staticmethod
    def find(type=TYPE_APP, subtype=_ANY, label=None, block_size=_BLOCK):
        found = []
        for p in _table():
            if p[1] == type and (subtype == _ANY or p[2] == subtype) and (label is None or p[0] == label):
                found.append(Partition(p[0], block_size))
        return found

    def info(self):
        e = self._e
        return (e[1], e[2], e[3], e[4], e[0], False)

    def _where(self, block, off, n):
        e = self._e
        ota = _ota()
        if ota is None or e[0] not in ("otadata", "ota_0", "ota_1"):
            raise OSError(95, "partition %s is not modelled by the simulator" % e[0])
        at = block * self.block_size + off
        if at < 0 or at + n > e[4]:
            raise _esp_err(0x104)
        return ota, e[3] + at

    def readblocks(self, block, buf, off=0):
        ota, addr = self._where(block, off, len(buf))
        ota.read(addr, buf)

    def writeblocks(self, block, buf, off=None):
        ota, addr = self._where(block, 0 if off is None else off, len(buf))
        if self._e[0] == _apps(ota.table)[ota.running][0]:
            # ESP-IDF refuses to write the app it runs from; with its default
            # CONFIG_SPI_FLASH_WRITING_DANGEROUS_REGIONS_ABORTS that is an abort: a panic, a reset.
            _hub.board.world.note("reset", "panic: a write to the running app's partition")
            raise _hub.Reset(_hub.HARD_RESET)
        if off is None:
            # The simple block-device write erases its blocks first (4 KiB blocks).
            a = addr - addr % _BLOCK
            while a < addr + len(buf):
                ota.erase(a)
                a += _BLOCK
        ota.program(addr, buf)

    def ioctl(self, op, arg):
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self._e[4] // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            if self.block_size != _BLOCK:
                return -22
            ota, addr = self._where(arg, 0, _BLOCK)
            if self._e[0] == _apps(ota.table)[ota.running][0]:
                _hub.board.world.note("reset", "panic: an erase of the running app's partition")
                raise _hub.Reset(_hub.HARD_RESET)
            ota.erase(addr)
            return 0
        return None

    def set_boot(self):
        ota = _ota()
        e = self._e
        if e[1] != TYPE_APP:
            raise _esp_err(0x102)
        if ota is None:
            # The factory app of the plain table: with otadata absent there is nothing to set.
            raise _esp_err(0x105)
        slot = 0 if e[0] == "ota_0" else 1
        if ota.verify(slot) is not None:
            raise _esp_err(0x1503)
        a = ota._active()
        if a < 0:
            ota._write_entry(0, slot + 1, _NEW)  # otadata as flashed (erased): the first entry
            return
        # esp_rewrite_ota_data: the least sequence >= the one in force that names
        # this slot ((seq - 1) % 2), in the sector not in force, so that a cut
        # leaves the old entry standing.
        seq = ota._entry(a)[0]
        new = (slot + 1) % 2
        while new < seq:
            new += 2
        ota._write_entry(1 - a, new, _NEW)

    def get_next_update(self):
        ota = _ota()
        if ota is None:
            raise OSError(2)  # esp_ota_get_next_update_partition found no OTA slot
        apps = _apps(ota.table)
        return Partition(apps[1 - ota.running][0])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        # esp_ota_mark_app_valid_cancel_rollback: the entry in force becomes VALID
        # whatever it was (NEW too: called before the reset into a new image, it
        # takes that image's trial away); its own sector is erased and written.
        ota = _ota()
        if ota is None:
            raise _esp_err(0x105)  # no otadata partition
        a = ota._active()
        if a < 0:
            raise _esp_err(-1)  # "Running firmware is factory": otadata as flashed
        seq, st = ota._entry(a)
        if st != _VALID:
            ota._write_entry(a, seq, _VALID)


def _apps(t):
    return [p for p in t if p[1] == TYPE_APP]


def _boot_slot(which):
    ota = _ota()
    if ota is None:
        return 0
    if which == Partition.RUNNING:
        return ota.running
    a = ota._active()  # BOOT: what otadata says the next reset boots
    return (ota._entry(a)[0] - 1) % 2 if a >= 0 else 0
