"""Running the simulator in CPython: the firmware's imports, files and console.

MicroPython gets the virtual ESP32 by putting sim/vesp32 first on its path (its
`time`, `machine`, `os` shadow the built-in ones). CPython cannot do that without
breaking itself, so here every firmware and simulator module is loaded by a
small module system of its own: a module's `import time` finds sim/vesp32's,
`open` and `print` reach the board's filesystem and console, `sys` gains
MicroPython's print_exception. Firmware modules are loaded afresh at each boot
(RAM is lost); the simulator's persist, as the hardware does.
"""

from __future__ import annotations

import builtins
import io
import select
import socket
import sys
import traceback
import types
from pathlib import Path
from typing import Any

import littlefs

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "sim"
VESP32 = SIM / "vesp32"
FIRMWARE = ROOT / "firmware"
FIRMWARE_LAMP = FIRMWARE / "lamp"
FIRMWARE_LIB = FIRMWARE / "lib"

# The ESP32 (4 MiB flash) vfs partition: 2 MiB of 4 KiB blocks.
BLOCK_SIZE = 4096
BLOCK_COUNT = 512
# What MicroPython's VfsLfs2 uses (readsize, progsize, lookahead 32, a cache of
# four times that, names up to 255 bytes, and metadata moved to another block
# every 100 erases: extmod/vfs_lfsx.c), so images are shared with the board and
# both runtimes' littlefs do the same program and erase operations.
BLOCK_CYCLES = 100
LFS_IO = 32
LFS_CACHE = 4 * LFS_IO
NAME_MAX = 255


def littlefs_on(ctx, block_count: int, mount: bool = True) -> littlefs.LittleFS:
    """littlefs2 over `ctx` (block_count blocks of BLOCK_SIZE) as the board's
    VfsLfs2 formats and mounts it: `parkctl build` and the simulator both use this."""
    return littlefs.LittleFS(
        context=ctx,
        mount=mount,
        block_size=BLOCK_SIZE,
        block_count=block_count,
        read_size=LFS_IO,
        prog_size=LFS_IO,
        lookahead_size=LFS_IO,
        cache_size=LFS_CACHE,
        name_max=NAME_MAX,
        block_cycles=BLOCK_CYCLES,
    )


def make_image(path: Path, files: dict[str, bytes], block_count: int = BLOCK_COUNT) -> None:
    """A fresh littlefs2 image holding `files` (path on the board -> content)."""
    path.write_bytes(b"\xff" * BLOCK_SIZE * block_count)
    # Flushed at each sync, not fsynced: nothing here outlives a crash of the host
    # (and a power-cut campaign makes one image a trial).
    ctx = _PoweredFile(str(path))
    fs = littlefs_on(ctx, block_count, mount=False)
    fs.format()
    fs.mount()
    for name, data in files.items():
        parent = name.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(name, "wb") as f:
            f.write(data)
    fs.unmount()
    ctx.close()


def make_ram_image(files: dict[str, bytes], block_count: int) -> bytes:
    """A littlefs2 image in memory (for many simulated boards at once)."""
    ctx = littlefs.UserContext(BLOCK_SIZE * block_count)
    fs = littlefs_on(ctx, block_count, mount=False)
    fs.format()
    fs.mount()
    for name, data in files.items():
        with fs.open(name, "wb") as f:
            f.write(data)
    fs.unmount()
    return bytes(ctx.buffer)


