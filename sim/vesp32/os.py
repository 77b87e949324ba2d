# The virtual ESP32's `os` module: the board's littlefs filesystem, as MicroPython
# gives it (a VfsLfs2 mounted at /). The filesystem object comes from the runner:
# MicroPython's own VfsLfs2 over an image file, or littlefs-python on CPython.

import _hub

sep = "/"


def _fs():
    return _hub.board.fs


def ilistdir(path="/"):
    return iter(_fs().ilistdir(path))


def listdir(path="/"):
    return [e[0] for e in _fs().ilistdir(path)]


def rename(old, new):
    _fs().rename(old, new)


def remove(path):
    _fs().remove(path)


unlink = remove


def mkdir(path):
    _fs().mkdir(path)


def rmdir(path):
    _fs().rmdir(path)


def stat(path):
    return _fs().stat(path)


def statvfs(path="/"):
    return _fs().statvfs(path)


def getcwd():
    return "/"


def chdir(path):
    if path not in ("/", ""):
        raise OSError(2)


def sync():
    pass


def uname():
    return ("esp32", "esp32", "1.29.0", "v1.29.0 (park simulator)", "ESP32 module with ESP32")


def urandom(n):
    return _hub.board.world.random_bytes(n)


def dupterm(stream=None, index=0):
    return None
