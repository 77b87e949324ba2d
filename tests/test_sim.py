"""The simulator: scenarios from the issue, both runtimes, determinism, and the
virtual ESP32's rules. The firmware runs unmodified; the tests speak only to the
scenario files and the timeline, as a user of `parkctl sim` does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parkctl import simcmd
from test_cli_sun import parkctl

SCENARIOS = Path(__file__).resolve().parents[1] / "sim" / "scenarios"
PAIN_POINTS = [
    "winter-night",
    "dst-night-cet",
    "ntp-steps-back",
    "rtc-dead-no-network",
    "photocell-failure",
    "lamp-failure",
    "storm-afternoon",
    "storm-dead-photocell",
]


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
@pytest.mark.parametrize("name", PAIN_POINTS)
def test_scenario_expectations_hold(name, runtime):
    result = simcmd.run(SCENARIOS / f"{name}.scn", runtime)
    failed = [(text, seen) for text, ok, seen in result.checks if not ok]
    assert result.checks and not failed


def test_both_runtimes_give_the_same_timeline():
    a = simcmd.run(SCENARIOS / "winter-night.scn", "cpython")
    b = simcmd.run(SCENARIOS / "winter-night.scn", "micropython")
    assert [(e.t, e.kind, e.text) for e in a.entries] == [(e.t, e.kind, e.text) for e in b.entries]


def test_a_year_without_a_network_is_the_same_in_both_runtimes():
    # A year offline fills the journal with undelivered events for months, in a
    # heap the simulator shares with the firmware: MicroPython once raised
    # MemoryError in the spring of that year (a journal dict that could not grow,
    # and an erase that allocated a block), where CPython went on.
    year = Path(__file__).resolve().parents[1] / "bench" / "sim_year.scn"
    a = simcmd.run(year, "cpython")
    b = simcmd.run(year, "micropython")
    assert a.ok and not [e for e in b.entries if "Traceback" in e.text]
    assert [(e.t, e.kind, e.text) for e in a.entries] == [(e.t, e.kind, e.text) for e in b.entries]


def test_code_on_a_romfs_runs_the_same_in_less_heap(tmp_path):
    # The lamp's code as a ROMFS image, imported from /rom: MicroPython runs the
    # bytecode where it lies (flash, on a board), so the night is the same and the
    # firmware's live heap is smaller by most of its code.
    from parkctl.build import romfs_image

    rom = tmp_path / "lamp.romfs"
    rom.write_bytes(romfs_image("lamp"))
    night = SCENARIOS / "winter-night.scn"
    runs = [simcmd.run(night, "micropython", heap_probe=True, romfs=r) for r in (None, rom)]

    def peak(result):
        heap = [[int(x) for x in e.text.split()] for e in result.entries if e.kind == "heap"]
        return max(h[2] for h in heap[1:]) - heap[0][1]  # above the simulator's own (and the image)

    source, romfs = (peak(r) for r in runs)
    probe = ("heap", "names")  # the heap probe's own entries
    assert [(e.t, e.text) for e in runs[1].entries if e.kind not in probe] == [
        (e.t, e.text) for e in runs[0].entries if e.kind not in probe
    ]
    # The image holds the whole app's code (about 99 KB for the ESP32), some 60 % of
    # which the running lamp keeps loaded: most of that is out of the heap. (A ratio
    # of the two peaks, as this said before, moved with what the MicroPython
    # simulator's heap kept of the boot before a power cut: docs/sim.md.)
    assert source - romfs > 0.3 * rom.stat().st_size, (romfs, source, rom.stat().st_size)
    # CPython has no ROMFS to mount: said, not ignored.
    from parkctl.errors import UserError

    with pytest.raises(UserError, match="ROMFS image is for the MicroPython runtime"):
        simcmd.run(night, "cpython", romfs=rom)


def test_same_seed_same_bytes_other_seed_other_weather():
    args = ("sim", str(SCENARIOS / "rtc-dead-no-network.scn"), "--json")
    one, two = parkctl(*args), parkctl(*args)
    assert one.returncode == 0 and one.stdout == two.stdout
    other = parkctl(*args, "--seed", "7")
    assert other.returncode == 0 and other.stdout != one.stdout  # the clouds differ
    lines = [json.loads(line) for line in one.stdout.splitlines()]
    assert {"t", "kind", "text"} <= set(lines[0])
    assert any(x["kind"] == "expect" and x["ok"] for x in lines)


def test_a_failed_expectation_is_named_and_fails_the_run(tmp_path):
    scn = tmp_path / "wrong.scn"
    scn.write_text(
        (SCENARIOS / "lamp-failure.scn")
        .read_text()
        .replace("../../firmware", str(SCENARIOS.parents[1] / "firmware"))
        + "expect level 100 at 21:00\nexpect no fault\n"
    )
    proc = parkctl("sim", str(scn))
    assert proc.returncode == 1
    assert "FAIL expect level 100 at 21:00  (level was 0.0)" in proc.stdout
    assert "2 expectation(s) failed: expect level 100 at 21:00; expect no fault" in proc.stderr


def test_firmware_output_outside_the_timeline_is_kept_as_console_lines():
    out = (
        '\x1e[100, "reset", "power on"]\n'
        "Traceback (most recent call last):\n"
        '  File "main.py"\n'
        '\x1e[160, "end", "x"]\n'
    )
    entries = simcmd.parse_micropython_output(out, 0)
    assert [(e.t, e.kind, e.text) for e in entries] == [
        (100, "reset", "power on"),
        (100, "console", "Traceback (most recent call last):"),
        (100, "console", '  File "main.py"'),
        (160, "end", "x"),
    ]


def test_real_time_mode_changes_nothing_but_the_pace():
    fast = simcmd.run(SCENARIOS / "lamp-failure.scn", "cpython")
    paced = simcmd.run(SCENARIOS / "lamp-failure.scn", "cpython", realtime=1e9)
    assert [(e.t, e.text) for e in fast.entries] == [(e.t, e.text) for e in paced.entries]


def test_many_lamps_at_once():
    results = simcmd.run_fleet(SCENARIOS / "lamp-failure.scn", 4)
    assert len(results) == 4
    for r in results:
        assert r.ok, [c for c in r.checks if not c[1]]
    # Distinct boards: small offsets in place and clock move their sunsets apart.
    sunsets = {next(e.t for e in r.entries if "step 1 (sunset)" in e.text) for r in results}
    assert len(sunsets) > 1
    # And the same fleet again, shared out among two processes, gives the same timelines.
    again = simcmd.run_fleet(SCENARIOS / "lamp-failure.scn", 4, jobs=2)
    assert [[(e.t, e.text) for e in r.entries] for r in again] == [
        [(e.t, e.text) for e in r.entries] for r in results
    ]


def test_networked_fleet_on_mosquitto(tmp_path, mosquitto):
    # Networked lamps run together on one broker, in spans of simulated time: each
    # connects once and stays up through the evening, and the same fleet again,
    # in two processes (each lamp keeps its own client id), gives the same timelines.
    scn = tmp_path / "fleet.scn"
    scn.write_text(
        f"config {SCENARIOS / 'songjiang-wifi.json'}\n"
        "start 2026-12-21 16:00\nend 2026-12-21 18:30\nwifi up 16:00\n"
        "expect level 100 +-1 at 18:00\n"
    )
    runs = [simcmd.run_fleet(scn, 4, broker=mosquitto.url, jobs=jobs) for jobs in (1, 2)]
    for r in runs[0] + runs[1]:
        assert r.ok, [c for c in r.checks if not c[1]]
        mqtt = [e.text for e in r.entries if e.text.startswith("event mqtt ")]
        assert mqtt[0] == "event mqtt up" and not any("no answer" in m or "lost" in m for m in mqtt), mqtt
        assert sum(m == "event mqtt up" for m in mqtt) == 1, mqtt
    assert [[(e.t, e.text) for e in r.entries] for r in runs[1]] == [
        [(e.t, e.text) for e in r.entries] for r in runs[0]
    ]


def test_fleet_whose_broker_never_answers(tmp_path):
    # A broker that takes connections and never answers. Each lamp holds its
    # clock for the CONNACK it is owed, and the other lamps run meanwhile; after
    # the real-time limit the answer is taken as lost, the clock moves on, and
    # every lamp gives up on its connection 10 s later and tries again. No lamp
    # hangs the run. The kernel completes the connections (the listening socket's
    # backlog); nobody accepts them until the run is over, when they are counted.
    server = socket.create_server(("127.0.0.1", 0), backlog=32)
    scn = tmp_path / "silent.scn"
    scn.write_text(
        f"config {SCENARIOS / 'songjiang-wifi.json'}\n"
        "start 2026-12-21 16:00\nend 2026-12-21 16:00:25\nwifi up 16:00\n"
    )
    taken: list[socket.socket] = []
    try:
        results = simcmd.run_fleet(scn, 3, broker=f"mqtt://127.0.0.1:{server.getsockname()[1]}", jobs=1)
        server.setblocking(False)
        while True:
            try:
                taken.append(server.accept()[0])
            except BlockingIOError:
                break
    finally:
        server.close()
        for c in taken:
            c.close()
    assert len(taken) == 9  # three lamps, three tries each (the third at 16:00:24)
    for r in results:
        mqtt = [(e.t - r.scenario.start, e.text) for e in r.entries if e.text.startswith("event mqtt ")]
        assert mqtt == [
            (11, "event mqtt no answer within 10 s, next try in 1 s"),
            (22, "event mqtt no answer within 10 s, next try in 2 s"),
        ]


def test_plot_is_written(tmp_path):
    out = tmp_path / "night.png"
    proc = parkctl("sim", str(SCENARIOS / "lamp-failure.scn"), "--plot", str(out))
    assert proc.returncode == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start 2026-12-21 12:00\n", "no `config` line"),
        ("config missing.json\n", "cannot read the configuration"),
        (
            "config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\nfly away\n",
            ':4: unknown statement "fly"',
        ),
        ("config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\npower off 25:00\n", "out of range"),
        (
            "config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\nat 22:03 press button\n",
            "unknown stimulus",
        ),
        (
            "config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\nat 22:03 press button for 3x\n",
            "a duration",
        ),
        (
            "config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\nexpect an alarm by 22:10\n",
            "unknown expectation",
        ),
        (
            "config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\nexpect fault lamp_fire once\n",
            "unknown fault",
        ),
        ("config CFG\nstart 2026-12-21 12:00\nend 2026-12-20 12:00\n", "`end` is not after `start`"),
        (
            "config CFG\nstart 2026-12-21 12:00\nend 2026-12-22 12:00\npower off 2026-12-23 01:00\n",
            "outside start..end",
        ),
    ],
)
def test_bad_scenarios_say_what_and_where(tmp_path, text, message):
    scn = tmp_path / "bad.scn"
    scn.write_text(text.replace("CFG", str(SCENARIOS.parents[1] / "firmware" / "lamp" / "config.json")))
    proc = parkctl("sim", str(scn))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--realtime", "0"], "--realtime needs a speed above 0"),
        (["--lamps", "0"], "--lamps must be 1..100000"),
        (["--lamps", "3", "--runtime", "micropython"], "use --runtime cpython"),
        (["--lamps", "3", "--plot", "x.png"], "--plot is for one lamp"),
        (["--lamps", "3", "--jobs", "0"], "--jobs must be 1..256"),
        (["--jobs", "2"], "--jobs is for --lamps N"),
        (["/no/such.scn"], "cannot read /no/such.scn"),
    ],
)
def test_bad_sim_arguments_give_one_line(args, message):
    if not args[0].startswith("/"):
        args = [str(SCENARIOS / "lamp-failure.scn"), *args]
    proc = parkctl("sim", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-900, 4000), min_size=1, max_size=40), st.booleans())
def test_the_worlds_sky_follows_its_clock_and_its_site(moves, move_the_lamp):
    # The world interpolates the sun's elevation on a 5-minute grid and keeps only
    # the cell its clock is in (in MicroPython it shares the firmware's heap): the
    # same answers, whichever way the clock moves, and a configuration that moves
    # the lamp is followed at once.
    from sim import cpython

    modules = cpython.ModuleSystem(console=lambda line: None)
    world_mod = modules.load("world", as_firmware=False)
    sun = modules.load("sun", as_firmware=False)
    cfg = json.loads((SCENARIOS.parents[1] / "firmware" / "lamp" / "config.json").read_text())
    start = 851155200  # 2026-12-21 08:00 UTC, seconds since 2000: the sun low in Shanghai
    world = world_mod.World({"start": start, "end": start + 10**6, "config": cfg}, lambda *a: None)
    for i, move in enumerate(moves):
        world.now_us += move * 1000000
        if move_the_lamp and i == len(moves) // 2:
            cfg = dict(cfg, site=dict(cfg["site"], lat=cfg["site"]["lat"] - 20))
            world.configure(cfg)
        t = world.now_us // 1000000
        k = t // 300
        e0 = sun.elevation(k * 300, world.lat, world.lon)
        e1 = sun.elevation((k + 1) * 300, world.lat, world.lon)
        assert world.elevation() == pytest.approx(e0 + (e1 - e0) * (t - k * 300) / 300, abs=1e-9)


def _virtual_board(tmp_path, end_us=10**6):
    """A virtual ESP32 (CPython) with a world and a flash holding /hello.txt, and
    the host's network under its socket: (modules, _hub, world, board)."""
    import select

    from sim import cpython

    image = tmp_path / "flash.img"
    cpython.make_image(image, {"/hello.txt": b"hi"})
    modules = cpython.ModuleSystem(console=lambda line: None)
    fs = cpython.LittleFsVfs(image)
    modules.fs = fs
    hub = modules.load("_hub", as_firmware=False)
    hub.__dict__.update(net=socket, net_select=select)
    world_mod = modules.load("world", as_firmware=False)
    cfg = json.loads((SCENARIOS.parents[1] / "firmware" / "lamp" / "config.json").read_text())
    world = world_mod.World({"start": 0, "end": end_us, "config": cfg}, lambda *a: None)
    board = hub.Board(world, fs, b"\x01\x02\x03\x04\x05\x06")
    world.board = board
    hub.__dict__["board"] = board
    return modules, hub, world, board


