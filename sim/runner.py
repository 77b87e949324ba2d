# Runs one simulated board through a scenario: powers it on, boots the firmware,
# resets and powers it off as the world says, and records the timeline. Runs on
# CPython and on MicroPython; `platform` says how firmware is (re)loaded there.

import _hub
from world import World

_CAUSES = {
    _hub.PWRON_RESET: "power on",
    _hub.HARD_RESET: "hard reset",
    _hub.WDT_RESET: "watchdog",
    _hub.DEEPSLEEP_RESET: "deep sleep",
    _hub.SOFT_RESET: "soft reset",
}


def _power_cycle(world, board, platform, emit):
    """The board off until the power is back, then on: False when the world ends
    first. A cut in the bootloader's write of otadata at power-on (a board with
    the OTA table) is one more cut: off again."""
    while True:
        board.drop_connections()
        emit(world.now_us, "power", "board off")
        try:
            while not world.powered:
                nxt = world.next_event_us()
                world.advance(world.end_us if nxt is None else nxt)
        except _hub.Stop:
            return False
        platform.remount()
        try:
            board.power_on()
        except _hub.PowerLoss:
            continue
        emit(world.now_us, "reset", _CAUSES[board.reset_cause])
        return True


def run(scenario, fs, platform, emit):
    """emit(t_us, kind, text) receives the timeline as it happens."""
    if scenario.get("app") == "kiosk":
        from kiosk_world import KioskWorld

        world = KioskWorld(scenario, emit)
    else:
        world = World(scenario, emit)
    platform.world_ready(world)
    if scenario.get("realtime"):
        world.pace = platform.pacer(world.now_us, scenario["realtime"])
        if hasattr(world, "wall_us"):
            world.wall_us = platform.wall_us
    frames = scenario.get("frames")  # a folder on the host for the display's frames
    if frames and hasattr(world, "frame_sink"):

        def keep(n, t_us, ram):
            platform.host_write("%s/%05d-%d.raw" % (frames, n, t_us // 1000000), ram)

        world.frame_sink = keep
    for i, ex in enumerate(scenario.get("probes", [])):
        world.at(ex * 1000000, {"do": "probe", "id": i})
    chip = "esp32s3" if scenario.get("app") == "kiosk" else "esp32"
    board = _hub.Board(world, fs, scenario.get("uid", b"\x24\x0a\xc4\x00\x00\x01"), chip)
    world.board = board
    _hub.board = board
    if scenario.get("ota"):
        # A board flashed with the OTA partition table: its app slots and otadata
        # are in this file (sim/vesp32/esp32.py), and the bootloader runs now.
        import esp32

        esp32.attach(board, scenario["ota"])

    def console(line):
        if world.powered:  # a board cut off in the middle of something says nothing more
            emit(world.now_us, "console", line)

    platform.console = console
    emit(world.now_us, "reset", _CAUSES[board.reset_cause])
    while True:
        try:
            try:
                platform.boot()
                emit(world.now_us, "firmware", "main.py returned: the board waits in the REPL")
            except Exception as e:  # noqa: BLE001 - an uncaught error ends main.py, as on a board
                emit(world.now_us, "firmware", "main.py stopped: %s: %s" % (type(e).__name__, e))
            # A board whose main.py has ended sits in the REPL until something happens.
            while True:
                board.sleep_us(3600 * 1000000)
        except _hub.Reset as r:
            try:
                board.reset(r.cause)
            except _hub.PowerLoss:
                # The power went in the bootloader's own write of otadata.
                if not _power_cycle(world, board, platform, emit):
                    break
                continue
            emit(world.now_us, "reset", _CAUSES[r.cause])
        except _hub.PowerLoss:
            if not _power_cycle(world, board, platform, emit):
                break
        except _hub.Stop:
            break
    # The end: the board's connections end at the broker (its will for each).
    board.drop_connections()
    for s in list(board.lingering):
        s.end()
    if board.net_activity:
        # Over a real network, how many passes the loop makes depends on how
        # packets happen to arrive together; what happens when does not.
        emit(world.now_us, "end", "over a real network")
    else:
        emit(world.now_us, "end", "%d sleeps" % board.sleeps)
    return world
