# The virtual ESP32's core: the board being simulated, its clock and its events.
# The modules beside this one (machine, time, micropython, network, ntptime, os)
# give MicroPython's API on top of it. Runs on CPython and on MicroPython.
#
# Time is discrete-event: the world holds the true time (int microseconds since
# 2000-01-01 UTC) and a queue of events; when the firmware sleeps, the world
# jumps from event to event up to the wake-up time. The firmware's own work
# takes no virtual time.

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

SCHEDULE_DEPTH = 8  # micropython.schedule's queue on the ESP32
# The longest real time the clock waits for an answer a broker owes: after it,
# the answer is taken as lost and time goes on. A broker the scenario has hung
# (stopped) answers nothing: 2 s. One that runs always answers, but on a loaded
# machine it may take seconds to be scheduled: given up on after 2 s, its answer
# made the same scenario's timeline differ from one run to the next (seen under
# a load of 20 on 2 cores). A killed one closes the connection: no wait at all.
ANSWER_WAIT_MS = 2000
ANSWER_WAIT_RUNNING_MS = 30000


def answer_wait_ms():
    return ANSWER_WAIT_MS if board is not None and board.world.broker_hung else ANSWER_WAIT_RUNNING_MS


# The runtime's own socket and select modules (the virtual ones shadow them),
# set by the platform before the firmware runs.
net = None
net_select = None


def net_ready(socks, timeout_ms):
    """Is any of these real sockets readable (data, end or error) within timeout_ms?
    In a fleet (World.hold), the other lamps run while this one waits."""
    hold = board.world.hold if board is not None and timeout_ms else None
    if hold is not None:
        return hold(socks, timeout_ms)
    p = net_select.poll()
    for s in socks:
        p.register(s, 1)
    return bool(p.poll(timeout_ms))


class Reset(BaseException):
    """Unwinds the firmware when the board resets (not an Exception: firmware that
    catches Exception must not swallow it, as it cannot stop a real reset)."""

    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


class PowerLoss(BaseException):
    pass


class Stop(BaseException):
    """The end of the scenario."""


class WorldFailed(BaseException):
    """The simulator's side failed while the world applied an event (the broker
    would not come back, the centre, a fault in the world itself): not the
    firmware's doing. Not an Exception either, so that the firmware's own
    `except Exception` does not take it for one of its errors (main.py stopped,
    the watchdog): it ends the run. what: the event (`broker up`); line: its
    scenario line, or None; error: what was raised."""

    def __init__(self, what, line, t_us, error):
        super().__init__("%s (scenario line %s): %s" % (what, line, error))
        self.what = what
        self.line = line
        self.t_us = t_us
        self.error = error


board = None  # the Board the firmware running now belongs to
# What puts the board's static peripherals (machine's pins, network's WLAN) back
# as they are at power-on, at every reset: their modules add to it as they load.
on_reset = []