def test_virtual_esp32_rules(tmp_path):
    """The ESP32 behaviours docs/sim.md promises, checked on the virtual board itself."""
    modules, hub, world, board = _virtual_board(tmp_path)
    machine = modules.load("machine", as_firmware=False)
    vtime = modules.load("time", as_firmware=False)
    micropython = modules.load("micropython", as_firmware=False)
    vos = modules.load("os", as_firmware=False)
    # Epoch 2000.
    assert vtime.gmtime(0)[:3] == (2000, 1, 1)
    # The schedule queue holds 8 and raises when full.
    for _ in range(8):
        micropython.schedule(lambda arg: None, None)
    with pytest.raises(RuntimeError, match="schedule queue full"):
        micropython.schedule(lambda arg: None, None)
    board.run_scheduled()
    # The watchdog: 1 s minimum; not fed in time, it resets the board.
    with pytest.raises(ValueError):
        machine.WDT(timeout=500)
    wdt = machine.WDT(timeout=2000)
    vtime.sleep_ms(1500)
    wdt.feed()
    vtime.sleep_ms(1500)
    with pytest.raises(hub.Reset) as reset:
        vtime.sleep_ms(3000)
    assert reset.value.cause == machine.WDT_RESET
    board.reset(reset.value.cause)
    assert machine.reset_cause() == machine.WDT_RESET
    # ticks wrap as on the board, and ticks_diff sees through it.
    assert vtime.ticks_diff(vtime.ticks_add(vtime.ticks_ms(), 5), vtime.ticks_ms()) == 5
    assert vtime.ticks_diff(3, (1 << 30) - 2) == 5
    # A button press bounces: the firmware's IRQ sees several edges for one press.
    edges = []
    button = machine.Pin(27, machine.Pin.IN, machine.Pin.PULL_UP)
    button.irq(
        lambda pin: edges.append((vtime.ticks_us(), pin.value())),
        machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING,
    )
    pressed_at = vtime.ticks_us() + 1000
    world.at(world.now_us + 1000, {"do": "press", "ms": 300})
    vtime.sleep_ms(100)
    assert button.value() == 0  # held down
    vtime.sleep_ms(400)
    assert button.value() == 1 and len(edges) >= 6
    # Each handler ran during the sleep, at its edge, as scheduled callbacks do on the board:
    # the chatter of the press is over within a few ms, that of the release 300 ms later.
    assert all(
        pressed_at <= t < pressed_at + 10000 or pressed_at + 300000 <= t < pressed_at + 310000
        for t, _ in edges
    )
    # The firmware's debouncer on that virtual pin: one press per press, none per spike.
    button.irq(None)
    debounced = modules.load("button", as_firmware=True).Button(button, vtime.ticks_ms)
    button.irq(debounced.irq, machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
    seen: list[str] = []
    world.at(world.now_us + 1000, {"do": "press", "ms": 300})
    world.at(world.now_us + 600000, {"do": "noise", "ms": 3})
    for _ in range(200):  # the main loop's part: step, sleep until the next deadline
        wait = debounced.step(vtime.ticks_ms(), seen.append)
        vtime.sleep_ms(wait if 0 <= wait < 10 else 10)
    assert seen == ["press", "release"]
    # Pins, ADCs, I2C buses, the RTC, the watchdog and the WLAN interfaces are the
    # port's static objects: the same one each time, Pin(n) alone keeps its mode,
    # and what does not exist on the board is refused.
    relay = machine.Pin(26, machine.Pin.OUT, value=1)
    assert machine.Pin(26) is relay and relay.mode == machine.Pin.OUT and machine.Pin(26).value() == 1
    assert machine.ADC(machine.Pin(34)) is machine.ADC(34)
    assert machine.I2C(0) is machine.I2C(0) is not machine.I2C(1)
    assert machine.RTC() is machine.RTC() and machine.WDT(timeout=5000) is wdt
    for bad in (lambda: machine.Pin(49), lambda: machine.ADC(-1), lambda: machine.I2C(2)):
        with pytest.raises(ValueError):
            bad()
    network = modules.load("network", as_firmware=False)
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    assert network.WLAN(network.STA_IF) is wlan and network.WLAN(network.AP_IF) is not wlan
    # machine.reset() restarts the firmware; the filesystem is kept, the pins and
    # the Wi-Fi are as at power-on.
    with pytest.raises(hub.Reset):
        machine.reset()
    board.reset(hub.SOFT_RESET)
    assert vos.listdir("/") == ["hello.txt"]
    assert machine.unique_id() == b"\x01\x02\x03\x04\x05\x06"
    assert machine.Pin(26) is relay and relay.mode == -1 and not wlan.active()


def test_a_closed_socket_stays_closed_when_its_connection_serves_another(tmp_path):
    """What lwIP keeps of a connection is used again for the next one (it is not
    in the heap the benchmarks measure): the socket closed before must not reach
    the new connection, and the broker's end of the old one, lingering after a
    loss without a goodbye, must not end the new one when its keepalive runs out."""
    modules, _, world, board = _virtual_board(tmp_path, end_us=10**9)
    vsocket = modules.load("socket", as_firmware=False)
    world.wifi = True
    server = socket.create_server(("127.0.0.1", 0))
    addr = server.getsockname()
    try:
        first = vsocket.socket()
        first.connect(addr)
        old, _ = server.accept()
        # A session with a 10 s keepalive: CONNECT out, CONNACK back.
        connect = bytes((0x10, 12, 0, 4)) + b"MQTT" + bytes((4, 2, 0, 10, 0, 0))
        assert first.write(connect) == len(connect) and old.recv(64) == connect
        old.sendall(bytes((0x20, 2, 0, 0)))
        assert first.readinto(bytearray(8)) == 4
        state = first._c
        world.wifi = False  # the link goes: the broker keeps the connection for 15 s
        first.close()
        assert board.lingering == [state]
        world.wifi = True
        second = vsocket.socket()  # a connection of its own: the old one lingers
        second.connect(addr)  # ... until the lamp connects again
        assert board.lingering == [] and old.recv(16) == b""
        server.accept()[0].close()
        third = vsocket.socket()
        third.connect(addr)
        new, _ = server.accept()
        assert third._c is state
        with pytest.raises(OSError) as closed:
            first.write(b"x")
        assert closed.value.args[0] == 9  # EBADF
        poll = modules.load("select", as_firmware=False).poll()
        poll.register(first, 1)  # POLLIN
        assert poll.poll(0) == []
        first.close()  # again: nothing happens
        world.advance(world.now_us + 20 * 10**6)  # past the old connection's 15 s
        assert third.write(b"\xc0\x00") == 2 and new.recv(16) == b"\xc0\x00"
        assert third._c is state and board.sockets == [second._c, state]
        second.close()
        third.close()
        assert new.recv(16) == b""
    finally:
        server.close()


def test_image_is_what_micropython_mounts(tmp_path):
    """littlefs-python makes the image; MicroPython's own VfsLfs2 reads it back."""
    from sim import cpython

    image = tmp_path / "flash.img"
    cpython.make_image(image, {"/config.json": b'{"a": 1}', "/lib/x.py": b"X = 1\n"})
    code = (
        "import vfs\nfrom blockdev import FileBlockDevice\n"
        f"fs = vfs.VfsLfs2(FileBlockDevice({str(image)!r}), readsize=32, progsize=32, lookahead=32)\n"
        "print(sorted(e[0] for e in fs.ilistdir('/')), fs.open('/config.json', 'r').read())\n"
    )
    from parkctl.runtime import micropython_binary

    env = dict(os.environ, MICROPYPATH=str(SCENARIOS.parent))
    out = subprocess.run(
        [micropython_binary(), "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout.strip() == "['config.json', 'lib'] {\"a\": 1}", out.stderr


def test_micropython_flash_erases_without_allocating(tmp_path):
    # A flash erase needs no RAM on the board; the simulator's block device must
    # not allocate for it either: in a fragmented heap a 4 KiB allocation failed
    # and the firmware saw a MemoryError a real board never raises.
    image = tmp_path / "flash.img"
    image.write_bytes(b"\x00" * 4096 * 4)
    code = (
        "import micropython\nfrom blockdev import FileBlockDevice\n"
        f"bd = FileBlockDevice({str(image)!r})\n"
        "micropython.heap_lock()\nbd.ioctl(6, 2)\nmicropython.heap_unlock()\n"
        "bd.ioctl(3, 0)\nprint('erased')\n"
    )
    from parkctl.runtime import micropython_binary

    env = dict(os.environ, MICROPYPATH=str(SCENARIOS.parent))
    out = subprocess.run(
        [micropython_binary(), "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout.strip() == "erased", out.stderr
    data = image.read_bytes()
    assert data[8192:12288] == b"\xff" * 4096 and data[:8192] + data[12288:] == b"\x00" * 12288


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_board_powered_on_with_the_flash_an_earlier_run_left_finds_its_journal(tmp_path, runtime):
    from sim.cpython import LittleFsVfs

    scn = tmp_path / "two-boots.scn"
    scn.write_text(f"config {SCENARIOS / 'berlin.json'}\nstart 2026-12-21 17:00\nend 2026-12-21 17:30\n")
    flash = tmp_path / "flash.img"
    simcmd.run(scn, runtime, flash=flash)
    simcmd.run(scn, runtime, flash=flash, from_flash=flash)
    fs = LittleFsVfs(flash)
    try:
        with fs.open("/events/boot") as f:
            boots = f.read()
        kinds = []
        for name, _, _, _ in fs.ilistdir("/events"):
            if name.endswith(".log"):
                with fs.open("/events/" + name) as f:
                    kinds += [line.split(" ", 4)[2] for line in f.read().splitlines()]
    finally:
        fs.close()
    assert boots.strip() == "2"
    assert kinds.count("boot") == 2
