"""Starts the virtual board's interpreters for its supervisor (host/parkctl/vboard.py).

Run as a script, one per board, from the moment the board is made:
    python vspawn.py FD
FD is one end of a SOCK_SEQPACKET socket pair. Each message in is a request
(JSON {"cmd": [...], "env": {...}}) with the interpreter's terminal attached
(SCM_RIGHTS); the answer is {"pid": N} or {"error": why}. When an interpreter
ends, {"exit": N, "rc": code} follows. When the supervisor's end closes, the
interpreters still running are killed and this ends.

Why a process of its own: a child forked by the supervisor holds a copy of
every descriptor the supervisor's process has open until it execs. In a test or
a benchmark the clients of the port (pyserial, mpremote) are in that process,
and their port is locked (flock): a client that closes the port as an
interpreter is forked, and opens it again, found it "busy". This process has
nothing open but its socket, so neither have the children it forks.
"""

import json
import os
import signal
import socket
import subprocess
import sys

POLL_S = 0.05  # how soon an interpreter's end is told


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.settimeout(POLL_S)
    children: dict[int, subprocess.Popen[bytes]] = {}
    try:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
            except TimeoutError:
                msg, fds = None, []
            if msg == b"":
                return  # the supervisor is gone
            if msg is not None:
                try:
                    req = json.loads(msg)
                    tty = fds[0]
                    p = subprocess.Popen(
                        req["cmd"], stdin=tty, stdout=tty, stderr=tty, env=req["env"], close_fds=True
                    )
                    children[p.pid] = p
                    reply = {"pid": p.pid}
                except (OSError, ValueError, KeyError, IndexError) as e:
                    reply = {"error": f"{type(e).__name__}: {e}"}
                finally:
                    for fd in fds:
                        os.close(fd)
                sock.send(json.dumps(reply).encode())
            for pid, p in list(children.items()):
                rc = p.poll()
                if rc is not None:
                    del children[pid]
                    sock.send(json.dumps({"exit": pid, "rc": rc}).encode())
    except OSError:
        return  # the supervisor's end broke: as if it closed
    finally:
        for p in children.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
            p.wait()


if __name__ == "__main__":
    main()
