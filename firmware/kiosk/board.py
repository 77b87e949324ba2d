# The check-in kiosk's hardware (ESP32-S3 with PSRAM): the face-recognition
# module on a UART, the ST7789 display on SPI, a buzzer. Pins come from the
# configuration's "pins" (docs/kiosk-config.md). What both apps share (clock,
# console, network, watchdog, the loop's wait) is boardbase's; the simulator's
# `machine` has the same API, so this runs unmodified there too.

import boardbase
import framebuf
import machine
from st7789 import ST7789

WIDTH = 240
HEIGHT = 320
BEEP_HZ = 2700  # a piezo buzzer's loudest


class Board(boardbase.Board):
    PREFIX = "kiosk-"

    def __init__(self, cfg):
        super().__init__(cfg)
        p = cfg.pins
        Pin = machine.Pin
        self.face = machine.UART(
            1, baudrate=cfg.face_baud, tx=Pin(p["face_tx"]), rx=Pin(p["face_rx"]), rxbuf=1024
        )
        spi = machine.SPI(1, baudrate=40000000, sck=Pin(p["lcd_sck"]), mosi=Pin(p["lcd_mosi"]))
        self.display = ST7789(
            spi,
            Pin(p["lcd_dc"], Pin.OUT, value=0),
            Pin(p["lcd_cs"], Pin.OUT, value=1),
            Pin(p["lcd_rst"], Pin.OUT, value=1),
            self.sleep_ms,
            WIDTH,
            HEIGHT,
            Pin(p["lcd_bl"], Pin.OUT, value=0),
        )
        # The frame buffer (150 KB) is the one big allocation: in PSRAM on the S3.
        self.buf = bytearray(WIDTH * HEIGHT * 2)
        self.fb = framebuf.FrameBuffer(self.buf, WIDTH, HEIGHT, framebuf.RGB565)
        self.buzzer = machine.PWM(Pin(p["buzzer"]), freq=BEEP_HZ, duty_u16=0)

    def start_display(self):
        self.display.init()

    def show(self):
        """The frame buffer onto the panel."""
        self.display.show(self.buf)

    def face_read(self):
        """What the face module has sent, without waiting (b"" for nothing)."""
        if not self.face.any():
            return b""
        return self.face.read() or b""

    def buzz(self, on):
        self.buzzer.duty_u16(32768 if on else 0)
