"""Many lamps (CPython): `parkctl sim --lamps N [--jobs J]`.

Each lamp is a whole simulated board, with its own firmware modules, world and
littlefs image (in memory, 128 KiB), its own device id and noise seed, and small
offsets in position (up to about 1.5 km) and in its DS3231's clock (up to 5 s).

The lamps are shared out among J processes (lamp i goes to process i mod J),
which run at once on the host's cores; each sends its lamps' timelines back at
the end. Lamps do not listen to each other, so which process runs a lamp
changes nothing in its timeline.

Inside a process, lamps without a network cannot affect each other: each runs
its whole scenario in turn (one lamp's objects stay in the CPU's caches while
it runs). Networked lamps meet at the broker, so they run together, each in a
greenlet: a lamp runs alone through a span of simulated time (SPAN_US), then
the lamp with the earliest clock runs next. They are never further apart than
a span, and the run is deterministic. A lamp whose clock is held for an answer
its broker owes it (a keepalive's, a PUBACK: see vesp32/socket.py) steps aside
meanwhile: the other lamps run, and one poll looks for all the answers owed,
so the process waits on the broker only when no lamp can run.
"""

from __future__ import annotations

import copy
import heapq
import json
import os
import pickle
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from greenlet import getcurrent, greenlet

from . import cpython
from .cmdsign import deployed_files, sim_key_file

FLEET_BLOCKS = 32  # 128 KiB: the configuration is all the firmware stores yet
# Networked lamps run together in spans of this much simulated time: each runs
# through a span alone before the next lamp's turn (a switch at every wake-up
# cost more than the lamps' work). The broker never has them further apart.
SPAN_US = 300 * 1000000
# The default number of processes: one per this many lamps, up to the cores
# there are (starting a process costs about half a second).
LAMPS_PER_JOB = 100


def jobs_for(lamps: int, jobs: int | None = None) -> int:
    """How many processes run `lamps`: `jobs`, but no more than the lamps; by
    default one per LAMPS_PER_JOB lamps, up to the cores there are."""
    if jobs is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        jobs = min(cores, lamps // LAMPS_PER_JOB)
    return max(1, min(jobs, lamps))


def variant(scenario: dict, i: int) -> dict:
    sc = copy.deepcopy(scenario)
    site = sc["config"]["site"]
    site["lat"] = round(site["lat"] + (i % 31 - 15) * 0.001, 4)
    site["lon"] = round(site["lon"] + (i // 31 % 31 - 15) * 0.001, 4)
    sc["seed"] = sc.get("seed", 0) * 1000003 + i
    sc["uid"] = bytes((0x24, 0x0A, 0xC4, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
    # Each DS3231 a few seconds off, on top of what the scenario sets (`rtc off by
    # +2h`): replacing that would run another scenario than the one asked for.
    board = sc.setdefault("board", {})
    board["clock_offset_s"] = board.get("clock_offset_s", 0) + i % 11 - 5
    return sc


def run(scenario: dict, lamps: int, emit, jobs: int | None = None) -> None:
    """emit(lamp, t_s, kind, text) gets every lamp's timeline, lamp by lamp when
    they run in more than one process (as each ends), interleaved otherwise.
    jobs: the processes (jobs_for)."""
    jobs = jobs_for(lamps, jobs)
    if jobs == 1:
        _run(scenario, range(lamps), emit)
        return
    # New interpreters (python -m sim.fleet), not forks of this one: the caller
    # may be running the embedded broker's thread, and nothing here depends on
    # how the caller's own script is written.
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))))
    payload = pickle.dumps(scenario)
    procs = []
    try:
        for k in range(jobs):
            cmd = [sys.executable, "-m", "sim.fleet", str(k), str(jobs), str(lamps)]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env))
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(payload)
            p.stdin.close()
        for k, p in enumerate(procs):
            assert p.stdout is not None
            out = p.stdout.read()
            if p.wait():
                raise RuntimeError(f"fleet process {k + 1} of {jobs} failed (exit status {p.returncode})")
            for i, entries in pickle.loads(out):
                for t, kind, text in entries:
                    emit(i, t, kind, text)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _share() -> None:
    """A process of a fleet: argv is K JOBS LAMPS, stdin the pickled scenario;
    runs lamps K, K + JOBS, ... and writes their timelines, pickled, to stdout."""
    k, jobs, lamps = (int(a) for a in sys.argv[1:4])
    scenario = pickle.load(sys.stdin.buffer)
    result = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the result
    share = range(k, lamps, jobs)
    out: dict[int, list] = {i: [] for i in share}
    _run(scenario, share, lambda i, t, kind, text: out[i].append((t, kind, text)))
    pickle.dump(list(out.items()), result)
    result.close()


