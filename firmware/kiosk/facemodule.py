# The face-recognition module on a UART (docs/face-module.md): frames in, events
# out. One frame is one line of JSON, optionally followed by "*" and its CRC-16
# (CCITT-FALSE, 4 hex digits); anything else on the line is counted and dropped.
# Another module gets another class with the same feed() -> events.

import json

LINE_MAX = 256
FACE = "face"
HEARTBEAT = "hb"
ERROR = "error"


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of bytes."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


class JsonFaceModule:
    """Parses what the module sends; counts what it had to drop."""

    def __init__(self, require_crc=False):
        self.require_crc = require_crc
        self.buf = bytearray()
        self.overlong = False
        self.frames = 0
        self.bad_crc = 0
        self.malformed = 0

    def feed(self, data):
        """Bytes from the UART -> a list of events: (FACE, person id or None,
        score, liveness True/False/None), (HEARTBEAT,), (ERROR, message)."""
        out = []
        for b in data:
            if b == 10:
                if self.overlong:
                    self.overlong = False
                    self.malformed += 1
                elif self.buf:
                    ev = self._frame(bytes(self.buf))
                    if ev is not None:
                        out.append(ev)
                self.buf = bytearray()
            elif self.overlong or b == 13:
                pass
            elif len(self.buf) >= LINE_MAX:
                self.overlong = True
            else:
                self.buf.append(b)
        return out

    def _frame(self, line):
        star = line.rfind(b"*")
        if star >= 0 and len(line) - star == 5:
            body, tail = line[:star], line[star + 1 :]
            try:
                ok = int(tail, 16) == crc16(body)
            except ValueError:
                ok = False
            if not ok:
                self.bad_crc += 1
                return None
        elif self.require_crc:
            self.bad_crc += 1
            return None
        else:
            body = line
        try:
            msg = json.loads(body)
        except ValueError:
            self.malformed += 1
            return None
        ev = _event(msg) if isinstance(msg, dict) else None
        if ev is None:
            self.malformed += 1
            return None
        self.frames += 1
        return ev


def _event(msg):
    kind = msg.get("type")
    if kind == HEARTBEAT:
        return (HEARTBEAT,)
    if kind == ERROR:
        m = msg.get("msg")
        return (ERROR, m if isinstance(m, str) else "")
    if kind != FACE:
        return None
    score = msg.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        return None
    pid = msg.get("id")
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if pid is not None and (not isinstance(pid, str) or len(pid) > 32):
        return None
    live = msg.get("live")
    if live is not None:
        if live not in (0, 1, True, False):
            return None
        live = bool(live)
    return (FACE, pid or None, score, live)