class _Powered:
    """A littlefs context whose program and erase operations are the world's
    NOR flash (World.flash_op): they take the chip's time, and a power cut can
    tear one part-way (the bytes before the tear done, the torn byte's bits
    partly changed), after which nothing reaches the flash. As
    sim/blockdev.py does for MicroPython, byte for byte.

    littlefs-python swallows exceptions raised in these callbacks, so the
    board is stopped by LittleFsVfs and its files once littlefs returns."""

    world: Any = None

    def _byte(self, at: int) -> int:
        raise NotImplementedError

    def _put(self, at: int, data) -> None:
        raise NotImplementedError

    def prog(self, cfg, block, off, data):
        w = self.world
        n = len(data)
        k = n if w is None else w.flash_op(False, n)
        at = block * BLOCK_SIZE + off
        if k:
            self._put(at, data if k == n else data[:k])
        if k < n and w is not None and w.torn:
            w.torn = False
            self._put(at + k, bytes([self._byte(at + k) & (data[k] | w.tear_bits)]))
        return 0

    def erase(self, cfg, block):
        w = self.world
        k = BLOCK_SIZE if w is None else w.flash_op(True, BLOCK_SIZE)
        at = block * BLOCK_SIZE
        if k:
            self._put(at, _ERASED if k == BLOCK_SIZE else _ERASED[:k])
        if k < BLOCK_SIZE and w is not None and w.torn:
            w.torn = False
            self._put(at + k, bytes([self._byte(at + k) | w.tear_bits]))
        return 0


_ERASED = b"\xff" * BLOCK_SIZE


class _PoweredFile(_Powered, littlefs.UserContextFile):
    def read(self, cfg, block, off, size):
        # littlefs-python's, without its per-call debug logging: reads are most
        # of the simulator's flash traffic.
        self._fh.seek(block * BLOCK_SIZE + off)
        data = self._fh.read(size)
        return bytearray(data + b"\xff" * (size - len(data)) if len(data) < size else data)

    def _byte(self, at: int) -> int:
        self._fh.seek(at)
        return self._fh.read(1)[0]

    def _put(self, at: int, data) -> None:
        self._fh.seek(at)
        self._fh.write(data)

    def sync(self, cfg):
        # Flushed, so that a host tool reading the image sees every write; no
        # fsync: a crash of the host is not something the board can suffer.
        self._fh.flush()
        return 0


class _PoweredRam(_Powered, littlefs.UserContext):
    def read(self, cfg, block, off, size):
        start = block * BLOCK_SIZE + off
        return self.buffer[start : start + size]

    def _byte(self, at: int) -> int:
        return self.buffer[at]

    def _put(self, at: int, data) -> None:
        self.buffer[at : at + len(data)] = data


def _mounted(ctx, blocks: int) -> littlefs.LittleFS:
    """littlefs mounted on the board's flash, or an error saying it does not mount
    (as MicroPython's VfsLfs2 raises): littlefs-python's own mount formats the
    flash when it fails, which would hide a flash a power cut left unmountable."""
    fs = littlefs_on(ctx, blocks, mount=False)
    try:
        fs.mount()
    except littlefs.LittleFSError as e:
        raise OSError(abs(e.code), f"the board's flash does not mount: {e}") from None
    return fs


