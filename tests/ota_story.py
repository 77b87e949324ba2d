# An image update on the virtual ESP32, told as what a technician would see:
# run by tests/test_esp32_ota.py in CPython (sim/cpython.py's module system) and
# inside the real MicroPython interpreter, which must tell the same story.
# Each step adds a line "what: what was seen" to the list it returns.


def _write(fwimage, path, size, sha, chunk=1000):
    """Streams the image file at `path` to the next slot in chunks, as the link delivers it."""
    w = fwimage.Writer(size, sha)
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            w.write(b)
    return w.finish()


def _refused(fn, *args):
    try:
        fn(*args)
    except OSError as e:  # (str() of an OSError differs between the runtimes)
        return "OSError: %s" % " ".join(str(a) for a in e.args)
    except Exception as e:  # the reason is the observation
        return "%s: %s" % (type(e).__name__, e)
    return "accepted"


def run(hub, esp32, fwimage, board, images):
    """images: name -> (path, size, sha256 hex) of "v2", "v3", "s3" (an ESP32-S3
    image). Returns the lines seen."""
    seen = []

    def note(what, value):
        seen.append("%s: %s" % (what, value))

    def reset():
        board.reset(hub.SOFT_RESET)
        if board.ota.boot_note:
            note("bootloader", board.ota.boot_note)

    Partition = esp32.Partition
    note("boots", fwimage.version())
    note("running slot", Partition(Partition.RUNNING).info()[4])
    # The first boot after the flashing found otadata erased and wrote it (ota_0,
    # valid), as ESP-IDF's bootloader does: nothing is on trial, confirming is harmless.
    note("mark valid", _refused(Partition.mark_app_valid_cancel_rollback))
    note("confirm", fwimage.confirm())
    p, n, sha = images["v2"]
    note("written", _write(fwimage, p, n, sha))
    note("still runs", fwimage.version())
    note("confirm before the reset", fwimage.confirm())  # must not take the trial away
    note("next boot", Partition(Partition.BOOT).info()[4])
    reset()
    note("after reset runs", fwimage.version())
    reset()  # not confirmed: the bootloader rolls back
    note("after unconfirmed reset runs", fwimage.version())
    note("written again", _write(fwimage, p, n, sha))
    reset()
    note("confirm", fwimage.confirm())
    note("confirm again", fwimage.confirm())
    reset()
    note("confirmed, after reset runs", fwimage.version())
    reset()
    note("and after another", fwimage.version())
    # Refusals: the running image stays, and boots.
    p3, n3, sha3 = images["v3"]
    note("wrong sha256", _refused(_write, fwimage, p3, n3, "00" * 32))
    ps, ns, shas = images["s3"]
    note("other chip", _refused(_write, fwimage, ps, ns, shas))
    note("too big", _refused(fwimage.Writer, 4 * 1024 * 1024, sha3))
    note("wrong size", _refused(_write, fwimage, p3, n3 - 1, sha3))
    reset()
    note("after refusals runs", fwimage.version())
    # A power cut in the middle of writing the image (a page program torn).
    world = board.world
    world.cuts_armed.append([40, world.now_us + 1000000])
    try:
        _write(fwimage, p3, n3, sha3)
        note("cut", "never came")
    except hub.PowerLoss:
        note("cut", "the power went while the image was written")
    world.set_power(True)
    board.power_on()
    note("after the cut runs", fwimage.version())
    nxt = Partition(Partition.RUNNING).get_next_update()
    note("set_boot on the cut image", _refused(nxt.set_boot))
    reset()
    note("after another reset runs", fwimage.version())
    note("then written whole", _write(fwimage, p3, n3, sha3))
    reset()
    note("runs", fwimage.version())
    fwimage.confirm()
    # A cut while set_boot writes otadata (its erase, then its program): the entry
    # in force stands, and so does the image it names.
    p2, n2, sha2 = images["v2"]
    # finish() writes the last block (an erase, 16 page programs), then otadata's
    # sector: its erase is the 18th operation, its program the 19th.
    for op in (18, 19):
        w = fwimage.Writer(n2, sha2)
        with open(p2, "rb") as f:
            w.write(f.read())
        world.cuts_armed.append([op, world.now_us + 1000000])
        try:
            w.finish()
            note("cut in set_boot", "never came")
        except hub.PowerLoss:
            pass
        world.set_power(True)
        board.power_on()
        note("cut in set_boot, then runs", fwimage.version())
    # The running image's slot cannot be written: the flash driver aborts, the chip resets.
    try:
        Partition(Partition.RUNNING).ioctl(6, 0)
        note("erasing the running slot", "allowed")
    except hub.Reset as r:
        note("erasing the running slot", "reset, cause %d" % r.cause)
        board.reset(r.cause)
    note("then runs", fwimage.version())
    # A board flashed with the plain table (one factory app) has nowhere to put an image.
    ota, board.ota = board.ota, None
    note("plain table", _refused(fwimage.Writer, n3, sha3))
    note("plain table, mark valid", _refused(Partition.mark_app_valid_cancel_rollback))
    note("plain table, confirm", fwimage.confirm())
    board.ota = ota
    return seen
