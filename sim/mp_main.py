# The simulator inside the MicroPython interpreter (unix port):
#   MICROPYPATH=sim:sim/vesp32:firmware/lamp:firmware/lib micropython sim/mp_main.py IMAGE SCENARIO.json
# The board's filesystem is MicroPython's own VfsLfs2 over the image file; the
# timeline comes out on stdout as JSON lines, each after a \x1e; any other line
# is the firmware writing to the console directly (sys.print_exception).
# The control centre and the broker live in the host's process (sim/centre.py):
# the world asks them through a line after a \x1d on stdout and waits for the
# answer, a line on stdin (host/parkctl/simcmd.py); an answer after a \x15 is
# the host's error. A world event that fails on the simulator's side ends the
# run with a `world-failed` entry and exit status 3.

import builtins
import json
import sys

from builtin_modules import real

_socket, _select, _time = real(("socket", "select", "time"))

import _hub  # noqa: E402
import runner  # noqa: E402
import vfs  # noqa: E402
from blockdev import FileBlockDevice  # noqa: E402

_host_open = open  # the host's files; the firmware's `open` becomes the board's flash
FIRMWARE_DIRS = ("firmware/lamp", "firmware/kiosk", "firmware/lib", "/rom/", "/flash/")


class Platform:
    def pacer(self, start_us, factor):
        """Real-time mode: simulated time runs `factor` times the wall clock."""
        import utime  # the built-in time: `time` is the virtual board's here

        t0 = utime.ticks_ms()

        def pace(t_us, wake):
            # wake(ms): data on the board's sockets within ms? (None: nothing to wait on)
            due = int((t_us - start_us) / 1000 / factor)
            while True:
                left = utime.ticks_diff(utime.ticks_add(t0, due), utime.ticks_ms())
                if left <= 0:
                    return None
                got = wake(left)
                if got is None:
                    utime.sleep_ms(left)
                    return None
                if got:
                    now = start_us + int(utime.ticks_diff(utime.ticks_ms(), t0) * factor * 1000)
                    return now if now < t_us else t_us

        return pace

    def __init__(self):
        self.console = None
        self.heap = None  # a HeapProbe, for make bench
        self.outside = False  # the host runs a centre and broker for this scenario
        self.bdev = None  # the flash: a FileBlockDevice over the image
        self.fs = None  # its filesystem as mounted now
        self.modules_on_flash = False  # mounted at /flash, first on sys.path

    def remount(self):
        """Power is back: the filesystem is mounted afresh (littlefs's RAM state is gone)."""
        self.bdev.f.flush()
        self.bdev = self.bdev.after_power_cut()
        self.fs = vfs.VfsLfs2(self.bdev, readsize=32, progsize=32, lookahead=32)
        _hub.board.fs = self.fs
        if self.modules_on_flash:
            vfs.umount("/flash")
            vfs.mount(self.fs, "/flash")

    def world_ready(self, world):
        self.bdev.world = world
        if self.outside:
            world.outside = RemoteOutside(world)

    def host_write(self, path, data):
        """A file on the host (the display's frames), not on the board's flash."""
        with _host_open(path, "wb") as f:
            f.write(data)

    def wall_us(self):
        return _time.time_ns() // 1000

    def boot(self):
        if self.heap is not None and self.heap.base is None:
            self.heap.start()
        # RAM is lost: every firmware module is imported afresh.
        _forget_firmware()
        if not self.modules_on_flash and _has_modules(self.fs):
            self._flash_first()  # an update put modules there
        # As the ESP32 does: boot.py, then main.py (each the flash's own if it has one).
        __import__("boot")
        sys.modules.pop("boot", None)
        __import__("main")

    def _flash_first(self):
        self.modules_on_flash = True
        vfs.mount(self.fs, "/flash")
        sys.path[:0] = ["/flash", "/flash/lib"]


def _forget_firmware():
    # In a function of its own: a local of boot() naming a module would keep that
    # module (and all it imported) alive for as long as the firmware runs.
    for name in list(sys.modules):
        if any(d in (getattr(sys.modules[name], "__file__", "") or "") for d in FIRMWARE_DIRS):
            del sys.modules[name]


