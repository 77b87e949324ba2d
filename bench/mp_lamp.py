# Runs inside MicroPython (unix port): the lamp controller's costs.
#   MICROPYPATH=firmware/lib:firmware/lamp:tests/firmware micropython -X heapsize=100k bench/mp_lamp.py CONFIG
# Prints: idle_pass_us sampling_pass_us next_change_us next_change_cold_us
#         config_bytes engine_bytes controller_bytes modules_bytes
import gc
import sys
import time

gc.collect()
m0 = gc.mem_alloc()
import civil  # noqa: E402
import lampconfig  # noqa: E402
from controller import Controller  # noqa: E402
from schedule import Engine  # noqa: E402
from timesource import TimeKeeper  # noqa: E402

gc.collect()
modules = gc.mem_alloc() - m0


from fakehw import Hw  # noqa: E402  (the firmware tests' stand-ins)
from fakehw import SystemClock as Clock  # noqa: E402

with open(sys.argv[1]) as f:
    text = f.read()
gc.collect()
a = gc.mem_alloc()
cfg = lampconfig.loads(text)
del text
gc.collect()
config_bytes = gc.mem_alloc() - a

engine = Engine(cfg)
t0 = cfg.tz.to_utc(civil.to_seconds(2026, 12, 21, 21))
engine.target(t0)
engine.next_change(t0)
gc.collect()
engine_bytes = gc.mem_alloc() - a - config_bytes

N = 200


def best(fn, n, rounds=5):
    """The fastest of `rounds` averages over n calls: the least disturbed figure."""
    out = None
    for _ in range(rounds):
        gc.collect()
        start = time.ticks_us()
        for i in range(n):
            fn(i)
        us = time.ticks_diff(time.ticks_us(), start) // n
        out = us if out is None or us < out else out
    return out


next_us = best(lambda i: engine.next_change(t0 + i), N)
# A new engine: every program day computed, as at boot.
cold_us = best(lambda i: Engine(cfg).next_change(t0 + i * 86400), 10)

engine = None  # one engine at a time, as on the board: the heap is 100 KB
gc.collect()
b = gc.mem_alloc()
system = Clock(t0)
clock = TimeKeeper(system)
clock.sync(t0, "bench")
hw = Hw()
hw.light_adc.raw = 200  # a dark evening
hw.current_adc.raw = 13107  # a lamp drawing 1 A
ctl = Controller(cfg, hw, clock)
ctl.step(0)
ctl.step(60000)  # past any fade
gc.collect()
controller_bytes = gc.mem_alloc() - b

# Idle passes: the level holds, no sensor sample due (samples are once a second).
ms = 61000
ctl.step(ms)
idle_us = best(lambda i: ctl.step(ms + 1 + i % 900), N)
state = [ms]


def sampled(i):
    state[0] += 300000  # the idle sampling period: every pass reads the sensors
    system.t += 300
    ctl.step(state[0])


sample_us = best(sampled, N)

print(idle_us, sample_us, next_us, cold_us, config_bytes, engine_bytes, controller_bytes, modules)