class Board:
    """One virtual ESP32: what survives a reset (RTC, RTC memory, pins' wiring) and
    what the firmware's machine objects act on."""

    def __init__(self, world, fs, uid, chip="esp32"):
        import chips  # the firmware's table of what each chip's GPIOs can do

        self.world = world
        self.fs = fs
        self.uid = uid
        self.chip = chip  # "esp32" (the lamp) or "esp32s3" (the kiosk)
        self.gpio = chips.pins[chip][0]  # one character a GPIO (firmware/lib/chips.py)
        self.power_on_us = world.now_us
        self.rtc_offset_us = -world.now_us  # the RTC starts at 2000-01-01 at power-on
        self.rtc_memory = b""
        self.reset_cause = PWRON_RESET
        self.schedule = []
        self.wdt_timeout_us = 0  # 0: not started
        self.wdt_fed_us = 0
        self.pin_values = {}
        self.irqs = {}  # pin id -> (handler, trigger, pin object)
        self.irqs_dropped = 0
        self.sleeps = 0
        self.sockets = []  # the firmware's open virtual sockets
        self.net_activity = 0  # bytes moved on them, as a change counter
        self.to_centre = 0  # messages published on topics the centre listens to
        self.lingering = []  # connections lost without a goodbye, still open at the broker
        self.wills = 0  # connections that ended at the broker without a goodbye
        self.console_wanted = False  # the firmware is polling its serial console now
        self.uarts = {}  # UART id -> the firmware's machine.UART: what the world writes to
        # The OTA table's app slots and otadata (esp32.OtaFlash), or None: a board
        # flashed with MicroPython's plain table (one factory app).
        self.ota = None

    def rx_waiting(self):
        """Bytes the world sent wait in a UART: the firmware must see them now."""
        for u in self.uarts.values():
            if u.any():
                return True
        return False

    def console_ready(self):
        """A byte typed on the serial console waits to be read (the virtual board's)."""
        return False

    # --- power and resets ------------------------------------------------

    def power_on(self):
        self.power_on_us = self.world.now_us
        self.rtc_offset_us = -self.world.now_us
        self.rtc_memory = b""
        self.reset_cause = PWRON_RESET
        self._boot()

    def reset(self, cause):
        self.reset_cause = cause
        self._boot()

    def _boot(self):
        # A reset stops the watchdog and drops IRQs, queued callbacks and pin state.
        self.schedule = []
        self.wdt_timeout_us = 0
        self.irqs = {}
        self.pin_values = {}
        self.uarts = {}
        for f in on_reset:
            f()
        self.drop_connections()
        if self.ota is not None:
            self.ota.boot()  # the second-stage bootloader picks the app (and may roll back)

    def drop_connections(self):
        """Power or RAM is gone: the board's connections vanish without a goodbye."""
        for s in list(self.sockets):
            s.close(abrupt=True)

    # --- time ------------------------------------------------------------

    def uptime_us(self):
        """Microseconds since power-on, unwrapped (time.ticks_* wrap it)."""
        return self.world.now_us - self.power_on_us

    def rtc_us(self):
        return self.world.now_us + self.rtc_offset_us

    def set_rtc_us(self, t_us):
        self.rtc_offset_us = t_us - self.world.now_us

    def sleep_us(self, us):
        """The firmware waits: the world moves on; scheduled callbacks run meanwhile."""
        self.wait_us(us)

    def wait_us(self, us, ready=None):
        """Wait up to `us` (-1: for ever) or until ready() gives something true,
        which is returned ([] at the end of the wait). Scheduled callbacks run
        meanwhile; an answer a broker owes is waited for in real time first."""
        self.sleeps += 1
        world = self.world
        target = world.end_us if us < 0 else world.now_us + (us if us > 0 else 0)
        while True:
            if not world.powered:
                raise PowerLoss()  # cut in the middle of what the firmware was doing
            if self.schedule:
                self.run_scheduled()
            if ready is not None:
                r = ready()
                if r:
                    return r
            if world.now_us >= target:
                return []
            owing = None  # (a loop, not a list comprehension: this runs at every wake-up)
            for s in self.sockets:
                if s.owed:
                    if owing is None:
                        owing = []
                    owing.append(s)
            if owing and world.wifi_up():
                if net_ready([s._s for s in owing], answer_wait_ms()):
                    if ready is not None:
                        continue  # ready() sees it at once
                else:
                    for s in owing:
                        s.owed = s.pushes = 0  # not coming: time goes on
            expiry = self.wdt_fed_us + self.wdt_timeout_us if self.wdt_timeout_us else None
            if expiry is not None and expiry <= target:
                world.advance(expiry)
                if self.wdt_timeout_us and self.wdt_fed_us + self.wdt_timeout_us <= world.now_us:
                    world.note("reset", "watchdog expired")
                    raise Reset(WDT_RESET)
                continue
            world.advance(target, stop_early=True)

    # --- soft IRQs -------------------------------------------------------

    def schedule_call(self, fn, arg):
        if len(self.schedule) >= SCHEDULE_DEPTH:
            raise RuntimeError("schedule queue full")
        self.schedule.append((fn, arg))

    def run_scheduled(self):
        while self.schedule:
            fn, arg = self.schedule.pop(0)
            fn(arg)

    def pin_edge(self, pin_id, value):
        """The world changed an input pin: a soft IRQ, as on the ESP32."""
        old = self.pin_values.get(pin_id)
        self.pin_values[pin_id] = value
        irq = self.irqs.get(pin_id)
        if irq is None or old == value:
            return
        handler, trigger, pin = irq
        if (value and trigger & 2) or (not value and trigger & 1):  # IRQ_RISING 2, IRQ_FALLING 1
            # The port's pin ISR drops the callback when the queue is full (only
            # micropython.schedule() called from Python raises).
            if len(self.schedule) < SCHEDULE_DEPTH:
                self.schedule.append((handler, pin))
            else:
                self.irqs_dropped += 1

    # --- the watchdog ----------------------------------------------------

    def wdt_start(self, timeout_ms):
        self.wdt_timeout_us = timeout_ms * 1000
        self.wdt_fed_us = self.world.now_us

    def wdt_feed(self):
        self.wdt_fed_us = self.world.now_us
