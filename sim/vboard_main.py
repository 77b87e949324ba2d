# The virtual board's inside: the MicroPython interpreter (unix port) with the
# board's flash, a littlefs image in a file, mounted at / in place of the host's
# filesystem, and the simulator's peripherals on a world that runs in real time.
# Started, behind a pseudo-terminal, by host/parkctl/vboard.py as
#   micropython -X heapsize=... -i -c "import vboard_main"
# with MICROPYPATH=sim:sim/vesp32:firmware/APP:firmware/lib (the simulator's
# modules; the firmware itself comes from the image) and, in the environment,
# VBOARD_APP ("lamp" or "kiosk": which world surrounds the board), VBOARD_IMAGE,
# VBOARD_CTL (the supervisor's TCP port on loopback), VBOARD_MODE ("main": run
# boot.py and main.py; "raw": boot.py only, a soft reset from the raw REPL) and
# VBOARD_STATE (JSON: what survives a reset).
#
# Whatever ends the interpreter is the supervisor's to turn into a reset:
# machine.reset() and a watchdog expiry ask it over the control connection.
# `-i` leaves the interpreter in its REPL when main.py ends or is interrupted,
# as a board does.

import json
import sys

from builtin_modules import real

os, _socket, _select, _time = real(("os", "socket", "select", "time"))

import _hub  # noqa: E402
import vfs  # noqa: E402
from blockdev import FileBlockDevice  # noqa: E402

APP = os.getenv("VBOARD_APP") or "lamp"
# The app's own parser reads the installed configuration (firmware/APP is on
# MICROPYPATH for it), and the world around the board is the app's.
if APP == "kiosk":
    import kioskconfig as appconfig
    from kiosk_world import KioskWorld as AppWorld
else:
    import lampconfig as appconfig
    from world import World as AppWorld

# The virtual ESP32's modules, loaded now: once the image is mounted at / the
# host's folders they live in are out of reach. (`os` stays the interpreter's:
# with the image mounted at / it is the board's filesystem, as on the ESP32.)
for _name in ("machine", "micropython", "network", "ntptime", "select", "socket", "time", "chips"):
    __import__(_name)
import machine  # noqa: E402

FIRMWARE_DIRS = ("firmware/" + APP, "firmware/lib")
YEARS_US = 100 * 365 * 86400 * 1000000  # the world has no end
UNIX_2000 = 946684800


class Control:
    """The line to the supervisor: JSON lines out (logs, resets, watchdog)."""

    def __init__(self, port):
        s = _socket.socket()
        s.connect(_socket.getaddrinfo("127.0.0.1", port)[0][-1])
        self.s = s
        self.buf = b""

    def send(self, msg):
        self.s.write(json.dumps(msg) + "\n")

    def receive(self, world):
        """What the supervisor asks of the world (a test rig's stimuli): each line
        {"world": event} happens now, as a scenario's event would."""
        data = self.s.recv(512)
        if not data:
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                ev = json.loads(line)["world"]
                world.at(world.now_us, ev)
            except (ValueError, KeyError, TypeError):
                pass

    def reset(self, cause, board, soft=False):
        """The supervisor kills this interpreter and starts the next: never returns.
        soft: MicroPython's soft reboot (the chip is not reset)."""
        self.send({"reset": cause, "soft": soft, "state": board.keep()})
        while True:
            self.s.read(1)
            _time.sleep(1)


