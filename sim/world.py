# The world around a simulated lamp controller: the true time, the sun and the
# sky, mains power, the lamp and its driver, the photocell, the DS3231 clock,
# Wi-Fi and NTP; and what can go wrong with each. Runs on CPython and on
# MicroPython. Deterministic: all noise comes from one seeded generator.

import heapq
import math

import sun
from _hub import HARD_RESET, PowerLoss, Reset, Stop, WorldFailed, net_ready
from civil import split, to_seconds

DS3231_ADDR = 0x68
LAMP_AMPS = 1.0  # at full output
STANDBY_AMPS = 0.03  # the driver with power, dark
ADC_AMPS = 5.0  # the current sensor's full scale
ADC_LUX = 2000.0  # the photocell's full scale
STORM_DIMMING = 0.0002  # a storm's black clouds: a summer afternoon's 60,000 lux to about 12
PHOTOCELL_FLOOR = 48  # counts in total darkness
PHOTOCELL_CEILING = 64000  # counts in full sun
CLOUD_STEP_US = 600 * 1000000
# The chip's typical times (Winbond W25Q32JV: page program 0.4 ms, 4 KiB sector
# erase 45 ms). A program takes its time whatever its length (a part page costs
# nearly a whole one's), so both runtimes' littlefs, whose commits differ by a
# few padding bytes, take the same time (docs/sim.md).
FLASH_PROGRAM_US = 400
FLASH_ERASE_US = 45000


