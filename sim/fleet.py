"""Many lamps in one process (CPython): `parkctl sim --lamps N`.

Each lamp is a whole simulated board, with its own firmware modules, world and
littlefs image (in memory, 128 KiB), its own device id and noise seed, and small
offsets in position (up to about 1.5 km) and in its DS3231's clock (up to 5 s).

Lamps without a network cannot affect each other: each runs its whole scenario
in turn (one lamp's objects stay in the CPU's caches while it runs). Networked
lamps meet at the broker, so they run together, each in a greenlet: a lamp runs
alone through a span of simulated time (SPAN_US), then the lamp with the
earliest clock runs next. They are never further apart than a span, and the
run is deterministic.
"""

from __future__ import annotations

import copy
import heapq
import json

from greenlet import getcurrent, greenlet

from . import cpython

FLEET_BLOCKS = 32  # 128 KiB: the configuration is all the firmware stores yet
# Networked lamps run together in spans of this much simulated time: each runs
# through a span alone before the next lamp's turn (a switch at every wake-up
# cost more than the lamps' work). The broker never has them further apart.
SPAN_US = 300 * 1000000


def variant(scenario: dict, i: int) -> dict:
    sc = copy.deepcopy(scenario)
    site = sc["config"]["site"]
    site["lat"] = round(site["lat"] + (i % 31 - 15) * 0.001, 4)
    site["lon"] = round(site["lon"] + (i // 31 % 31 - 15) * 0.001, 4)
    sc["seed"] = sc.get("seed", 0) * 1000003 + i
    sc["uid"] = bytes((0x24, 0x0A, 0xC4, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
    sc.setdefault("board", {})["clock_offset_s"] = i % 11 - 5
    return sc


def run(scenario: dict, lamps: int, emit) -> None:
    """emit(lamp, t_s, kind, text) gets every lamp's timeline."""
    image = cpython.make_ram_image({"/config.json": json.dumps(scenario["config"]).encode()}, FLEET_BLOCKS)
    main = getcurrent()
    ready: list[tuple[int, int]] = []
    threads: list[greenlet] = []

    def lamp(i: int, hook=None):
        cpython.run(
            variant(scenario, i),
            cpython.LittleFsVfs(ram=image),
            lambda t, kind, text: emit(i, t, kind, text),
            world_ready=hook,
        )

    if "network" not in scenario["config"]:
        for i in range(lamps):
            lamp(i)
        return

    def together(world) -> None:
        upto = [0]  # the lamp runs on alone until its clock passes this

        def wait(t_us: int) -> None:
            if t_us >= upto[0]:
                main.switch(t_us)
                upto[0] = (t_us // SPAN_US + 1) * SPAN_US

        world.wait = wait

    def resume(i: int) -> None:
        wake = threads[i].switch()
        if not threads[i].dead:
            heapq.heappush(ready, (wake, i))

    for i in range(lamps):
        threads.append(greenlet(lambda i=i: lamp(i, together)))
        resume(i)
    while ready:
        _, i = heapq.heappop(ready)
        resume(i)
