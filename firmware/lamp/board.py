# The lamp controller's hardware: pins come from the configuration's "pins"
# (defaults: an ESP32 DevKitC, see docs/lamp-config.md). What both apps share
# (clock, console, network, watchdog, the loop's wait) is boardbase's. The
# simulator provides its own `machine` with the same API, so this file runs
# unmodified there too.

import time

import boardbase
import machine
from boardbase import Wake


class Board(boardbase.Board):
    PREFIX = "lamp-"

    def __init__(self, cfg):
        p = cfg.pins
        self.app_pins = [v for k, v in p.items() if k != "relay_active"]
        Pin = machine.Pin
        self.relay_active = p["relay_active"]
        # The relay pin is driven to "closed" first: lamps stay lit through boot.
        self.relay = Pin(p["relay"], Pin.OUT, value=self.relay_active)
        self.pwm = machine.PWM(Pin(p["pwm"]), freq=cfg.pwm_hz, duty_u16=65535)
        super().__init__(cfg)
        self.light_adc = machine.ADC(Pin(p["light_adc"]), atten=machine.ADC.ATTN_11DB)
        self.current_adc = machine.ADC(Pin(p["current_adc"]), atten=machine.ADC.ATTN_11DB)
        self.i2c = machine.I2C(0, scl=Pin(p["i2c_scl"]), sda=Pin(p["i2c_sda"]), freq=400000)
        self.button_pin = Pin(p["button"], Pin.IN, Pin.PULL_UP)
        self.button_led = Pin(p["button_led"], Pin.OUT, value=0)

    def watch_button(self, button):
        """Pin IRQ on both edges into `button` (a button.Button); its flag wakes the loop."""
        self.button_pin.irq(button.irq, machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
        self.wake_on(Wake(lambda: button.flag))

    # --- the HIL rig's pins (diag `test`, test mode only) ---------------------

    def _rig_pin(self, n):
        if n in self.app_pins:
            raise ValueError("pin %d is the lamp's own, not the rig's" % n)
        return n

    def test_pulse(self, n, ms):
        """The rig's output low for ms (a button press, through a jumper), then high."""
        p = machine.Pin(self._rig_pin(n), machine.Pin.OUT, value=1)
        p.value(0)
        time.sleep_ms(ms)
        p.value(1)

    def test_pin(self, n, v=None):
        if v is None:
            return machine.Pin(n, machine.Pin.IN).value()
        machine.Pin(self._rig_pin(n), machine.Pin.OUT, value=v)
        return v

    def test_adc(self, n):
        return machine.ADC(machine.Pin(n), atten=machine.ADC.ATTN_11DB).read_u16()


def failsafe(p, duty):
    """Safe mode's lamp (safemode.py): the relay closed and the PWM at `duty` on
    the pins p, nothing else of the board's; raises what machine raises for a pin
    the chip refuses. The PWM is returned: it must stay referenced."""
    Pin = machine.Pin
    Pin(p["relay"], Pin.OUT, value=p["relay_active"])
    return machine.PWM(Pin(p["pwm"]), freq=1000, duty_u16=duty)