class _BoardFile:
    """A file on the board's flash, as the firmware holds it: each call that
    reaches littlefs stops the board at once if the power went during it, as
    MicroPython's VfsLfs2 does (its block device raises from inside littlefs)."""

    def __init__(self, f, raw, vfs: LittleFsVfs):
        self._f = f
        self._raw = raw
        self._vfs = vfs

    def _done(self, r):
        self._vfs.check()
        return r

    def write(self, data):
        return self._done(self._f.write(data))

    def read(self, n: int = -1):
        return self._done(self._f.read(n))

    def readinto(self, b):
        return self._done(self._f.readinto(b))

    def readline(self):
        return self._done(self._f.readline())

    def seek(self, *args):
        return self._done(self._f.seek(*args))

    def tell(self):
        return self._f.tell()

    def flush(self):
        return self._done(self._f.flush())

    def close(self) -> None:
        try:
            self._f.close()
        except littlefs.LittleFSError:
            # littlefs took it off its list of open files even so: never again.
            setattr(self._raw, "__IOBase_closed", True)
            raise
        finally:
            self._vfs.closed(self._raw)
            self._vfs.check()

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LittleFsVfs:
    """littlefs-python with the methods of MicroPython's VfsLfs2 object, over an
    image file or, given `ram`, an image in memory."""

    # The board's PowerLoss (sim/vesp32/_hub.py, as its module system loaded it).
    power_loss: Any = None

    def __init__(self, image: Path | None = None, ram: bytes | None = None):
        # The files open on this mount (littlefs-python's handles under them).
        self.handles: set[Any] = set()
        if ram is not None:
            self.ctx: Any = _PoweredRam(buffer=bytearray(ram))
            self.blocks = len(ram) // BLOCK_SIZE
        else:
            assert image is not None
            self.ctx = _PoweredFile(str(image))
            self.blocks = image.stat().st_size // BLOCK_SIZE
        self.fs = _mounted(self.ctx, self.blocks)

    def attach(self, world) -> None:
        """Writes from now on happen as the world's power allows."""
        self.ctx.world = world

    def remount(self) -> None:
        """Power is back: mounted afresh (littlefs's RAM state is gone)."""
        self._forget_handles()
        self.fs = _mounted(self.ctx, self.blocks)

    def check(self) -> None:
        """The power went during the littlefs call that just returned: the board
        stops now, and nothing of this mount may reach littlefs again."""
        w = self.ctx.world
        if w is not None and not w.powered:
            self._forget_handles()
            raise self.power_loss()

    def closed(self, raw) -> None:
        self.handles.discard(raw)

    def _forget_handles(self) -> None:
        # Marked closed without asking littlefs: the mount they belong to is
        # dead (its RAM state lost with the power). Closing one through
        # littlefs, when a `with` unwinds or the handle is collected, would
        # trip littlefs's assert that the file is open (lfs_mlist_isopen) and
        # abort the whole process: littlefs-python marks a handle closed only
        # after lfs_file_close succeeded, and a close torn by a cut fails.
        for raw in self.handles:
            setattr(raw, "__IOBase_closed", True)
        self.handles.clear()

    def _err(self, e: littlefs.LittleFSError) -> OSError:
        return OSError(abs(e.code), str(e))

    def open(self, path: str, mode: str = "r"):
        bmode = mode if "b" in mode else mode + "b"
        try:
            if "a" in mode:
                # MicroPython's "a" creates a missing file; littlefs-python's does not.
                try:
                    self.fs.stat(path)
                except (littlefs.LittleFSError, FileNotFoundError):
                    self.open(path, "wb").close()
            f = self.fs.open(path, bmode)
        except littlefs.LittleFSError as e:
            self.check()
            raise self._err(e) from None
        except FileNotFoundError:
            raise OSError(2, f"no such file: {path}") from None
        raw = getattr(f, "raw", f)
        self.handles.add(raw)
        self.check()
        return _BoardFile(f if "b" in mode else io.TextIOWrapper(f, encoding="utf-8"), raw, self)

    def ilistdir(self, path: str = "/"):
        out = []
        for name in self.fs.listdir(path):
            st = self.fs.stat(path.rstrip("/") + "/" + name)
            out.append((name, 0x4000 if st.type == 2 else 0x8000, 0, st.size))
        return out

    def _call(self, fn, *args):
        try:
            r = fn(*args)
        except littlefs.LittleFSError as e:
            self.check()
            raise self._err(e) from None
        self.check()
        return r

    def rename(self, a: str, b: str) -> None:
        self._call(self.fs.rename, a, b)

    def remove(self, path: str) -> None:
        self._call(self.fs.remove, path)

    def mkdir(self, path: str) -> None:
        self._call(self.fs.mkdir, path)

    def rmdir(self, path: str) -> None:
        self._call(self.fs.rmdir, path)

    def stat(self, path: str):
        st = self._call(self.fs.stat, path)
        return (0x4000 if st.type == 2 else 0x8000, 0, 0, 0, 0, 0, st.size, 0, 0, 0)

    def statvfs(self, path: str = "/"):
        used = self.fs.used_block_count
        n = self.fs.block_count
        return (BLOCK_SIZE, BLOCK_SIZE, n, n - used, n - used, 0, 0, 0, 0, 255)

    def close(self) -> None:
        self.attach(None)
        if isinstance(self.ctx, littlefs.UserContextFile):
            self.ctx.close()


_CODE: dict[Path, Any] = {}  # compiled once per process; each module runs its own copy (_own_copy)
_FOUND: dict[tuple, tuple[Path | None, bool]] = {}  # (folders, name) -> where: looked up once per process


