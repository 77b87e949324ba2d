"""A broker slow to answer, as on a loaded machine, does not change a scenario's
timeline: the simulated clock waits for what a running broker owes (sim/vesp32/
_hub.py, answer_wait_ms). It used to give up after 2 s of real time and go on,
so the same scenario ran differently when the machine was busy (a flake of
test_both_runtimes_same_timeline_with_a_real_broker under a load of 20)."""

from __future__ import annotations

import socket
import threading
import time

from parkctl import simcmd
from parkctl.brokers import Mosquitto
from test_alarm_sim import WIFI_CONFIG

DELAY_S = 3.0  # longer than the 2 s the clock used to wait


class SlowProxy:
    """A TCP relay to the broker that holds the broker's first answer on each
    connection for DELAY_S: what a broker process waiting for a CPU does."""

    def __init__(self, port: int):
        self.upstream = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.closing = False
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            broker.settimeout(None)
            for args in ((client, broker, False), (broker, client, True)):
                t = threading.Thread(target=self._pipe, args=args, daemon=True)
                t.start()
                self.threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        first = slow
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if first:
                    time.sleep(DELAY_S)  # the simulated load, not a wait of the test's
                    first = False
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closing = True
        self.server.close()
        for t in self.threads:
            t.join(timeout=30)


def test_a_broker_slow_to_answer_changes_nothing(tmp_path):
    scn = tmp_path / "slow.scn"
    scn.write_text(
        f"config {WIFI_CONFIG}\nstart 2026-12-21 22:00\nend 2026-12-21 22:06\nwifi up 22:00\n"
        "at 22:03 press button for 300ms\nexpect 1 alarms at centre\n"
    )
    results = []
    for delay in (False, True):
        broker = Mosquitto().start()  # a fresh one each: nothing retained from the other run
        proxy = SlowProxy(broker.port) if delay else None
        try:
            url = f"mqtt://127.0.0.1:{proxy.port}" if proxy else broker.url
            results.append(simcmd.run(scn, broker=url))
        finally:
            if proxy:
                proxy.close()
            broker.close()
    fast, slow = results
    assert fast.ok and slow.ok, [c for c in slow.checks if not c[1]]

    def timeline(result):
        return [(e.t, e.kind, e.text) for e in result.entries if e.kind != "end"]

    assert timeline(slow) == timeline(fast)
