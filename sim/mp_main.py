# The simulator inside the MicroPython interpreter (unix port):
#   MICROPYPATH=sim:sim/vesp32:firmware/lamp:firmware/lib micropython sim/mp_main.py IMAGE < scenario.json
# The board's filesystem is MicroPython's own VfsLfs2 over the image file; the
# timeline comes out on stdout as JSON lines, each after a \x1e; any other line
# is the firmware writing to the console directly (sys.print_exception).

import builtins
import json
import sys


def _real(names):
    """The interpreter's own modules that sim/vesp32 shadows on the path."""
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if not p.endswith("vesp32")]
    try:
        return [__import__(n) for n in names]
    finally:
        sys.path[:] = saved


_socket, _select = _real(("socket", "select"))

import _hub  # noqa: E402
import runner  # noqa: E402
from blockdev import FileBlockDevice  # noqa: E402

FIRMWARE_DIRS = ("firmware/lamp", "firmware/lib")


class Platform:
    def pacer(self, start_us, factor):
        """Real-time mode: simulated time runs `factor` times the wall clock."""
        import utime  # the built-in time: `time` is the virtual board's here

        t0 = utime.ticks_ms()

        def pace(t_us):
            due = int((t_us - start_us) / 1000 / factor)
            left = utime.ticks_diff(utime.ticks_add(t0, due), utime.ticks_ms())
            if left > 0:
                utime.sleep_ms(left)

        return pace

    def __init__(self):
        self.console = None

    def world_ready(self, world):
        pass

    def boot(self):
        # RAM is lost: every firmware module is imported afresh.
        for name in list(sys.modules):
            mod = sys.modules[name]
            path = getattr(mod, "__file__", "") or ""
            if any(d in path for d in FIRMWARE_DIRS):
                del sys.modules[name]
        __import__("main")


def main():
    _hub.net, _hub.net_select = _socket, _select
    image = sys.argv[1]
    scenario = json.loads(sys.stdin.read())
    import vfs

    fs = vfs.VfsLfs2(FileBlockDevice(image), readsize=32, progsize=32, lookahead=32)
    platform = Platform()
    out = sys.stdout

    def emit(t_us, kind, text):
        # Framed, because the firmware can write to stdout too (sys.print_exception).
        out.write("\x1e")
        out.write(json.dumps([t_us // 1000000, kind, text]))
        out.write("\n")

    def fw_print(*args, **kw):
        sep = kw.get("sep", " ")
        platform.console(sep.join(str(a) for a in args))

    def fw_open(path, mode="r"):
        return fs.open(path, mode)

    builtins.open = fw_open
    builtins.print = fw_print
    runner.run(scenario, fs, platform, emit)


main()