class _SerialIn:
    """The board's serial console (sys.stdin) in the simulator: nobody types on it."""

    def __init__(self) -> None:
        self.buffer = self

    def read(self, n: int = -1) -> bytes:
        return b""


class ModuleSystem:
    """Imports for simulated code: search our folders first, then CPython's."""

    def __init__(self, console, app="lamp"):
        self.console = console
        self.folders = ((VESP32, True), (SIM, True), (FIRMWARE / app, False), (FIRMWARE_LIB, False))
        self.persistent: dict[str, types.ModuleType] = {}
        self.firmware: dict[str, types.ModuleType] = {}
        self.sys = types.ModuleType("sys")
        self.sys.__dict__.update({k: getattr(sys, k) for k in ("argv", "byteorder", "maxsize", "path")})
        # The firmware's own: what it drops from it (code loaded for a while,
        # main.py's and the updater's) is not the host's to lose. Its modules
        # are this ModuleSystem's (firmware, persistent), not in it.
        self.sys.__dict__.update(
            modules={},
            implementation=types.SimpleNamespace(name="micropython", version=(1, 29, 0)),
            platform="esp32",
            print_exception=self._print_exception,
            exit=sys.exit,
            stdout=sys.stdout,
            stdin=_SerialIn(),
        )
        self.fs: Any = None
        self.sim_builtins = dict(builtins.__dict__, __import__=self._import)
        self.fw_builtins = dict(self.sim_builtins, open=self._open, print=self._print)

    def _print_exception(self, e, file=None):
        text = "".join(traceback.format_exception(e)).rstrip()
        if file is not None:  # a stream, as MicroPython's: its `File "...", line N` lines are the same
            try:
                file.write(text + "\n")
            except TypeError:
                file.write((text + "\n").encode())  # an io.BytesIO
            return
        for line in text.splitlines():
            self.console(line)

    def _print(self, *args, sep=" ", end="\n", file=None):
        self.console(sep.join(str(a) for a in args))

    def _open(self, path, mode="r", *args, **kw):
        return self.fs.open(path, mode)

    def new_boot(self) -> None:
        self.firmware = {}

    def _find(self, name: str) -> tuple[Path | None, bool]:
        key = (self.folders, name)
        hit = _FOUND.get(key)
        if hit is None:
            hit = (None, False)
            for folder, persistent in self.folders:
                p = folder / (name + ".py")
                if p.is_file():
                    hit = (p, persistent)
                    break
            _FOUND[key] = hit
        return hit

    def load(self, name: str, as_firmware: bool) -> types.ModuleType:
        cache = self.firmware if as_firmware else self.persistent
        mod = cache.get(name)
        if mod is not None:
            return mod
        path, persistent = self._find(name)
        if path is None:
            raise ImportError(f"no module named {name!r}")
        mod = types.ModuleType(name)
        mod.__file__ = str(path)
        fw = as_firmware and not persistent
        mod.__dict__["__builtins__"] = self.fw_builtins if fw else self.sim_builtins
        mod.__dict__["__firmware__"] = fw
        (self.firmware if fw else self.persistent)[name] = mod
        code = _CODE.get(path)
        if code is None:
            code = _CODE[path] = compile(path.read_text(), str(path), "exec")
        exec(_own_copy(code), mod.__dict__)
        return mod

    def _on_flash(self, name: str) -> types.ModuleType | None:
        """A module on the board's flash (/NAME.py, /lib/NAME.py), loaded instead
        of the app's own, as on a board, whose whole app is on its flash (the
        source folders stand for the app deployed there): docs/sim.md."""
        for path in (f"/{name}.py", f"/lib/{name}.py"):
            try:
                self.fs.stat(path)
            except OSError:
                continue
            with self.fs.open(path) as f:
                text = f.read()
            mod = types.ModuleType(name)
            mod.__file__ = path
            mod.__dict__["__builtins__"] = self.fw_builtins
            mod.__dict__["__firmware__"] = True
            self.firmware[name] = mod
            exec(compile(text, path, "exec"), mod.__dict__)
            return mod
        return None

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and "." not in name:
            if name == "sys":
                return self.sys
            if globals and globals.get("__firmware__") and self.fs is not None:
                mod = self.firmware.get(name)
                if mod is None and name not in self.persistent:
                    mod = self._on_flash(name)
                if mod is not None:
                    return mod
            path, persistent = self._find(name)
            if path is not None:
                importer_is_firmware = bool(globals and globals.get("__firmware__"))
                return self.load(name, as_firmware=importer_is_firmware and not persistent)
        return builtins.__import__(name, globals, locals, fromlist, level)