class Random:
    """xorshift32: small, and the same sequence on every runtime."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def uniform(self):
        return self.next() / 4294967296.0


def _bcd(n):
    return ((n // 10) << 4) | (n % 10)


def _unbcd(b):
    return (b >> 4) * 10 + (b & 0x0F)


class DS3231:
    """The battery-backed clock: keeps time while the board is off if its battery
    is good; a dead battery stops it (oscillator-stop flag set) at each power loss."""

    def __init__(self, world, set_to_true_time, battery_ok):
        self.world = world
        self.battery_ok = battery_ok
        self.offset_us = 0 if set_to_true_time else -world.now_us  # unset: reads 2000-01-01
        self.osf = not set_to_true_time
        self.frozen_us = None  # a stopped oscillator's reading
        self.regs = bytearray(0x13)

    def now_us(self):
        if self.frozen_us is not None:
            return self.frozen_us
        return self.world.now_us + self.offset_us

    def power_lost(self):
        if not self.battery_ok and self.frozen_us is None:
            self.frozen_us = self.now_us()
            self.osf = True

    def power_back(self):
        if self.frozen_us is not None:
            # It starts again from where it stopped.
            self.offset_us = self.frozen_us - self.world.now_us
            self.frozen_us = None

    def read(self, reg, n):
        y, m, d, hh, mm, ss, wd = split(self.now_us() // 1000000)[:7]
        r = self.regs
        r[0], r[1], r[2], r[3] = _bcd(ss), _bcd(mm), _bcd(hh), wd + 1
        r[4], r[5], r[6] = _bcd(d), _bcd(m) | (0x80 if y >= 2100 else 0), _bcd(y % 100)
        r[0x0F] = (r[0x0F] & 0x7F) | (0x80 if self.osf else 0)
        return bytes(r[reg : reg + n])

    def write(self, reg, data):
        r = self.regs
        for i in range(len(data)):
            r[reg + i] = data[i]
        if reg <= 6:
            t = to_seconds(
                2000 + _unbcd(r[6]) + (100 if r[5] & 0x80 else 0),
                _unbcd(r[5] & 0x1F),
                _unbcd(r[4]),
                _unbcd(r[2] & 0x3F),
                _unbcd(r[1]),
                _unbcd(r[0] & 0x7F),
            )
            self.offset_us = t * 1000000 - self.world.now_us
            self.frozen_us = None
        if reg <= 0x0F < reg + len(data):
            self.osf = bool(r[0x0F] & 0x80)


class World:
    def __init__(self, scenario, log):
        """scenario: the dict made by sim/scenario.py; log(t_us, kind, text) records
        the timeline."""
        self.log = log
        self.now_us = scenario["start"] * 1000000
        self.end_us = scenario["end"] * 1000000
        self.rand = Random(scenario.get("seed", 0))
        self.configure(scenario["config"])
        b = scenario.get("board", {})
        self.ds3231 = DS3231(self, b.get("ds3231", "set") == "set", b.get("rtc_battery", "ok") == "ok")
        self.ds3231.offset_us += b.get("clock_offset_s", 0) * 1000000
        self.ntp_step_s = 0
        self.ntp_ok = b.get("ntp", "ok") == "ok"
        self.wifi = b.get("wifi", "down") == "up"  # the access point, as the scenario sets it
        self.outages = 0  # `wifi down T - T` spans going on: the link is down while any is
        self.powered = True
        self.reset_due = False  # `at T board resets`: at the firmware's next wait
        self.lamp_ok = True
        self.photocell_fault = None  # None, "open", "short", "stuck"
        self.stuck_counts = 0
        self.clouds = 1.0
        self.storm = False  # a storm-dark sky (`at T sky storm`)
        self.next_cloud_us = self.now_us
        self.duty = 0
        self.relay_closed = False
        self.level = 0.0
        self._recorded = 0.0
        self.button_down = False
        self.led = False
        self.board = None
        self.pace = None  # real-time mode: pace(t_us) waits until the wall clock is there
        self.wait = None  # many lamps in one process: wait(t_us) lets the others catch up
        # and hold(socks, timeout_ms) lets them run while this lamp's broker answers
        self.hold = None
        # The flash chip (docs/sim.md): program and erase operations take time,
        # and a cut can land in the middle of one. flash_ops counts every one the
        # board has done; each cut armed for the N-th from a moment on is
        # [ops left to go, when the power comes back].
        self.flash_ops = 0
        # Whether they take time: scenario.py says so for a scenario that cuts
        # the power (docs/sim.md says why only then).
        self.flash_timed = scenario.get("flash_timed", True)
        self.cuts_armed = []
        self.torn = False  # the last operation was torn: the device writes its torn byte
        self.tear_bits = 0  # which of that byte's bits did change (flash_op)
        # The tear's point and bits: a generator of their own, so that arming a
        # cut does not change the scenario's noise.
        self.tear_rand = Random(scenario.get("seed", 0) + 0x7EA2)
        self.outside = None  # the centre and the broker (sim/centre.py Outside), when networked
        self.broker_hung = False
        self._settled = -1  # the board's net_activity when the centre last settled
        self._counted = (0, 0)  # the board's (to_centre, wills) when the broker last restarted
        self._queue = []
        self._seq = 0
        self._sun_cell = None  # (k, elevation at its start, at its end): see elevation()
        for ev in scenario.get("events", []):
            self.at(ev["at"] * 1000000, ev)

    def configure(self, config):
        # The installed configuration says where the lamp is and how it is wired:
        # read with the firmware's own parser, so defaults cannot drift apart.
        import lampconfig  # the lamp's: a kiosk's firmware path has no lampconfig

        cfg = lampconfig.parse(config)
        self.lat = cfg.lat
        self.lon = cfg.lon
        self.gamma = cfg.gamma
        self.pins = cfg.pins
        self._sun_cell = None

    # --- the event queue ---------------------------------------------------

    def at(self, t_us, ev):
        self._seq += 1
        heapq.heappush(self._queue, (t_us, self._seq, ev))

    def next_event_us(self):
        return self._queue[0][0] if self._queue else None

    def advance(self, target, stop_early=False):
        """Move the true time on to `target`, applying the events due on the way.
        Returns True when stopped early because an event queued a callback."""
        if self.wait is not None:
            self.wait(target if target < self.end_us else self.end_us)
        if self.outside is not None and target > self.now_us and self.board is not None:
            # Whatever the lamp sent is at the centre before the clock moves on.
            if self.board.net_activity != self._settled:
                b = self.board
                try:
                    pushed = self.outside.settle(b.to_centre - self._counted[0], b.wills - self._counted[1])
                except Exception as e:  # noqa: BLE001 - the simulator's side failed, not the firmware
                    raise self._failed({"do": "centre", "cmd": "settle"}, e) from e
                self._settled = self.board.net_activity
                if pushed:
                    # The centre answered the lamp's asks (pieces of a release):
                    # they arrive before the clock moves on.
                    for s in b.sockets:
                        for _ in range(pushed):
                            s.expect_push()
                    return True
        while self._queue and self._queue[0][0] <= target:
            t = self._queue[0][0]
            if t > self.now_us and self._pace_to(t):
                return True
            _, _, ev = heapq.heappop(self._queue)
            was_on = self.powered
            try:
                self.apply(ev)
            except Exception as e:  # noqa: BLE001 - the simulator's side failed, not the firmware
                raise self._failed(ev, e) from e
            if was_on and not self.powered:
                raise PowerLoss()
            if self.reset_due:
                self.reset_due = False
                self.note("reset", "the board is reset (the scenario's)")
                raise Reset(HARD_RESET)
            if (
                stop_early
                and self.board is not None
                and (self.board.schedule or self._pushed() or self.board.rx_waiting())
            ):
                return True  # an IRQ's callback, or data on its way: the firmware sees it now
        if target >= self.end_us:
            if self._pace_to(self.end_us):
                return True
            raise Stop()
        if target > self.now_us:
            if self.pace is None:
                self.now_us = target
            elif self._pace_to(target):
                return True
        return False

    def _failed(self, ev, e):
        """What ends the run when the world fails to apply `ev` (_hub.WorldFailed)."""
        what = ev["do"]
        for key in ("state", "cmd", "fault", "what"):
            if key in ev:
                what += " " + str(ev[key])
        # The host's own error, passed on as it was said there (mp_main.HostError).
        error = str(e) if type(e).__name__ == "HostError" else "%s: %s" % (type(e).__name__, e)
        return WorldFailed(what, ev.get("line"), self.now_us, error)

    def _pushed(self):
        for s in self.board.sockets:
            if s.pushes:
                return True
        return False

    def _pace_to(self, t):
        """Move the clock to t; in real-time mode, when the wall clock is there.
        True when data arrived on the board's network first (the clock then
        stops at the moment it came, and the firmware sees it)."""
        if self.pace is not None:
            early = self.pace(t, self._wake)
            if early is not None:
                if early > self.now_us:
                    self.now_us = early
                return True
        self.now_us = t
        return False

    def _wake(self, timeout_ms):
        """Real-time mode: wait up to timeout_ms for data on the board's sockets;
        None when it has none to wait on."""
        b = self.board
        if b is None or not b.sockets or not self.wifi_up():
            return None
        if not net_ready([s._s for s in b.sockets], timeout_ms):
            return False
        for s in b.sockets:
            s.news()  # data came: the sockets look at once
        return True

    def apply(self, ev):
        do = ev["do"]
        if do == "power_off":
            self.set_power(False)
        elif do == "power_on":
            self.set_power(True)
        elif do == "reset":
            self.reset_due = self.powered
        elif do == "cut_op":
            n = ev.get("n", 1)
            self.cuts_armed.append([n, ev["until"] * 1000000])
            self.note("world", "the power will go in flash operation %d from now" % n)
        elif do == "lamp_fail":
            self.lamp_ok = False
            self.note("world", "the lamp fails")
            self._observe()
        elif do == "lamp_repair":
            self.lamp_ok = True
            self.note("world", "the lamp is replaced")
            self._observe()
        elif do == "photocell":
            fault = ev.get("fault")
            self.photocell_fault = None if fault == "ok" else fault
            self.stuck_counts = self._photocell_counts() if fault == "stuck" else 0
            self.note("world", "photocell %s" % fault)
        elif do == "sky":
            self.storm = ev["state"] == "storm"
            self.note("world", "sky %s" % ev["state"])
        elif do == "press":
            self._press(ev["ms"])
        elif do == "noise":
            self._spike(ev["ms"])
        elif do == "button":
            self._set_button(ev["down"])
        elif do == "chatter":
            self._chattered(ev)
        elif do == "wifi_flap":
            # Up and down at random for the span, each state for 5 to 60 s, and
            # up when it ends (as after an outage). One change is queued at a
            # time (the queue is in the heap the benchmarks measure), drawn from
            # a generator of its own: the flaps do not depend on what else
            # draws noise meanwhile.
            self.note("world", "Wi-Fi starts flapping")
            self._flip(
                {
                    "do": "wifi_flip",
                    "until": ev["until"],
                    "line": ev.get("line"),
                    "rand": Random(self.rand.next()),
                }
            )
        elif do == "wifi_flip":
            if self.now_us >= ev["until"] * 1000000:
                self._set_wifi(True)
                self.note("world", "Wi-Fi stops flapping")
            else:
                self._set_wifi(not self.wifi)
                self._flip(ev)
        elif do == "wifi":
            if "outage" in ev:
                self._set_wifi(None, ev["outage"])
            else:
                self._set_wifi(ev.get("state") == "up")
        elif do == "ntp":
            self.ntp_ok = ev.get("state", "ok") == "ok"
            self.ntp_step_s = ev.get("step", 0)
            self.note(
                "world",
                "NTP server %s, step %+d s" % ("answers" if self.ntp_ok else "silent", self.ntp_step_s),
            )
        elif do == "linger_end":
            ev["sock"].linger_end(ev["gen"])  # the broker's keepalive ran out
        elif do == "centre":
            if self.outside is None:
                self.note("centre", "no centre: the scenario has no network")
            elif self.outside.command(ev["cmd"], ev.get("message")) and self.board is not None:
                for s in self.board.sockets:
                    s.expect_push()
        elif do == "broker":
            if self.outside is None:
                self.note("broker", "no broker: the scenario has no network")
            else:
                if ev["state"] == "down" and self.board is not None:
                    # What the dead broker had is gone, and no will comes for
                    # connections it held: the centre counts afresh.
                    b = self.board
                    for s in b.sockets + b.lingering:
                        s.peer_gone = True
                    self._counted = (b.to_centre, b.wills)
                self.outside.broker(ev["state"])
                self.broker_hung = ev["state"] == "hung"  # nothing it owes comes (_hub.answer_wait_ms)
                if self.board is not None:
                    for s in self.board.sockets:
                        s.news()  # a connection ended by the broker is readable now
        elif do == "probe":
            self.log(self.now_us, "probe", "%d %.2f" % (ev["id"], self.level))
        elif do == "rtc_battery":
            self.ds3231.battery_ok = ev.get("state") == "ok"
            self.note("world", "RTC battery %s" % ev.get("state"))
        else:
            raise ValueError("unknown world event %r" % do)

    def _set_wifi(self, up, outage=0):
        """The access point up or down (None: as it is), and an outage beginning
        (+1) or ending (-1): outages nest, so that the end of one does not end
        another that goes on. Notes each change of the link on the timeline."""
        was = self.wifi and not self.outages
        if up is not None:
            self.wifi = up
        self.outages += outage
        now = self.wifi and not self.outages
        if now != was:
            self.note("world", "Wi-Fi up" if now else "Wi-Fi down")

    def _flip(self, ev):
        # The flapping Wi-Fi's next change, or its end (ev: the wifi_flip event, reused).
        until = ev["until"] * 1000000
        t = self.now_us + (5 + ev["rand"].next() % 56) * 1000000
        self.at(until if t > until else t, ev)

    # --- the alarm button: contacts bounce, lines pick up spikes ---------------

    def _bounce(self, t_us, settle_down):
        """Contact chatter on one edge from t_us: 3 to 8 flips over about 2-6 ms,
        then it settles. One change is queued at a time: the queue is in the heap
        the benchmarks measure, and a press must not grow it by a dozen events."""
        self._chatter(t_us, settle_down, settle_down, 3 + self.rand.next() % 6)

    def _chatter(self, t_us, down, settle_down, left):
        # The contact's next change, some 0.1-1 ms on; `left` more after it.
        t_us += 100 + self.rand.next() % 900
        self.at(t_us, {"do": "chatter", "down": down, "settle": settle_down, "left": left})

    def _chattered(self, ev):
        self._set_button(ev["down"])
        left = ev["left"]
        if left:
            # Flips alternate; the last change leaves the contact as it settles.
            self._chatter(self.now_us, ev["settle"] if left == 1 else not ev["down"], ev["settle"], left - 1)

    def _press(self, ms):
        self.note("world", "button pressed for %d ms" % ms)
        self._bounce(self.now_us, True)
        self._bounce(self.now_us + ms * 1000, False)

    def _spike(self, ms):
        self.note("world", "noise spike on the button line, %d ms" % ms)
        self.at(self.now_us, {"do": "button", "down": True})
        self.at(self.now_us + ms * 1000, {"do": "button", "down": False})

    def _set_button(self, down):
        self.button_down = down
        if self.board is not None and self.powered:
            # Active low: the contact pulls the input to ground.
            self.board.pin_edge(self.pins["button"], 0 if down else 1)

    def set_power(self, on):
        if on == self.powered:
            return
        self.powered = on
        if on:
            self.ds3231.power_back()
            self.note("power", "mains back")
        else:
            self.ds3231.power_lost()
            self.note("power", "mains cut")
            if self.led:
                self.led = False
                self.log(self.now_us, "led", "off")
        self._observe()

    def flash_op(self, erase, n):
        """One program (n bytes) or erase (n bytes: the sector) operation on the
        flash, which takes the chip's time: how many of its bytes are done.
        All of them; none without power; or, when the power goes part-way
        through (a cut armed for this operation, or a mains cut due in its
        time), the bytes before the tear. Then `tear_bits` says which bits of the
        next byte did change (a program clears some of the bits it should, an
        erase sets some), and the caller writes that byte too."""
        if not self.powered:
            return 0
        self.flash_ops += 1
        d = (FLASH_ERASE_US if erase else FLASH_PROGRAM_US) if self.flash_timed else 0
        start = self.now_us
        end = start + d
        until = None
        for c in self.cuts_armed:
            c[0] -= 1
            if c[0] == 0:
                until = c[1]
        if until is not None:
            self.cuts_armed = [c for c in self.cuts_armed if c[0] > 0]
            f = self.tear_rand.next() % 65536
            cut = start + d * f // 65536
            self._flash_events(cut)
            if not self.powered:  # a mains cut came first
                return self._torn_at(n, start, d)
            self.now_us = cut
            self.torn = True
            self.tear_bits = self.tear_rand.next() & 0xFF
            self.note("power", "mains cut in the middle of a flash %s" % ("erase" if erase else "write"))
            self.set_power(False)
            self.at(until if until > cut else cut + 1000000, {"do": "power_on"})
            return n * f // 65536
        q = self._queue
        if q and q[0][0] < end:
            self._flash_events(end)
            if not self.powered:
                return self._torn_at(n, start, d)
        self.now_us = end
        return n

    def _torn_at(self, n, start, d):
        # A mains cut (a scenario's `power off`) due while the chip worked.
        self.torn = True
        self.tear_bits = self.tear_rand.next() & 0xFF
        return n * (self.now_us - start) // d if d else 0

    def _flash_events(self, t_us):
        # The world goes on while the chip works (the firmware waits for it):
        # the events due before t_us, up to the first that cuts the power.
        q = self._queue
        while q and q[0][0] < t_us and self.powered:
            t, _, ev = heapq.heappop(q)
            if t > self.now_us:
                self.now_us = t
            self.apply(ev)

    def note(self, kind, text):
        self.log(self.now_us, kind, text)

    # --- the sky -----------------------------------------------------------

    def elevation(self):
        # The sun moves slowly: evaluate on a 5-minute grid and interpolate. Only
        # the cell the clock is in is kept: in MicroPython the world lives in the
        # heap the firmware's use is measured in, so it must not grow and shrink.
        step = 300
        t = self.now_us // 1000000
        k = t // step
        cell = self._sun_cell
        if cell is None or cell[0] != k:
            if cell is not None and cell[0] == k - 1:
                start = cell[2]  # the clock moved on into the next cell
            else:
                start = sun.elevation(k * step, self.lat, self.lon)
            cell = self._sun_cell = (k, start, sun.elevation((k + 1) * step, self.lat, self.lon))
        return cell[1] + (cell[2] - cell[1]) * (t - k * step) / step

    def lux(self):
        """Outdoor illuminance: clear sky from the sun's elevation, times clouds."""
        e = self.elevation()
        if e >= 0.0:
            clear = 400.0 + 100000.0 * math.sin(math.radians(e)) ** 1.2
        elif e >= -6.0:
            clear = 400.0 * 10.0 ** (e / 6.0 * 2.07)  # 400 lux at 0 deg, 3.4 at -6
        elif e >= -18.0:
            clear = 3.4 * 10.0 ** ((e + 6.0) / 12.0 * 3.5)
        else:
            clear = 0.001
        while self.now_us >= self.next_cloud_us:
            # A slow random walk between overcast (0.1) and clear (1.0).
            self.clouds += (self.rand.uniform() - 0.5) * 0.2
            self.clouds = 0.1 if self.clouds < 0.1 else (1.0 if self.clouds > 1.0 else self.clouds)
            self.next_cloud_us += CLOUD_STEP_US
        if self.storm:
            return clear * STORM_DIMMING
        return clear * self.clouds

    # --- what the board's pins see ----------------------------------------

    def _photocell_counts(self):
        # A live sensor stays off both rails: its divider leaks a little in the
        # dark and saturates just below full scale in the sun. Only an open or
        # shorted sensor reads 0 or 65535 (what the firmware checks for).
        c = PHOTOCELL_FLOOR + int(self.lux() / ADC_LUX * 65535) + (self.rand.next() & 7)
        return PHOTOCELL_CEILING if c > PHOTOCELL_CEILING else c

    def adc(self, board, pin):
        if pin == self.pins["light_adc"]:
            f = self.photocell_fault
            if f == "open":
                return 65535
            if f == "short":
                return 0
            if f == "stuck":
                return self.stuck_counts
            return self._photocell_counts()
        if pin == self.pins["current_adc"]:
            amps = 0.0
            if self.powered and self.relay_closed:
                amps = STANDBY_AMPS
                if self.lamp_ok:
                    amps += LAMP_AMPS * self.duty / 65535
            # A little sensor noise, so nothing is ever perfectly constant.
            counts = int(amps / ADC_AMPS * 65535) + (self.rand.next() & 15)
            return 65535 if counts > 65535 else counts
        return 0

    def pin_in(self, board, pin):
        if pin == self.pins["button"]:
            return 0 if self.button_down else 1  # pulled up; the contact pulls it low
        return 0

    def pin_out(self, board, pin, value):
        if pin == self.pins["relay"]:
            self.relay_closed = value == self.pins["relay_active"]
            self._observe()
        elif pin == self.pins["button_led"] and bool(value) != self.led:
            # The button's ring LED, as responders see it.
            self.led = bool(value)
            self.log(self.now_us, "led", "on" if value else "off")

    def pwm_out(self, board, pin, duty):
        if pin == self.pins["pwm"]:
            self.duty = duty
            self._observe()

    def _observe(self):
        lit = self.powered and self.relay_closed and self.lamp_ok and self.duty > 0
        level = 100.0 * (self.duty / 65535) ** (1.0 / self.gamma) if lit else 0.0
        self.level = level
        # The series for plots: whole-percent moves, and every arrival at 0 or 100.
        last = self._recorded
        if abs(level - last) >= 1.0 or (level != last and (level == 0.0 or level >= 99.95)):
            self._recorded = level
            self.log(self.now_us, "level", "%.1f" % level)

    def uart_write(self, board, uart, data):
        pass  # nothing on the lamp's UARTs

    def spi_write(self, board, bus, data):
        pass  # nor on its SPI buses

    def i2c_scan(self, board):
        return [DS3231_ADDR]

    def i2c_read(self, board, addr, reg, n):
        if addr != DS3231_ADDR:
            raise OSError(19)  # ENODEV, as MicroPython says for no ACK
        return self.ds3231.read(reg, n)

    def i2c_write(self, board, addr, reg, data):
        if addr != DS3231_ADDR:
            raise OSError(19)
        self.ds3231.write(reg, data)

    def wifi_up(self):
        return self.wifi and not self.outages and self.powered

    def ntp_time(self):
        if not (self.wifi_up() and self.ntp_ok):
            return None
        return self.now_us // 1000000 + self.ntp_step_s

    def random_bytes(self, n):
        return bytes(self.rand.next() & 0xFF for _ in range(n))
