"""A centre-side listener for tests: paho-mqtt, in its own thread."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Subscriber:
    """An independent centre-side listener (paho-mqtt, its own thread)."""

    def __init__(self, port: int, topics: list[str]):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._marks: set[str] = set()
        self._lock = threading.Lock()
        self._got = threading.Condition(self._lock)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}")
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(t, 1) for t in [*topics, "test/mark"]])
        self.client.loop_start()
        self.sync()

    def _message(self, client, userdata, msg) -> None:
        with self._got:
            if msg.topic == "test/mark":
                self._marks.add(msg.payload.decode())
            else:
                self.messages.append((msg.topic, msg.payload, msg.retain))
            self._got.notify_all()

    def sync(self, timeout: float = 10.0) -> None:
        """Everything published before now has reached us (a marker made the round trip)."""
        mark = str(time.monotonic_ns())
        self.client.publish("test/mark", mark, 1)
        with self._got:
            assert self._got.wait_for(lambda: mark in self._marks, timeout), "the broker lost our marker"

    def wait_for(self, match, timeout: float = 30.0) -> tuple[str, bytes]:
        """The first message (topic, payload) for which match(topic, payload) is true,
        received already or within `timeout` seconds of real time."""
        with self._got:

            def found():
                return next(((t, p) for t, p, _ in self.messages if match(t, p)), None)

            assert self._got.wait_for(lambda: found() is not None, timeout), "no such message arrived"
            hit = found()
            assert hit is not None
            return hit

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
