# The virtual ESP32's `ssl`: the board's names (MicroPython's ssl module), without
# TLS. The virtual socket reads the MQTT packets going by to keep virtual time
# (docs/sim.md), which it could not do through encryption; so a context cannot be
# made, and a connection asked to use TLS fails, saying so, as a broker that
# cannot be reached would. The firmware's TLS is tested on the real interpreter
# against Mosquitto (tests/test_tls.py).

PROTOCOL_TLS_CLIENT = 0
CERT_NONE = 0
CERT_REQUIRED = 2


class SSLContext:
    def __init__(self, protocol):
        raise OSError("the simulator's network has no TLS")