def _own_copy(code):
    """`code` and the code of its functions and classes, copied (no compiling).
    CPython specializes bytecode in place for the types it meets: code shared by
    a fleet's boards, each with classes of its own, would keep missing those
    caches (a quarter of the time of a fleet of 40 networked lamps)."""
    consts = tuple(_own_copy(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_consts=consts)


class Platform:
    def __init__(self, modules: ModuleSystem, world_ready=None):
        self.modules = modules
        self.console: Any = None
        self._world_ready = world_ready

    def world_ready(self, world) -> None:
        self.modules.fs.attach(world)
        if self._world_ready is not None:
            self._world_ready(world)

    def host_write(self, path: str, data) -> None:
        """A file on the host (the display's frames), not on the board's flash."""
        Path(path).write_bytes(bytes(data))

    def wall_us(self) -> int:
        import time

        return time.perf_counter_ns() // 1000

    def remount(self) -> None:
        self.modules.fs.remount()

    def pacer(self, start_us: int, factor: float):
        """Real-time mode: simulated time runs `factor` times the wall clock."""
        import time

        t0 = time.monotonic()

        def pace(t_us: int, wake) -> int | None:
            # wake(ms): data on the board's sockets within ms? (None: nothing to wait on)
            while True:
                left = t0 + (t_us - start_us) / 1e6 / factor - time.monotonic()
                if left <= 0:
                    return None
                got = wake(int(left * 1000) + 1)
                if got is None:
                    time.sleep(left)
                    return None
                if got:
                    return min(t_us, start_us + int((time.monotonic() - t0) * factor * 1e6))

        return pace

    def boot(self) -> None:
        self.modules.new_boot()
        # As the ESP32 does: boot.py, then main.py, each the flash's own if it
        # holds one (an update put it there), else the app's.
        for name in ("boot", "main"):
            if self.modules.fs is None or self.modules._on_flash(name) is None:
                self.modules.load(name, as_firmware=True)


class WorldEventFailed(RuntimeError):
    """The simulator's side failed while the world applied an event, in either
    runtime (sim/vesp32/_hub.py WorldFailed): the run ends there. what: the
    event; line: its scenario line (or None); t_us: when; error: what was raised."""

    def __init__(self, what: str, line: int | None, t_us: int, error: str):
        super().__init__(f"world event `{what}` (scenario line {line}): {error}")
        self.what, self.line, self.t_us, self.error = what, line, t_us, error


def run(scenario: dict, image: Path | LittleFsVfs, emit, world_ready=None) -> Any:
    """Run `scenario` on a board whose filesystem is `image`; emit(t_s, kind, text).
    world_ready(world), if given, is called once the world exists (the fleet's)."""
    modules = ModuleSystem(console=lambda line: platform.console(line), app=scenario.get("app", "lamp"))
    fs = image if isinstance(image, LittleFsVfs) else LittleFsVfs(image)
    modules.fs = fs
    platform = Platform(modules, world_ready)
    runner = modules.load("runner", as_firmware=False)
    hub: Any = modules.load("_hub", as_firmware=False)
    hub.net, hub.net_select = socket, select  # the host's network, under the virtual socket
    fs.power_loss = hub.PowerLoss
    try:
        return runner.run(scenario, fs, platform, lambda t_us, kind, text: emit(t_us // 1000000, kind, text))
    except hub.WorldFailed as e:
        raise WorldEventFailed(e.what, e.line, e.t_us, e.error) from e.__cause__
    finally:
        fs.close()
