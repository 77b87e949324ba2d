# Runs inside MicroPython (unix port): the cost of one day's sun computation.
#   MICROPYPATH=firmware/lib micropython -X heapsize=100k bench/mp_sun.py
import gc
import time

import sun
from posixtz import TZ

tz = TZ("CST-8")
sun.solar_day(tz, 2026, 1, 1, 31.03, 121.23)  # warm up: imports, first allocations

# Heap allocated by one computation: with the collector off, mem_alloc only grows.
gc.collect()
gc.disable()
before = gc.mem_alloc()
sun.solar_day(tz, 2026, 6, 21, 31.03, 121.23)
allocated = gc.mem_alloc() - before
gc.enable()

N = 365
gc.collect()
start = time.ticks_us()
for day in range(N):
    sun.solar_day(tz, 2026, 1 + day // 31 % 12, 1 + day % 28, 31.03, 121.23)
elapsed = time.ticks_diff(time.ticks_us(), start)
gc.collect()
print("%d %d %d %d" % (elapsed // N, allocated, gc.mem_alloc(), gc.mem_free() + gc.mem_alloc()))
