# The virtual ESP32's `network` module: a Wi-Fi station whose link the world
# controls (up, down, flapping). Status codes are the ESP32 port's.

import _hub

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204


class WLAN:
    """WLAN(STA_IF) and WLAN(AP_IF) are the port's two static objects (see machine);
    what they hold is the Wi-Fi driver's, which a reset restarts."""

    def __new__(cls, interface=STA_IF):
        if interface not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        return _IFS[interface]

    def __init__(self, interface=STA_IF):
        pass

    def _power_on(self, interface):
        self.interface = interface
        self._active = False
        self._ssid = None

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        return None

    def connect(self, ssid=None, key=None, **kw):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = ssid

    def disconnect(self):
        self._ssid = None

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def status(self, param=None):
        if not self._active or self._ssid is None:
            return STAT_IDLE
        return STAT_GOT_IP if _hub.board.world.wifi_up() else STAT_NO_AP_FOUND

    def ifconfig(self, config=None):
        return ("10.0.0.%d" % (2 + _hub.board.uid[-1] % 250), "255.255.255.0", "10.0.0.1", "10.0.0.1")

    def config(self, *args, **kw):
        if args and args[0] == "mac":
            return b"\x24\x0a\xc4" + _hub.board.uid[-3:]
        return None


_IFS = [object.__new__(WLAN), object.__new__(WLAN)]


def _power_on_state():
    for i, w in enumerate(_IFS):
        w._power_on(i)


_power_on_state()
_hub.on_reset.append(_power_on_state)
