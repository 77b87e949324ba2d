# The board's `os` over a littlefs filesystem object (MicroPython's VfsLfs2, or
# sim.cpython.LittleFsVfs, its stand-in over littlefs-python), for the tests
# that give firmware modules (journal, configstore, staging) a flash of their
# own; and the exception a torn flash write stops the code with. Runs in
# CPython and in MicroPython: no typing, no f-strings.


class CutHere(Exception):
    """The power went in a flash write: the code stops here (tests/flashcuts.py)."""


class LfsOs:
    def __init__(self, fs):
        self.fs = fs

    def stat(self, path):
        return self.fs.stat(path)

    def listdir(self, path):
        return [e[0] for e in self.fs.ilistdir(path)]

    def mkdir(self, path):
        self.fs.mkdir(path)

    def rename(self, a, b):
        self.fs.rename(a, b)

    def remove(self, path):
        self.fs.remove(path)

    def rmdir(self, path):
        self.fs.rmdir(path)