class HeapProbe:
    """The heap in use after gc.collect(), sampled every `every` waits of the
    board (the firmware idle), per simulated day (highest, median): for `make bench`."""

    SAMPLES = 128

    def __init__(self, emit, every=20):
        self.emit = emit
        self.every = every
        self.base = None
        self.n = 0
        self.day = 0
        # The probe is in the heap it measures: what it keeps is all allocated
        # before the base is taken, and never grows.
        self.samples = [0] * self.SAMPLES  # for the median: every `stride`th sample
        self.count = 0
        self.stride = 1
        self.peak = 0
        self.t = 0
        self.start_us = 0

    def start(self):
        import gc

        # The virtual ESP32's own modules are the simulator's, not the firmware's:
        # loaded before the base is taken.
        for name in ("machine", "micropython", "network", "ntptime", "os", "select", "socket", "time"):
            __import__(name)
        # Its pins, ADCs and buses are static tables on the board, and what lwIP
        # keeps of a connection is in its own pools: outside the heap.
        __import__("machine").make_all()
        __import__("socket").make_pool(1)
        # What the world loaded of the firmware's to read the configuration
        # (sim/world.py) and drops at boot is not the firmware's to be credited.
        _forget_firmware()
        wait = _hub.Board.wait_us
        probe = self

        def wait_us(board, us, ready=None):
            probe.sample(board.world.now_us)
            return wait(board, us, ready)

        _hub.Board.wait_us = wait_us
        self.start_us = _hub.board.world.now_us
        gc.collect()
        self.base = gc.mem_alloc()
        self.emit(_hub.board.world.now_us, "heap", "0 %d 0 0" % self.base)
        names()

    def sample(self, now_us):
        import gc

        self.n += 1
        if self.n % self.every:
            return
        gc.collect()
        a = gc.mem_alloc()
        if self.n == self.every:
            names()  # after the boot
        day = (now_us - self.start_us) // 86400000000 + 1
        if day != self.day:
            self.flush()
            self.day = day
            self.count = 0
            self.stride = 1
            self.peak = 0
        self.t = now_us
        if a > self.peak:
            self.peak = a
        if self.n % (self.every * self.stride) == 0:
            s = self.samples
            s[self.count] = a
            self.count += 1
            if self.count == self.SAMPLES:
                # Full: keep every other one, and take every other one from now on.
                half = self.SAMPLES // 2
                for i in range(half):
                    s[i] = s[2 * i]
                self.count = half
                self.stride *= 2

    def flush(self):
        if self.day and self.count:
            k = sorted(self.samples[: self.count])
            self.emit(self.t, "heap", "%d %d %d %d" % (self.day, self.base, self.peak, k[len(k) // 2]))
            names()


def names():
    # MicroPython's name table (its qstr pools), printed by the interpreter on
    # stdout, "qstr pool: n_pool=..." (a `names` entry on the host): at the base,
    # at the first sample and at the end of each day. The simulator's names are in
    # the same table, so the benchmark counts the firmware's pools as a board's
    # instead of what this table allocated after the base (bench/alarms.py,
    # docs/testing.md).
    __import__("micropython").qstr_info()


class HostError(Exception):
    """The host failed to do what the world asked of it (its error, as it said it)."""


class RemoteOutside:
    """The world's centre and broker, in the host's process (see the top of this file)."""

    def __init__(self, world):
        self.world = world

    def _ask(self, request):
        out = sys.stdout
        out.write("\x1d")
        out.write(json.dumps(dict(request, t=self.world.now_us)))
        out.write("\n")
        answer = sys.stdin.readline().strip()
        if answer.startswith("\x15"):
            raise HostError(answer[1:])
        return answer

    def settle(self, published=0, wills=0):
        return int(self._ask({"ask": "settle", "published": published, "wills": wills}) or 0)

    def command(self, cmd, message=None):
        return self._ask({"ask": "command", "cmd": cmd, "message": message}) == "1"

    def broker(self, state):
        self._ask({"ask": "broker", "state": state})


def _has_modules(fs):
    for folder in ("/", "/lib"):
        try:
            for entry in fs.ilistdir(folder):
                if entry[0].endswith(".py"):
                    return True
        except OSError:
            pass  # no such folder
    return False


def main():
    _hub.net, _hub.net_select = _socket, _select
    image = sys.argv[1]
    with open(sys.argv[2]) as f:
        scenario = json.loads(f.read())
    platform = Platform()
    platform.bdev = FileBlockDevice(image)
    platform.fs = vfs.VfsLfs2(platform.bdev, readsize=32, progsize=32, lookahead=32)
    # A module on the board's flash (/NAME.py, /lib/NAME.py) is imported instead
    # of the app's own, as on a board, whose whole app is on its flash (the
    # source folders stand for the app deployed there): docs/sim.md.
    # Only a flash that holds modules at power-on is mounted there: the mount
    # and the longer path cost heap that `make bench` would count as the firmware's.
    if _has_modules(platform.fs):
        platform._flash_first()
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
        return platform.fs.open(path, mode)

    builtins.open = fw_open
    builtins.print = fw_print
    platform.outside = bool(scenario.get("outside"))
    if scenario.get("romfs"):
        # The app's code on a ROMFS (host/parkctl/build.py romfs_image), imported
        # from /rom before the source folders. The image is flash on a board: it
        # is read into the heap here before the heap probe takes its base.
        with _host_open(scenario["romfs"], "rb") as f:
            rom = f.read()
        vfs.mount(vfs.VfsRom(rom), "/rom")
        sys.path[:0] = ["/rom", "/rom/lib"]
    if scenario.get("heap_probe"):
        platform.heap = HeapProbe(emit)
    try:
        runner.run(scenario, platform.fs, platform, emit)
    except _hub.WorldFailed as e:
        # For the host to say (host/parkctl/simcmd.py), as it does for CPython.
        emit(e.t_us, "world-failed", json.dumps([e.what, e.line, e.t_us, e.error]))
        sys.exit(3)
    if platform.heap is not None:
        platform.heap.flush()


main()