def _wall_us():
    return (_time.time_ns() // 1000) - UNIX_2000 * 1000000


class VBoard(_hub.Board):
    """A board whose world follows the wall clock: time passes while the firmware
    works, and a wait ends early for a console byte or data on a socket."""

    def __init__(self, world, fs, uid, ctl, kept):
        super().__init__(world, fs, uid, "esp32s3" if APP == "kiosk" else "esp32")
        self.ctl = ctl
        self._console = _select.poll()
        self._console.register(sys.stdin, 1)
        self.console_wanted = False
        self._fed_sent = 0
        if kept:
            self.reset_cause = kept["cause"]
            self.power_on_us = kept["power_on_us"]
            self.rtc_offset_us = kept["rtc_offset_us"]
            self.rtc_memory = bytes.fromhex(kept["rtc_memory"])

    @property
    def rtc_memory(self):
        return self._rtc_memory

    @rtc_memory.setter
    def rtc_memory(self, data):
        # Told at once: a watchdog reset gives the interpreter no time to say it.
        self._rtc_memory = data
        ctl = getattr(self, "ctl", None)
        if ctl is not None:
            ctl.send({"state": self.keep()})

    def keep(self):
        """What a reset leaves: the RTC, its memory, the uptime counter."""
        return {
            "power_on_us": self.power_on_us,
            "rtc_offset_us": self.rtc_offset_us,
            "rtc_memory": self.rtc_memory.hex(),
        }

    def _catch_up(self):
        w = self.world
        t = _wall_us()
        if t > w.now_us:
            w.now_us = t

    def uptime_us(self):
        self._catch_up()
        return super().uptime_us()

    def rtc_us(self):
        self._catch_up()
        return super().rtc_us()

    def set_rtc_us(self, t_us):
        self._catch_up()
        super().set_rtc_us(t_us)
        self.ctl.send({"state": self.keep()})

    def console_ready(self):
        return bool(self._console.poll(0))

    def wait_us(self, us, ready=None):
        self._catch_up()
        try:
            return super().wait_us(us, ready)
        except _hub.Reset as r:
            self.ctl.reset(r.cause, self)

    def wdt_start(self, timeout_ms):
        super().wdt_start(timeout_ms)
        # The supervisor resets a loop that hangs without ever waiting.
        self.ctl.send({"wdt": timeout_ms})

    def wdt_feed(self):
        super().wdt_feed()
        t = _time.ticks_ms()
        if _time.ticks_diff(t, self._fed_sent) >= 1000:
            self._fed_sent = t
            self.ctl.send({"feed": 1})


def _pacer(board):
    """Real-time waits: until the wall clock reaches t, or earlier for a console
    byte the firmware is polling for or data on one of its sockets."""

    def pace(t_us, wake):
        while True:
            left = (t_us - _wall_us()) // 1000
            if left <= 0:
                return None
            p = _select.poll()
            p.register(board.ctl.s, 1)
            n = 1
            if board.console_wanted:
                p.register(sys.stdin, 1)
                n += 1
            if board.world.wifi_up():
                for s in board.sockets:
                    p.register(s._s, 1)
                    n += 1
            ready = p.poll(left if left < 1000 else 1000)
            if ready:
                for entry in ready:
                    if entry[0] is board.ctl.s:
                        board.ctl.receive(board.world)
                t = _wall_us()
                return t if t < t_us else t_us

    return pace


def _traceback_line(line):
    # This file's own frames are the board's ROM, not the user's program.
    return "vboard_main" not in line


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _run(path, g):
    """Runs a file of the board's filesystem as the ESP32 runs boot.py and main.py;
    False when it ended in an error (or a Ctrl-C), as pyexec_file_if_exists says."""
    try:
        with open(path) as f:
            src = f.read()
    except OSError:
        return True  # no file: as an empty one
    try:
        exec(compile(src, path, "exec"), g)
        return True
    except _hub.Reset as r:
        _hub.board.ctl.reset(r.cause, _hub.board)
    except _hub.PowerLoss:
        # Cut part-way through a flash operation: the supervisor, told by the
        # world's "mains cut", ends this interpreter; nothing more is said.
        while True:
            _time.sleep(1)
    except SystemExit:
        # sys.exit() in boot.py or main.py: a soft reboot, as on the ESP32.
        _hub.board.ctl.reset(_hub.SOFT_RESET, _hub.board, soft=True)
    except BaseException as e:  # noqa: BLE001 - printed as the board's REPL prints it
        import io

        buf = io.StringIO()
        sys.print_exception(e, buf)
        for line in buf.getvalue().split("\n"):
            if line and _traceback_line(line):
                print(line)
    return False


def main():
    ctl = Control(int(os.getenv("VBOARD_CTL")))
    kept = os.getenv("VBOARD_STATE")
    kept = json.loads(kept) if kept else None
    bdev = FileBlockDevice(os.getenv("VBOARD_IMAGE"))
    fs = vfs.VfsLfs2(bdev, readsize=32, progsize=32, lookahead=32)
    # The world reads the installed configuration (where the pole is, how the
    # board is wired), as the app's configuration store finds it.
    cfg = None
    for path in ("/%s.json" % APP, "/config.json"):
        try:
            with fs.open(path, "r") as f:
                cfg = json.loads(f.read())
            break
        except (OSError, ValueError):
            pass
    try:
        appconfig.parse(cfg)
    except (appconfig.ConfigError, AttributeError, TypeError):
        # No app on the flash yet (or no valid configuration): the world still
        # needs a place and a wiring, those the firmware falls back to.
        cfg = appconfig.FALLBACK
    now = _wall_us()
    scenario = {
        "start": now // 1000000,
        "end": (now + YEARS_US) // 1000000,
        "config": cfg,
        "board": {"wifi": "up", "ntp": "ok", "ds3231": "set", "rtc_battery": "ok"},
        # The clock is the wall clock here: flash operations take what they take.
        "flash_timed": False,
    }

    def log(t_us, kind, text):
        ctl.send({"log": [t_us // 1000000, kind, text]})

    world = AppWorld(scenario, log)
    world.now_us = now
    bdev.world = world  # the flash the supervisor can cut the power in (cut_at_flash_op)
    if os.getenv("VBOARD_CUT"):
        world.cuts_armed.append([int(os.getenv("VBOARD_CUT")), 0])
    if hasattr(world, "frame_sink"):
        # What a rig would see on the display: a frame drawn (the panel keeps it).
        world.frame_sink = lambda n, t_us, ram: ctl.send({"frame": n})
    uid = bytes.fromhex(os.getenv("VBOARD_UID") or "240ac4000001")
    board = VBoard(world, fs, uid, ctl, kept)
    world.board = board
    world.pace = _pacer(board)
    _hub.board = board
    _hub.net, _hub.net_select = _socket, _select
    machine.reset = lambda: ctl.reset(_hub.SOFT_RESET, board)
    # RAM is the board's: the firmware's modules the world imported come again from
    # the image when the firmware imports them.
    for name in list(sys.modules):
        path = getattr(sys.modules[name], "__file__", "") or ""
        if any(d in path for d in FIRMWARE_DIRS):
            del sys.modules[name]
    vfs.umount("/")
    vfs.mount(fs, "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib"]
    sys.atexit(lambda: ctl.send({"state": board.keep()}))
    g = {"__name__": "__main__"}
    booted = _run("boot.py", g)
    # What a client typed while the board booted is let through now: to main.py
    # (a Ctrl-C stops it), or to the REPL. As on the ESP32, main.py runs only
    # after a boot.py that ran to its end: an error or a Ctrl-C in boot.py leaves
    # the board in the REPL.
    main = booted and os.getenv("VBOARD_MODE") != "raw" and _exists("main.py")
    ctl.send({"booted": 1, "main": main})
    if main:
        _run("main.py", g)


main()
