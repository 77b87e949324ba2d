# The world around a simulated check-in kiosk: the people in front of its face
# module (frames on the UART, as the module sends them), the display on its SPI
# bus (sim/panel.py rebuilds each frame from the bytes and pin levels), the
# buzzer; mains, Wi-Fi and NTP as for the lamp (sim/world.py). Runs on CPython
# and on MicroPython.

import json

import kioskconfig
from facemodule import crc16
from panel import Panel
from world import World


class KioskWorld(World):
    def configure(self, config):
        cfg = kioskconfig.parse(config)
        self.lat = 0.0
        self.lon = 0.0
        self.gamma = 1.0
        self.pins = cfg.pins
        self.face_crc = cfg.face_crc
        self.panel = Panel(240, 320)
        self.panel.on_frame = self._frame
        self.frames = 0
        self.frame_sink = None  # fn(number, t_us, ram): where frames are kept (--frames)
        self.last_frame = None
        self.beeps = 0
        # Real-time mode only (the platform sets it): fn() -> wall-clock us, to
        # time a face frame's arrival to the next frame on the panel.
        self.wall_us = None
        self._face_wall = None
        self._lines = {
            self.pins["lcd_dc"]: "dc",
            self.pins["lcd_cs"]: "cs",
            self.pins["lcd_rst"]: "rst",
            self.pins["lcd_bl"]: "bl",
        }

    # --- the face module -----------------------------------------------------

    def apply(self, ev):
        if ev["do"] != "face":
            return World.apply(self, ev)
        what = ev["what"]
        if what == "garbage":
            n = 8 + self.rand.next() % 40
            line = bytes(32 + self.rand.next() % 95 for _ in range(n)) + b"\r\n"
            self.note("world", "garbage on the face module's line")
        elif what == "error":
            body = json.dumps({"type": "error", "msg": ev["msg"]}).encode()
            line = body + (b"*%04X" % crc16(body) if self.face_crc else b"") + b"\r\n"
            self.note("world", "the face module reports an error: %s" % ev["msg"])
        else:
            msg = {"type": "face", "score": ev.get("score", 0.0)}
            if what in ("person", "badcrc"):
                msg["id"] = ev["id"]
            if ev.get("live") is not None:
                msg["live"] = ev["live"]
            body = json.dumps(msg).encode()
            crc = crc16(body)
            if what == "badcrc":
                crc ^= 0x5A5A
            if self.face_crc or what == "badcrc":
                body += b"*%04X" % crc
            line = body + b"\r\n"
            self.note("world", self._describe(ev))
        if self.board is not None and self.powered:
            u = self.board.uarts.get(1)
            if u is not None:
                u.receive(line)
                if self.wall_us is not None and what not in ("garbage", "error"):
                    self._face_wall = self.wall_us()

    def _describe(self, ev):
        what = ev["what"]
        if what == "unknown":
            return "an unknown face, score %.2f" % ev.get("score", 0.0)
        live = ev.get("live")
        tail = " (liveness failed: a photo)" if live == 0 else ""
        if what == "badcrc":
            tail += ", CRC damaged"
        return "person %s at the kiosk, score %.2f%s" % (ev["id"], ev.get("score", 0.0), tail)

    # --- the display and the buzzer ------------------------------------------

    def pin_out(self, board, pin, value):
        name = self._lines.get(pin)
        if name is not None:
            self.panel.pin(name, value)

    def spi_write(self, board, bus, data):
        self.panel.spi(data)

    def _frame(self, ram):
        wall = self.wall_us
        if self._face_wall is not None and wall is not None:
            self.log(self.now_us, "latency", "face to frame %d us" % (wall() - self._face_wall))
            self._face_wall = None
        self.frames += 1
        self.last_frame = ram
        if self.frame_sink is not None:
            self.frame_sink(self.frames, self.now_us, ram)

    def pwm_out(self, board, pin, duty):
        if pin == self.pins["buzzer"] and duty:
            self.beeps += 1
            self.log(self.now_us, "buzzer", "beep")

    def pin_in(self, board, pin):
        return 0

    def adc(self, board, pin):
        return 0

    def _observe(self):
        pass  # no lamp here

    def i2c_scan(self, board):
        return []

    def i2c_read(self, board, addr, reg, n):
        raise OSError(19)  # no DS3231 on the kiosk

    def i2c_write(self, board, addr, reg, data):
        raise OSError(19)
