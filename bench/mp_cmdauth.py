# Runs inside MicroPython (unix port): the cost of checking one command's
# authenticator and counter (firmware/lib/cmdauth.py), as the lamp does for
# every command, and of sealing one event.
#   MICROPYPATH=firmware/lib micropython -X heapsize=100k bench/mp_cmdauth.py DIR
import binascii
import gc
import os
import sys
import time

from cmdauth import Auth, mac, pads

KEY = b"k" * 32
TOPIC = "park/g60/lamp/lamp-g60-007/cmd"
folder = sys.argv[1]


def signed(ctr):
    body = b'{"id": "parkctl-1a2b3c4d", "cmd": "resolve", "alarm": "lamp-g60-007-3-17", "ctr": %d}' % ctr
    return body[:-1] + b',"mac":"' + mac(pads(KEY), TOPIC, body) + b'"}'


with open(folder + "/cmd.key", "w") as f:
    f.write(binascii.hexlify(KEY).decode())
auth = Auth(os, folder + "/cmd.key", folder + "/cmd.ctr")
N = 200
payloads = [signed(i + 1) for i in range(20)]
gc.collect()
start = time.ticks_us()
for i in range(N):
    auth.signed(TOPIC, payloads[i % 20])
check_us = time.ticks_diff(time.ticks_us(), start) // N
start = time.ticks_us()
for i in range(N):
    auth.fresh(i + 1)  # with its counter written to flash (a file here)
fresh_us = time.ticks_diff(time.ticks_us(), start) // N
event = (
    '{"id": "lamp-g60-007-3-17", "device": "lamp-g60-007", "type": "alarm_raised", "presses": 1, '
    '"ts": 1797855180}'
)
start = time.ticks_us()
for i in range(N):
    auth.seal("park/g60/lamp/lamp-g60-007/event", event)
seal_us = time.ticks_diff(time.ticks_us(), start) // N
gc.collect()
gc.disable()
before = gc.mem_alloc()
auth.signed(TOPIC, payloads[-1])
allocated = gc.mem_alloc() - before
gc.enable()
print("%d %d %d %d" % (check_us, fresh_us, seal_us, allocated))
