"""MQTT brokers on loopback: Mosquitto (Debian's package, what production runs)
and an embedded pure-Python one (amqtt, the simulator's default).

Both listen on a free port of 127.0.0.1 and are stopped and restarted by the
code that owns them (tests kill and restart Mosquitto mid-delivery)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .errors import UserError

START_TIMEOUT_S = 10.0


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of mqtt://HOST[:PORT], read by the lamps' own parser
    (firmware/lib/topics.py); UserError otherwise (TLS is for the lamps)."""
    from .runtime import import_firmware

    import_firmware()
    from topics import broker_url

    try:
        tls, host, port = broker_url(url)
    except ValueError as e:
        raise UserError(f"broker: {e}") from None
    if tls:
        raise UserError(f"broker {url!r}: the host's tools speak mqtt://, not mqtts://")
    return host, port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, alive) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the broker exited while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"the broker did not listen on port {port} within {START_TIMEOUT_S:.0f} s")


def mosquitto_binary() -> str:
    for path in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if path and Path(path).exists():
            return path
    raise UserError("mosquitto is not installed: `make setup` installs it (apt-get install mosquitto)")


class External:
    """A broker someone else runs: we only know its URL."""

    def __init__(self, url: str):
        parse_url(url)
        self.url = url

    def close(self) -> None:
        pass


def check_reachable(url: str) -> None:
    """A broker at a URL that refuses or cannot be reached: said now, in one line,
    not from deep in a run."""
    host, port = parse_url(url)
    try:
        socket.create_connection((host, port), timeout=START_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"cannot reach the broker at {url}: {e.strerror or e}") from None


class Mosquitto:
    """A Mosquitto of our own: anonymous, no persistence, its own config and log."""

    def __init__(self, port: int | None = None, extra: str = ""):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="park-mosquitto-"))
        self.log = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "max_queued_messages 10000\n"
            "set_tcp_nodelay true\n" + extra
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = self.proc
        _wait_listening(self.port, lambda: proc.poll() is None)
        return self

    def kill(self) -> None:
        """As a crash: no goodbye to anyone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def freeze(self, frozen: bool) -> None:
        """A hung broker: connections stay open and nothing answers (SIGSTOP), or on again."""
        import signal

        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Embedded:
    """amqtt's broker in a thread of this process, with its own event loop."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Embedded:
        import logging

        from amqtt.broker import Broker

        # amqtt logs every connection at INFO; the simulator's timeline is the output.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        loop = asyncio.new_event_loop()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as e:
                failure.append(e)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="amqtt", daemon=True)
        self._thread.start()
        started.wait(START_TIMEOUT_S)
        if failure:
            raise RuntimeError(f"the embedded broker did not start: {failure[0]}")
        _wait_listening(self.port, lambda: self._thread is not None and self._thread.is_alive())
        return self

    def kill(self) -> None:
        """Stopped, its clients cut off (start() brings it back on the same port)."""
        self.close()

    def close(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or self._thread is None:
            return
        if broker is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)
        self._loop = self._thread = None
