# Runs inside MicroPython (unix port): what checking a signed release costs a
# device (firmware/lib/release.py, p256.py; docs/updates.md).
#   MICROPYPATH=... micropython -X heapsize=N bench/mp_release.py DIR MODE
# DIR holds a release (release.json, release.sig, files/) and release.pub.
# MODE "time": prints verify_us check_us files_us code_bytes left_bytes, where
#   left_bytes is the heap still in use once the modules are dropped again,
#   between two lines of micropython.qstr_info() (the name table);
# MODE "check": one whole check (signature, manifest, every file), then "ok";
# MODE "none": the same script without the check, for the heap it needs itself.
import binascii
import gc
import sys
import time

import micropython

folder, mode = sys.argv[1], sys.argv[2]
with open(folder + "/release.json", "rb") as f:
    data = f.read()
with open(folder + "/release.sig") as f:
    sig = binascii.unhexlify(f.read().strip())
if mode == "time":
    micropython.qstr_info()  # the name table before (a "qstr pool:" line)
gc.collect()
base = gc.mem_alloc()
if mode != "none":
    import release

    gc.collect()
    code = gc.mem_alloc() - base
    key = release.load_key(folder + "/release.pub")
    if mode == "check":
        m = release.check_manifest(data, sig, key, "lamp", "vboard", "1.0", 1 << 21)
        release.check_files(folder + "/files", m)
    else:
        import hashlib

        N = 10
        digest = hashlib.sha256(data).digest()
        start = time.ticks_us()
        for i in range(N):
            assert release.p256.verify(key, digest, sig)
        verify_us = time.ticks_diff(time.ticks_us(), start) // N
        start = time.ticks_us()
        for i in range(N):
            m = release.check_manifest(data, sig, key, "lamp", "vboard", "1.0", 1 << 21)
        check_us = time.ticks_diff(time.ticks_us(), start) // N
        start = time.ticks_us()
        release.check_files(folder + "/files", m)
        files_us = time.ticks_diff(time.ticks_us(), start)
        del m, key, release, hashlib, digest
        sys.modules.pop("release")
        sys.modules.pop("p256")
        gc.collect()
        print("%d %d %d %d %d" % (verify_us, check_us, files_us, code, gc.mem_alloc() - base))
        micropython.qstr_info()  # and after: the names the modules brought stay
print("ok")
