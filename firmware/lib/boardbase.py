# What both apps' boards share: the ESP32's clock, the serial console, the
# network (Wi-Fi, non-blocking sockets, NTP), the watchdog and the loop's wait.
# Each app's board module subclasses Board and adds its own peripherals; only
# board modules construct machine.* objects. The simulator provides its own
# `machine`, `network`, `select` with the same API, so this runs there too.

import io
import select
import sys
import time

import machine
from civil import epoch_offset, split

_POLLIN = 1
_STREAM_POLL = 3  # MP_STREAM_POLL: how select.poll asks a stream if it is ready

WDT_MS = 60000  # a hung loop resets within a minute; longer sleeps are cut to feed it
# The longest wait: the watchdog is then fed with 10 s to spare (a pass takes
# milliseconds). Each wake-up costs power on the board and time in the simulator.
WAIT_MAX_MS = WDT_MS - 10000
# Written into RTC memory when a trusted source sets the clock: a reset that
# keeps the RTC running (not a power-on) may then trust it.
_RTC_MARK = b"park-time-ok"
_HALF_SECOND_US = 500000  # the RTC's sub-second field is in microseconds


class SystemClock:
    """The ESP32's RTC as park time (UTC, seconds since 2000)."""

    def __init__(self, rtc):
        self.rtc = rtc
        self.offset = epoch_offset(time.gmtime)

    def now(self):
        return time.time() + self.offset

    def set(self, t):
        # The RTC keeps UTC civil time; split works on park time directly. Every
        # source gives whole seconds (ntptime drops the NTP answer's fraction; the
        # DS3231 counts seconds): the true time is somewhere in second t, and the
        # RTC is set to its middle. Set to its start, the clock ran behind the
        # world's by up to a second (a check-in at 07:46:00 was welcomed at 07:45).
        y, m, d, hh, mm, ss, wd = split(t)[:7]
        self.rtc.datetime((y, m, d, wd, hh, mm, ss, _HALF_SECOND_US))
        self.rtc.memory(_RTC_MARK)


class Wake(io.IOBase):
    """A stream that select.poll sees as readable while `flag()` is true: it lets
    a pin IRQ (which only sets a flag) end the main loop's wait at once, as
    asyncio's ThreadSafeFlag does."""

    def __init__(self, flag):
        self.flag = flag

    def ioctl(self, req, arg):
        if req == _STREAM_POLL and self.flag():
            return arg & _POLLIN
        return 0


def open_socket(addrs, host, port, ca=None):
    """A non-blocking TCP connection to host:port, being made. addrs keeps the
    resolver's answers. With `ca`, the path of a file holding a CA certificate
    (DER: MicroPython's ssl takes no PEM), TLS: the broker's certificate must be
    signed by that CA and name `host`, or reading and writing raise (MicroPython:
    ValueError). The handshake goes on as the socket is read and written, without
    blocking."""
    import socket

    addr = addrs.get(host)
    if addr is None:
        # The one call here that can block (lwIP's resolver waits for the DNS
        # answer), so the answer is kept: once per host, not at every reconnect.
        addr = socket.getaddrinfo(host, port)[0][-1]
        addrs[host] = addr
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(addr)
    except OSError as e:
        if e.args[0] not in (115, 119):  # EINPROGRESS (Linux, lwip): expected
            s.close()
            addrs.pop(host, None)  # ask the DNS again next time
            raise
    if ca is None:
        return s
    import ssl

    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(ca, "rb") as f:
            ctx.load_verify_locations(cadata=f.read())
        return ctx.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
    except (OSError, ValueError) as e:
        s.close()
        raise OSError("TLS with %s: %s" % (ca, str(e).strip()))


class Board:
    PREFIX = "esp32-"  # of the default device id

    def __init__(self, cfg):
        self.rtc = machine.RTC()
        self.clock = SystemClock(self.rtc)
        self._poll = select.poll()
        self._watched = None  # the socket the wait also watches
        self._addrs = {}  # host -> address, resolved once
        self.wdt = None
        self.wlan = None
        self.console_pending = False  # bytes wait on the serial console
        self._console_poll = select.poll()  # the console alone, to read it without waiting
        if cfg.ssid:
            import network

            self.wlan = network.WLAN(network.STA_IF)

    def wake_on(self, stream):
        """Data on `stream` (a UART, a Wake) also ends the loop's wait."""
        self._poll.register(stream, _POLLIN)

    def watch_console(self):
        """Bytes on the USB serial console (stdin while main.py runs) also end the wait."""
        self._poll.register(sys.stdin, _POLLIN)
        self._console_poll.register(sys.stdin, _POLLIN)

    def console_read(self, limit=128):
        """What has been typed on the console, without waiting (at most `limit` bytes;
        console_pending stays set while there may be more)."""
        if not self.console_pending:
            return b""
        out = bytearray()
        p = self._console_poll
        while len(out) < limit and p.poll(0):
            out += sys.stdin.buffer.read(1)
        self.console_pending = len(out) >= limit
        return out

    def console_write(self, line):
        print(line)

    def watch(self, sock):
        """Data arriving on `sock` (None: no socket) also ends the wait."""
        if sock is self._watched:
            return
        if self._watched is not None:
            self._poll.unregister(self._watched)
        if sock is not None:
            self._poll.register(sock, _POLLIN)
        self._watched = sock

    def open_socket(self, host, port, ca=None):
        """A non-blocking TCP connection to host:port, being made (for mqtt.Client);
        with `ca` (a file holding the CA certificate), TLS: the module's open_socket."""
        return open_socket(self._addrs, host, port, ca)

    def device_id(self):
        """The default device id: the app's prefix and the chip's id in hex."""
        return self.PREFIX + "".join("%02x" % b for b in machine.unique_id())

    def restart(self):
        machine.reset()

    def reset_cause(self):
        return machine.reset_cause()

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def ntp_time(self):
        """Park time from NTP (blocks up to ntptime.timeout); OSError without an answer,
        ValueError for one too short to read (ntptime unpacks its bytes 40..44)."""
        import ntptime

        return ntptime.time() + self.clock.offset

    def rtc_trusted(self):
        if machine.reset_cause() == machine.PWRON_RESET:
            return False
        return bytes(self.rtc.memory()) == _RTC_MARK

    def start_watchdog(self, ms=None):
        # Cannot be stopped once started (ESP32): only after the first good pass.
        self.wdt = machine.WDT(timeout=ms or WDT_MS)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def ticks_ms(self):
        return time.ticks_ms()

    def wait_until(self, deadline, healthy=True):
        """Until `deadline` (ticks) or something to read on what the wait watches.
        A long wait is cut so that a healthy loop keeps feeding the watchdog; an
        unhealthy one is left to be reset."""
        while True:
            ms = time.ticks_diff(deadline, time.ticks_ms())
            if ms <= 0:
                return
            ready = self._poll.poll(ms if ms < WAIT_MAX_MS else WAIT_MAX_MS)
            if healthy:
                self.feed()
            if ready:
                for entry in ready:
                    if entry[0] is sys.stdin:
                        self.console_pending = True
                return
