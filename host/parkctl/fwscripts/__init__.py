"""Scripts that run on CPython and on MicroPython alike (see parkctl.runtime)."""
