# Helpers for tests that run on CPython and inside MicroPython (see docs/testing.md).
# MicroPython has no pytest, so these stand in for pytest.raises, pytest.skip and
# pytest.approx, with nothing MicroPython lacks.

import sys

MICROPYTHON = sys.implementation.name == "micropython"


class Skipped(Exception):
    pass


def skip(reason):
    raise Skipped(reason)


def raises(exc, fn, *args, **kwargs):
    """Call fn; fail unless it raises `exc`. Returns the exception, for checking its text."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc.__name__))


def near(a, b, tol):
    """abs(a - b) <= tol, with both values in the message when it is not."""
    if abs(a - b) > tol:
        raise AssertionError("%r and %r differ by %r, more than %r" % (a, b, abs(a - b), tol))


_dirs = [0]


def tempdir():
    """A new empty folder for one test, on either runtime (MicroPython has no
    tempfile). It is made inside $FWTEST_TMP, the folder the harness
    (conftest.py) makes for the run and removes at its end: nothing is left
    behind, whatever the runtime."""
    import os
    import time

    base = os.getenv("FWTEST_TMP") or "/tmp"
    try:
        stamp = time.ticks_us()
    except AttributeError:
        stamp = int(time.time() * 1000000)
    while True:
        _dirs[0] += 1
        path = "%s/fwtest-%d-%d" % (base, stamp, _dirs[0])
        try:
            os.mkdir(path)
            return path
        except OSError:
            pass


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
