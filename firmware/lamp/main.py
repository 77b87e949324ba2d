# The lamp controller's entry point, on the board and in the simulator.
#
# Order matters: the configuration and the right level come first (no network
# needed), the watchdog starts after the first good pass, then the loop sleeps
# until the next deadline and goes round again. The watchdog is fed only while
# passes succeed: a loop that keeps failing or hangs resets the board, which
# comes back with the lamp lit (relay closed from the first instruction).

import os
import sys

import ticks
from board import Board
from controller import Controller
from lampconfig import FALLBACK, ConfigError, Store, parse
from netclock import NtpSync, Station
from timesource import DS3231, TimeKeeper

CONFIG = "/lamp.json"  # what the centre or a technician installed
DEFAULT_CONFIG = "/config.json"  # shipped with the app
FAILURES_BEFORE_RESET = 3


def log_event(name, detail):
    # One line per event on the serial console: what a technician (and the
    # simulator) reads.
    print("event", name, detail)


def run(ctl, board, net):
    failures = 0
    while True:
        now = board.ticks_ms()
        try:
            # The network first: a clock it steps is acted on in this same pass.
            deadline = net.step(now) if net is not None else None
            d = ctl.step(now)
            if deadline is None or ticks.diff(d, deadline) < 0:
                deadline = d
            failures = 0
        except Exception as e:  # noqa: BLE001 - a pass must never end the loop
            failures += 1
            sys.print_exception(e)
            deadline = ticks.add(now, 1000)
        healthy = failures < FAILURES_BEFORE_RESET
        if healthy:
            board.feed()
        board.wait_until(deadline, healthy)


class Network:
    """Wi-Fi and NTP, stepped together: NTP only while the link is up."""

    def __init__(self, station, ntp):
        self.station = station
        self.ntp = ntp

    def step(self, now):
        a = self.station.step(now)
        b = self.ntp.step(now, self.station.up)
        return ticks.add(now, a if a < b else b)


def main():
    store = Store(os, CONFIG, DEFAULT_CONFIG)
    try:
        cfg = store.load()
    except ConfigError:
        cfg = parse(FALLBACK)
    for e in store.errors:
        print("config:", e)
    board = Board(cfg)
    clock = TimeKeeper(board.clock, DS3231(board.i2c), board.rtc_trusted())
    clock.boot()
    ctl = Controller(cfg, board, clock)
    ctl.on_event = log_event
    print("event boot", clock.source or "no valid time")
    deadline = ctl.step(board.ticks_ms())  # the right level first, no network needed
    net = None
    if board.wlan is not None:
        station = Station(board.wlan, cfg.ssid, cfg.wifi_key, log_event)
        net = Network(station, NtpSync(clock, board.ntp_time, int(cfg.ntp_interval), log_event))
    board.start_watchdog()
    board.wait_until(deadline)
    run(ctl, board, net)


main()