def _run(scenario: dict, lamps: range, emit) -> None:
    # An app deployed on the flash (`deployed DIR`) is updated in the scenario:
    # room for it, a release staged and the app kept for a rollback.
    board = scenario.get("board") or {}
    files = {"/config.json": json.dumps(scenario["config"]).encode(), **deployed_files(board)}
    image = cpython.make_ram_image(files, FLEET_BLOCKS * 4 if board.get("deployed") else FLEET_BLOCKS)
    main = getcurrent()
    ready: list[tuple[int, int]] = []
    threads: dict[int, greenlet] = {}

    centre = scenario.get("centre")  # {"host", "port"}: the scenario has the centre's statements

    def lamp(i: int, hook=None):
        sc = variant(scenario, i)
        sc.pop("realtime", None)  # paced here, all lamps on one wall clock (together)
        made = []

        def ready(world) -> None:
            if hook is not None:
                hook(world)
            if centre is not None:
                from .centre import Outside

                # A centre for this lamp alone (its device id: the firmware's default,
                # from the chip's id), so the scenario's `centre ack` is for its alarm.
                device = "lamp-" + sc["uid"].hex()
                log = lambda kind, text: world.log(world.now_us, kind, text)  # noqa: E731
                world.outside = Outside(None, centre["host"], centre["port"], log, device)
                made.append(world.outside)

        fs = cpython.LittleFsVfs(ram=image)
        # Each lamp's own command key, as provisioning gives one (sim/cmdsign.py).
        for path, data in sim_key_file(sc.get("app", "lamp"), sc["config"], sc["uid"]).items():
            with fs.open(path, "w") as f:
                f.write(data.decode())
        try:
            cpython.run(
                sc,
                fs,
                lambda t, kind, text: emit(i, t, kind, text),
                world_ready=ready,
            )
        finally:
            for o in made:
                o.close()

    if "network" not in scenario["config"]:
        for i in lamps:
            lamp(i)
        return

    # Lamps waiting for an answer their broker owes them (World.hold): the
    # others run meanwhile, and one poll looks for all their answers at once.
    answers = select.poll()
    owner: dict[int, int] = {}  # file descriptor -> the lamp waiting on it
    held: dict[int, tuple[int, float, list[int]]] = {}  # lamp -> (its clock, give up at, fds)
    # Real time (--realtime X): every lamp's clock on one wall clock. A lamp
    # whose clock would run ahead of it waits here (World.pace), woken when the
    # wall clock gets there or when data comes on its sockets, as one lamp's
    # pacer does alone (cpython.Platform.pacer).
    factor: float = scenario.get("realtime") or 0.0
    start_us = scenario["start"] * 1000000
    t0 = time.monotonic()
    paced: dict[int, tuple[int, Any]] = {}  # lamp -> (the clock it waits for, its world)

    def wall_us() -> int:
        return start_us + int((time.monotonic() - t0) * factor * 1e6)

    def together(world) -> None:
        upto = [0]  # the lamp runs on alone until its clock passes this

        def wait(t_us: int) -> None:
            if t_us >= upto[0]:
                main.switch(t_us)
                upto[0] = (t_us // SPAN_US + 1) * SPAN_US

        def hold(socks, timeout_ms: int) -> bool:
            return main.switch((world.now_us, socks, timeout_ms))

        def pace(t_us: int, wake) -> int | None:
            if wall_us() >= t_us:
                return None
            return main.switch(("pace", t_us, world))

        world.wait = wait
        world.hold = hold
        if factor:
            world.pace = pace

    def resume(i: int, answered: bool = False) -> None:
        got = threads[i].switch(answered)
        if threads[i].dead:
            return
        if isinstance(got, tuple) and got[0] == "pace":
            paced[i] = (got[1], got[2])
        elif isinstance(got, tuple):
            t_us, socks, timeout_ms = got
            fds = [s.fileno() for s in socks]
            for fd in fds:
                answers.register(fd, select.POLLIN)
                owner[fd] = i
            held[i] = (t_us, time.monotonic() + timeout_ms / 1000, fds)
        else:
            heapq.heappush(ready, (got, i))

    def release(i: int, answered: bool) -> None:
        for fd in held.pop(i)[2]:
            answers.unregister(fd)
            del owner[fd]
        resume(i, answered)

    for i in lamps:
        # (resume() passes its `answered` to the first switch too: ignored)
        threads[i] = greenlet(lambda _=None, i=i: lamp(i, together))
        resume(i)
    while ready or held or paced:
        if paced:
            _pace(paced, resume, ready, held, wall_us, factor)
            if not (ready or held):
                continue
        if held:
            # Only wait for the broker when no other lamp may run: none is ready,
            # or the next would get more than a span ahead of a held one.
            oldest = min(h[0] for h in held.values())
            idle = not ready or ready[0][0] >= oldest + SPAN_US
            wait_ms = 0
            if idle:
                wait_ms = max(0, int((min(h[1] for h in held.values()) - time.monotonic()) * 1000) + 1)
            for fd, _ in answers.poll(wait_ms):
                i = owner.get(fd)
                if i is not None:
                    release(i, True)
            now = time.monotonic()
            for i in [i for i, h in held.items() if h[1] <= now]:
                release(i, False)  # not coming: time goes on
            if idle:
                continue
        _, i = heapq.heappop(ready)
        resume(i)


def _pace(paced: dict, resume, ready: list, held: dict, wall_us, factor: float) -> None:
    """The paced lamps (fleet._run): each one whose clock the wall clock has
    reached, or on whose sockets data has come, runs on. Waits (polling their
    sockets) only when no other lamp may run."""
    now = wall_us()
    for i in [i for i, (t_us, _) in paced.items() if t_us <= now]:
        del paced[i]
        resume(i, None)
    if not paced:
        return
    poll = select.poll()
    whose: dict[int, int] = {}
    for i, (_, world) in paced.items():
        b = world.board
        if b is not None and world.wifi_up():
            for s in b.sockets:
                poll.register(s._s.fileno(), select.POLLIN)
                whose[s._s.fileno()] = i
    wait_ms = 0
    if not ready and not held:
        soonest = min(t_us for t_us, _ in paced.values())
        wait_ms = max(0, int((soonest - wall_us()) / factor / 1000) + 1)
    woken = {whose[fd] for fd, _ in poll.poll(wait_ms) if fd in whose}
    now = wall_us()
    for i in woken:
        t_us, world = paced.pop(i)
        for s in world.board.sockets:
            s.news()  # data came: the sockets look at once
        resume(i, min(t_us, max(now, world.now_us)))


if __name__ == "__main__":
    _share()
