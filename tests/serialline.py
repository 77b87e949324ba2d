"""A serial line to a board, with pytest-embedded's `expect`: wait for a pattern
in what the board prints, up to a timeout (the board runs in real time). The
timeouts are deadlines, not waits: generous (60 s by default), because on a
loaded machine (`stress-ng --cpu 2`) a virtual board's interpreter can take many
seconds to boot or to shut down, and a short one failed there (issue 22)."""

from __future__ import annotations

import re
import time

import serial


class Line:
    def __init__(self, port: str) -> None:
        self.s = serial.Serial(port, 115200, timeout=0.05)
        self.seen = b""  # everything read
        self.pos = 0  # where the next expect starts looking

    def close(self) -> None:
        self.s.close()

    def write(self, data: bytes) -> None:
        self.s.write(data)
        self.s.flush()

    def expect(self, pattern: bytes, timeout: float = 60.0) -> re.Match[bytes]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.seen, self.pos)
            if m:
                self.pos = m.end()
                return m
            if time.monotonic() > deadline:
                tail = self.seen[self.pos :][-600:]
                raise AssertionError(f"{pattern!r} not seen in {timeout} s; the board said: {tail!r}")
            self.seen += self.s.read(4096)

    def drain(self) -> None:
        """Forget what was printed so far."""
        self.seen += self.s.read(65536)
        self.pos = len(self.seen)
