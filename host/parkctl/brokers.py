"""MQTT brokers on loopback: Mosquitto (Debian's package, what production runs)
and an embedded pure-Python one (amqtt, the simulator's default).

Both listen on a free port of 127.0.0.1 and are stopped and restarted by the
code that owns them (tests kill and restart Mosquitto mid-delivery); the port
stays theirs while they are down, so that they come back on it."""

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


def hold_port(port: int | None = None) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (a free one if None) that never listens:
    it keeps the port for a broker of ours while that broker is down. Nobody else
    can bind the port (nor can the kernel give it to a connection as its own
    port), and a connection to it is refused, as to a dead broker's. The broker's
    own listener binds beside it: both set SO_REUSEADDR, and Linux lets a
    listening socket share its port with bound sockets that do not listen."""
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port:
        held.bind(("127.0.0.1", port))
        return held
    # Bound by number, not as port 0: a port the kernel chose is given back
    # whenever the socket stops using it, one named is kept until it is closed.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", 0))
        held.bind(probe.getsockname())
    return held


def _wait_listening(port: int, alive) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the broker exited while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"the broker did not listen on port {port} within {START_TIMEOUT_S:.0f} s")


def stop_process(proc: subprocess.Popen) -> None:
    """A broker process asked to end, then killed if it has not within 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        # Its port is ours from now until close(), also while it is killed: a
        # restart must find it free (see hold_port).
        self._held = hold_port(port)
        self.port = self._held.getsockname()[1]
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
        if self.proc is not None and self.proc.poll() is None:
            return self  # running already (a scenario's broker spans overlap)
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
            stop_process(self.proc)
            self.proc = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._held.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class Embedded:
    """amqtt's broker in a thread of this process, with its own event loop.

    Killed (a `broker down` of a scenario), it goes as a process that is killed
    does: it stops listening, every connection it has is cut at once and nothing
    more is sent on it (no wills), its state is lost, and its thread ends; the
    port stays ours (hold_port) until close(). amqtt's own shutdown is not used
    for this: it ends only the sessions it knows, leaves connections that have
    not said CONNECT yet open, and can wait for ever on a session's reader; a
    loop stopped under it left its listener and connections open (clients
    waited on a broker that was gone, and a restart found the port in use), and
    tasks pending on a loop that was later closed ("Event loop is closed")."""

    def __init__(self, port: int | None = None):
        self._held = hold_port(port)
        self.port = self._held.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._listener: socket.socket | None = None
        # In the loop's thread only: its clients' connections, and those being set up.
        self._links: set[asyncio.Transport] = set()
        self._accepting: set[asyncio.Task] = set()
        self._dead = True  # a connection that comes now is cut at once

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Embedded:
        """Listening on its port when this returns; RuntimeError if it cannot be."""
        import logging

        if self._held.fileno() < 0:
            raise RuntimeError("the embedded broker was closed: make a new one")
        if self._thread is not None:
            return self
        # amqtt logs every connection at INFO; the simulator's timeline is the output.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=_run_loop, args=(loop,), name=f"amqtt-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._up(), loop).result(START_TIMEOUT_S)
        except BaseException as e:
            with contextlib.suppress(Exception):
                self.kill()
            why = (
                f"not within {START_TIMEOUT_S:.0f} s"
                if isinstance(e, TimeoutError)
                else f"{type(e).__name__}: {e}"
            )
            raise RuntimeError(f"the embedded broker did not start on port {self.port}: {why}") from e
        return self

    async def _up(self) -> None:
        from amqtt.broker import Broker

        config = {
            # Its connections come through our own listener (_Link), so that
            # kill() can cut every one of them.
            "listeners": {"default": {"type": "external"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        loop = asyncio.get_running_loop()
        self._broker = Broker(config, loop=loop)
        await self._broker.start()
        self._dead = False
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        loop.add_reader(listener.fileno(), self._accept, loop)

    def _accept(self, loop: asyncio.AbstractEventLoop) -> None:
        """Its connections are accepted here, not by an asyncio server: kill() must
        know of each one from the moment it is accepted (see _down)."""
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # gone before it was taken in (ECONNABORTED)
            conn.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(lambda: _Link(self, loop), conn))
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter

        try:
            await self._broker.external_connected(
                StreamReaderAdapter(reader), StreamWriterAdapter(writer), "default"
            )
        finally:
            # amqtt leaves open a connection it refused (no CONNECT, a bad one).
            writer.close()

    async def _down(self) -> None:
        """In the loop: as if its process were killed (see the class)."""
        self._dead = True
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
            self._listener.close()  # refused from now on: hold_port keeps the port
            self._listener = None
        me = asyncio.current_task()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            # Every connection cut, every task stopped, in one step: nothing
            # amqtt does after this can reach a client (its writes to a cut
            # connection are dropped). A task can start another as it ends:
            # round again until none is left. A connection being set up is
            # let finish (then cut: _Link): its task cancelled before it ran
            # would leave its socket open for the garbage collector to find.
            for link in list(self._links):
                link.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            if not tasks and not self._links:
                break
            for t in tasks:
                if t not in self._accepting:
                    t.cancel()
            left = deadline - loop.time()
            if left <= 0:
                raise RuntimeError(f"{len(tasks)} of its tasks did not end: {tasks[:3]}")
            if tasks:
                await asyncio.wait(tasks, timeout=left)
            else:
                await asyncio.sleep(0)  # the cut connections' last callbacks
        self._broker = None

    def kill(self) -> None:
        """Killed: its clients cut off, its state lost (start() brings it back on
        the same port). RuntimeError if its thread does not end."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        failure: BaseException | None = None
        try:
            asyncio.run_coroutine_threadsafe(self._down(), loop).result(2 * START_TIMEOUT_S)
        except BaseException as e:
            failure = e
        with contextlib.suppress(RuntimeError):  # closed already: the thread has ended
            loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        self._loop = self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"the embedded broker on port {self.port} did not stop: its thread still runs")
        if failure is not None:
            raise RuntimeError(f"the embedded broker on port {self.port} did not stop cleanly: {failure}")

    def close(self) -> None:
        try:
            self.kill()
        finally:
            self._held.close()


class _Link(asyncio.StreamReaderProtocol):
    """A client's connection to the embedded broker, known to it so that it can cut it."""

    def __init__(self, broker: Embedded, loop: asyncio.AbstractEventLoop):
        super().__init__(asyncio.StreamReader(loop=loop), self._begin, loop=loop)
        self._owner = broker
        self._task_loop = loop
        self._link: asyncio.Transport | None = None

    def _begin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A task of our own, not a coroutine handed to asyncio: asyncio logs an
        # error for its task ending cancelled, and kill() cancels it, maybe
        # before it has begun.
        self._task_loop.create_task(self._owner._serve(reader, writer))

    def connection_made(self, transport: asyncio.Transport) -> None:
        if self._owner._dead:
            transport.abort()  # accepted as it was being killed
            return
        self._link = transport
        self._owner._links.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self._link is not None:
            self._owner._links.discard(self._link)
        super().connection_lost(exc)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Closed here, in its thread, once nothing runs on it any more.
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
