"""The `parkctl` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import __version__
from .errors import SimulatorError, UserError
from .runtime import RUNTIMES, call, call_lines


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _console():
    """rich's Console for stdout: the terminal's width, or, when stdout is a pipe or a
    file, as wide as the rows are (rich would wrap them at 80 columns, breaking
    every row that grep or a log should keep whole)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=4096)


SUN_KEYS = ("civil_dawn", "sunrise", "sunset", "civil_dusk", "polar")


def cmd_sun(args: argparse.Namespace) -> int:
    answer = call("sun_day", [args.lat, args.lon, args.date, args.tz], args.runtime)
    answer = {k: answer[k] for k in SUN_KEYS}  # MicroPython's dicts have no order
    if args.json:
        _print_json(answer)
        return 0
    from rich.table import Table

    table = Table(title=f"Sun at {args.lat}, {args.lon} on {args.date} ({args.tz})")
    table.add_column("event")
    table.add_column("local time")
    names = (
        ("civil_dawn", "civil dawn"),
        ("sunrise", "sunrise"),
        ("sunset", "sunset"),
        ("civil_dusk", "civil dusk"),
    )
    for key, label in names:
        table.add_row(label, (answer[key] or "does not happen").replace("T", " "))
    console = _console()
    console.print(table)
    if answer["polar"]:
        console.print(f"polar {answer['polar']}: the sun does not rise and set that day")
    return 0


def _read(path: str) -> str:
    from sim.textfile import TextFileError, read_text

    try:
        return read_text(path)
    except TextFileError as e:
        raise UserError(str(e)) from None


def cmd_schedule(args: argparse.Namespace) -> int:
    text = _read(args.config)
    if args.year is not None or args.summary or args.plot:
        if args.year is None or not args.summary:
            raise UserError("--summary and --plot go with --year YYYY --summary")
        from .lampyear import run

        return run(args, text)
    if args.date is None:
        raise UserError("give --date YYYY-MM-DD (or --year YYYY --summary)")
    answers = call_lines("lamp_schedule", [args.date, str(args.days)], args.runtime, stdin=text)
    # MicroPython's dicts have no order: put the keys in the documented one.
    start, *rows = ({k: row[k] for k in ("at", "level", "reason")} for row in answers)
    if args.json:
        _print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title=f"Schedule from {args.date}, {args.days} day(s)")
    table.add_column("local time")
    table.add_column("level", justify="right")
    table.add_column("reason")
    table.add_row(start["at"].replace("T", " "), f"{start['level']} %", f"in force: {start['reason']}")
    for row in rows:
        table.add_row(row["at"].replace("T", " "), f"{row['level']} %", row["reason"])
    _console().print(table)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from .runtime import import_firmware

    import_firmware()
    from configcheck import ConfigError

    from sim.scenario import config_parser

    text = _read(args.file)
    try:
        cfg: Any = config_parser(args.app)(text)
    except ConfigError as e:
        if args.json:
            _print_json({"file": args.file, "ok": False, "errors": e.errors})
        else:
            print(f"{args.file}: {len(e.errors)} error(s)", file=sys.stderr)
            for err in e.errors:
                print(f"  {err}", file=sys.stderr)
        return 1
    warnings = _night_warnings(cfg, args) if args.app == "lamp" else []
    # Allowed, with a catch the device says at boot too (a strapping pin).
    config_warnings = list(cfg.warnings)
    if args.json:
        _print_json(
            {
                "file": args.file,
                "ok": True,
                "errors": [],
                "warnings": warnings,
                "config_warnings": config_warnings,
            }
        )
        return 0
    if args.app == "lamp":
        print(
            f"{args.file}: ok ({cfg.name or 'unnamed site'}, {cfg.tz.text}, "
            f"{len(cfg.rules)} calendar rule(s), default program of {len(cfg.default.steps)} step(s))"
        )
        for w in warnings:
            when = ", ".join(w["dates"])
            print(f"  warning: {w['step']} is skipped on {w['nights']} night(s) ({w['why']}): {when}")
    else:
        print(
            f"{args.file}: ok (a kiosk at {cfg.name or 'an unnamed site'}, {cfg.tz.text}, "
            f"threshold {cfg.threshold}, repeat window {cfg.window_s} s, retention {cfg.retention_days} days)"
        )
    for w in config_warnings:
        print(f"  warning: {w}")
    return 0


def _night_warnings(cfg, args: argparse.Namespace) -> list[dict]:
    """Steps that fall in daylight on some nights of the coming year at the site."""
    import time

    import civil

    from .lampnights import skipped_steps

    if args.from_date:
        try:
            first = civil.days_from_civil(*civil.parse_date(args.from_date))
        except ValueError as e:
            raise UserError(f"--from {args.from_date}: {e}") from None
    else:  # the site's local date today (park time counts from 2000-01-01 UTC)
        first = cfg.tz.to_local(int(time.time()) - 946684800) // 86400
    return skipped_steps(cfg, first)


def _human_size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


def _output_folder(path: str, option: str, create: bool = True) -> None:
    """Fails early, in one line, for an output folder that cannot be written: before
    the work, not after it. `create`: a folder the command would make is made and
    removed again (the only sure test, /proc says yes to access() and no to mkdir);
    nothing is left behind should the command then fail for another reason."""
    from pathlib import Path

    p = Path(path)
    if not create:
        if not p.is_dir():
            raise UserError(f"{option}: there is no folder {path}")
    else:
        missing = []
        q = p.absolute()
        while not q.exists() and q != q.parent:
            missing.append(q)
            q = q.parent
        if not q.is_dir():
            raise UserError(f"{option} {path}: {q} is not a folder")
        try:
            for d in reversed(missing):
                d.mkdir()
        except OSError as e:
            raise UserError(f"{option} {path}: cannot make that folder ({e.strerror or e})") from None
        finally:
            for d in missing:
                if d.exists():
                    d.rmdir()
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"{option}: cannot write into {path} (permission denied)")


def cmd_build(args: argparse.Namespace) -> int:
    from . import build

    chip = args.chip or build.DEFAULT_CHIP[args.app]
    if args.out:
        _output_folder(args.out, "--out")
    bar = build.LazyProgress(enabled=not args.json)
    try:
        b = build.build(
            args.app,
            out=args.out,
            chip=chip,
            firmware=args.firmware,
            device_config=args.device_config,
            progress=bar,
            release_key=args.release_key,
        )
    finally:
        bar.close()
    info = build.summary(b)
    if args.json:
        _print_json(info)
        return 0
    from rich.table import Table

    table = Table(title=f"{b.app} for {b.chip.name}: the board's filesystem")
    table.add_column("file")
    table.add_column("kind")
    table.add_column("size", justify="right")
    for f in info["files"]:
        table.add_row(f["path"], f["kind"], _human_size(f["size"]))
    console = _console()
    console.print(table)
    console.print(f"version  {info['version']}")
    console.print(f"hash     {info['hash']}")
    console.print(f"files    {len(info['files'])}, {_human_size(info['bytes'])}")
    console.print(
        f"image    {info['image']} (littlefs2, {_human_size(info['used_bytes'])} used of "
        f"{_human_size(info['vfs_size'])}; flash at {info['vfs_offset']:#x})"
    )
    if info["factory"]:
        console.print(f"factory  {info['factory']} (firmware at {info['firmware_offset']:#x}; flash at 0x0)")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import build, flash

    chip = build.get_chip(args.chip or build.DEFAULT_CHIP[args.app])
    if args.baud <= 0:
        raise UserError("--baud needs a rate above 0, e.g. 460800")
    if args.erase and not args.firmware:
        raise UserError("--erase wipes MicroPython too: give --firmware with it")
    if args.out:
        _output_folder(args.out, "--out")
    flash.check_port(args.port)
    if not args.force:
        found = flash.pending_on_board(args.port)
        if found is not None and (found[0] or found[1]):
            pending, alarm = found
            what = f"{pending} event(s) not yet delivered" + (f", alarm {alarm} open" if alarm else "")
            raise UserError(
                f"the lamp at {args.port} has {what}: flashing erases its journal. Let it deliver "
                "(parkctl diag status, parkctl alarms), or give --force to flash anyway"
            )
    out = Path(args.out) if args.out else build.BUILD_DIR / f"{args.app}-{chip.name}"
    firmware = Path(args.firmware) if args.firmware else None
    if firmware is not None:
        build.check_firmware(firmware, chip)
    bar = build.LazyProgress()
    try:
        b = build.build(
            args.app,
            out=out,
            chip=chip.name,
            device_config=args.device_config,
            progress=bar,
            release_key=args.release_key,
        )
    finally:
        bar.close()
    print(
        f"built {b.app} {b.manifest['version']} for {chip.name}: {b.image} (hash {b.manifest['hash'][:12]})"
    )
    esptool_args = flash.flash_args(chip, args.port, b.image, firmware, args.baud, args.erase)

    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    output = flash.run_esptool(esptool_args, echo, terminal=sys.stdout.isatty())
    what = "firmware and filesystem" if firmware else "filesystem"
    # write-flash fails on an MD5 mismatch; it only skips the check on encrypted flash.
    if "Cannot verify" in output:
        print(
            f"parkctl flash: {what} written to {args.port}, but esptool could not verify it", file=sys.stderr
        )
        return 1
    print(f"{what} written to {args.port} and verified (MD5 read back by the chip)")
    return 0


def _sim_fleet(args: argparse.Namespace, path) -> int:
    import time

    from sim import fleet

    from . import simcmd

    if args.runtime != "cpython":
        raise UserError("--lamps runs many boards in CPython processes: use --runtime cpython")
    if not 1 <= args.lamps <= 100000:
        raise UserError("--lamps must be 1..100000")
    if args.jobs is not None and not 1 <= args.jobs <= 256:
        raise UserError("--jobs must be 1..256")
    if args.plot:
        raise UserError("--plot is for one lamp")
    if args.realtime is not None and not _positive(args.realtime):
        raise UserError("--realtime needs a speed above 0 (1 is real time, 60 a minute a second)")
    if args.broker not in (None, "embedded", "mosquitto"):
        from .brokers import check_reachable

        check_reachable(args.broker)  # (one lamp's run checks it in simcmd.run)
    start = time.perf_counter()
    jobs = fleet.jobs_for(args.lamps, args.jobs)
    results = simcmd.run_fleet(path, args.lamps, args.seed, args.broker, jobs, args.realtime)
    wall = time.perf_counter() - start
    sc = results[0].scenario
    failed = [(i, text) for i, r in enumerate(results) for text, ok, _ in r.checks if not ok]
    if args.json:
        for i, r in enumerate(results):
            for e in r.entries:
                print(json.dumps({"lamp": i, "t": simcmd.local(sc, e.t), "kind": e.kind, "text": e.text}))
            for text, ok, seen in r.checks:
                print(json.dumps({"lamp": i, "kind": "expect", "text": text, "ok": ok, "seen": seen}))
    else:
        changes = [
            sum(1 for e in r.entries if e.kind == "console" and e.text.startswith("event level "))
            for r in results
        ]
        resets = [sum(1 for e in r.entries if e.kind == "reset") for r in results]
        span = sc.end - sc.start
        where = "one process" if jobs == 1 else f"{jobs} processes"
        print(f"{sc.name or path.name}: {args.lamps} lamps in {where}, {wall:.1f} s wall")
        print(f"  simulated: {span * args.lamps / wall:,.0f} lamp-seconds per second")
        print(f"  level changes per lamp: {min(changes)}..{max(changes)}")
        print(f"  boots per lamp: {min(resets)}..{max(resets)}")
        print(
            f"  expectations: {sum(len(r.checks) for r in results) - len(failed)} held, {len(failed)} failed"
        )
        for i, text in failed[:10]:
            print(f"  FAIL lamp {i}: {text}")
    if failed:
        print(
            f"parkctl sim: {len(failed)} expectation(s) failed on {len({i for i, _ in failed})} lamp(s)",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import simcmd

    path = simcmd.scenario_path(args.scenario) if args.scenario else simcmd.DEFAULT_SCENARIO
    if args.plot:
        if Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise UserError(f"--plot {args.plot}: name a .png file (or .svg, .pdf)")
        _output_folder(str(Path(args.plot).resolve().parent), "--plot", create=False)
        from sim.scenario import ScenarioError, load

        try:
            app = load(path).app
        except ScenarioError:
            app = "lamp"  # what is wrong with the file is said by the run, as without --plot
        if app != "lamp":
            # Before the run, not after it.
            raise UserError("--plot draws a lamp's level: this scenario is a kiosk's (try --frames DIR)")
    if args.frames:
        _output_folder(args.frames, "--frames")
    if args.lamps != 1:
        if args.frames:
            raise UserError("--frames is for one kiosk, not --lamps")
        return _sim_fleet(args, path)
    if args.jobs is not None:
        raise UserError("--jobs is for --lamps N")
    if args.realtime is not None and not _positive(args.realtime):
        raise UserError("--realtime needs a speed above 0 (1 is real time, 60 a minute a second)")
    frames = Path(args.frames) if args.frames else None
    result = simcmd.run(path, args.runtime, args.seed, args.realtime, args.broker, frames=frames)
    sc = result.scenario
    if args.json:
        for e in result.entries:
            print(
                json.dumps({"t": simcmd.local(sc, e.t), "kind": e.kind, "text": e.text}, ensure_ascii=False)
            )
        for text, ok, seen in result.checks:
            print(json.dumps({"kind": "expect", "text": text, "ok": ok, "seen": seen}, ensure_ascii=False))
    else:
        print(f"{sc.name or path.name}  ({args.runtime}, seed {sc.seed if args.seed is None else args.seed})")
        # series (level, probe, led) are for the plot and --json
        lines = [(e, *simcmd.describe(e)) for e in result.entries if e.kind not in ("level", "probe", "led")]
        # One column for what happened, as wide as its longest name (relay_failure...).
        width = max([10, *(len(what) for _, what, _ in lines)])
        for e, what, detail in lines:
            print(f"  {simcmd.local(sc, e.t).replace('T', ' ')}  {what:<{width}} {detail}")
        if result.checks:
            print("expectations:")
        for text, ok, seen in result.checks:
            print(f"  {'ok  ' if ok else 'FAIL'} {text}  ({seen})")
    if frames is not None and not args.json:
        print(f"{len(list(frames.glob('*.png')))} frames of the display written to {frames}")
    if args.plot:
        if sc.app != "lamp":
            raise UserError("--plot draws a lamp's level: this scenario is a kiosk's (try --frames DIR)")
        simcmd.plot(result, Path(args.plot))
        if not args.json:
            print(f"plot written to {args.plot}")
    failed = [text for text, ok, _ in result.checks if not ok]
    if failed:
        print(f"parkctl sim: {len(failed)} expectation(s) failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def _print_line(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _table(rows: list[dict], columns: list[str]) -> None:

    from rich.table import Table

    t = Table(*columns)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    _console().print(t)


def _login(args: argparse.Namespace):
    """The centre's account and the broker's CA (docs/broker.md)."""
    from pathlib import Path

    from .centrecmd import Login

    return Login.find(
        Path(args.secrets) if args.secrets else None,
        Path(args.ca) if args.ca else None,
    )


def cmd_alarms(args: argparse.Namespace) -> int:
    from .centrecmd import Lamps, _when

    lamps = Lamps(args.broker, login=_login(args))
    try:
        alarms = lamps.open_alarms()
    finally:
        lamps.close()
    if args.json:
        for a in alarms:
            _print_line(a)
        return 0
    if not alarms:
        print("no open alarms")
        return 0
    rows = [dict(a, raised=_when(a.get("raised")), test="test" if a.get("test") else "") for a in alarms]
    _table(rows, ["id", "device", "site", "state", "presses", "raised", "online", "test"])
    return 0


def cmd_act(args: argparse.Namespace) -> int:
    from .centrecmd import act

    if not _positive(args.timeout):
        raise UserError("--timeout needs a number of seconds above 0")
    reply = act(args.broker, args.command, args.alarm, args.timeout, login=_login(args))
    if args.json:
        _print_line(reply)
    if not reply.get("ok"):
        raise UserError(f"refused by the lamp: {reply.get('reason')}")
    if not args.json:
        print(f"{args.alarm}: {'acknowledged' if args.command == 'ack' else 'resolved'}")
    return 0


def _reply_of(args: argparse.Namespace, reply: dict[str, Any], done: str) -> int:
    """A device's reply: done, or refused (with its reason: not done as asked)."""
    if args.json:
        _print_line(reply)
    if not reply.get("ok"):
        if not args.json:
            print(
                f"parkctl {args.command}: error: refused by {args.device}: {reply.get('reason')}",
                file=sys.stderr,
            )
        return EXIT_BAD_INPUT
    if not args.json:
        print(done)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .centrecmd import send

    _positive_timeout(args)
    reply = send(args.broker, args.device, {"cmd": "status"}, args.timeout, login=_login(args))
    if args.json or not reply.get("ok"):
        return _reply_of(args, reply, "")
    result = reply.get("result") or {}
    width = max((len(k) for k in result), default=0)
    for k in sorted(result):
        print(f"{k:<{width}}  {_flat(result[k])}")
    return 0


def cmd_override(args: argparse.Namespace) -> int:
    from .centrecmd import send

    _positive_timeout(args)
    if args.clear:
        if args.level is not None or args.minutes is not None:
            raise UserError("--clear takes no --level or --minutes")
        cmd: dict[str, Any] = {"cmd": "override", "clear": True}
        done = f"{args.device}: override cleared, back to its schedule"
    else:
        if args.level is None or args.minutes is None:
            raise UserError("an override needs --level (0..100) and --minutes (1..10080), or --clear")
        if not 0 <= args.level <= 100:
            raise UserError("--level is a whole percentage from 0 to 100")
        if not 1 <= args.minutes <= 10080:
            raise UserError("--minutes is from 1 to 10080 (a week)")
        cmd = {"cmd": "override", "level": args.level, "minutes": args.minutes}
        done = f"{args.device}: held at {args.level} % for {args.minutes} min"
    reply = send(args.broker, args.device, cmd, args.timeout, login=_login(args))
    return _reply_of(args, reply, done)


def cmd_config_push(args: argparse.Namespace) -> int:
    from .centrecmd import send
    from .runtime import import_firmware

    _positive_timeout(args)
    import_firmware()
    from configcheck import ConfigError

    from sim.scenario import config_parser

    text = _read(args.file)
    try:
        config = json.loads(text)
    except ValueError as e:
        raise UserError(f"{args.file}: not JSON: {e}") from None
    if not isinstance(config, dict):
        raise UserError(f"{args.file}: a configuration is a JSON object")

    def checked(kind: str) -> dict[str, Any]:
        # The device's own parser, here, first: a bad file never leaves this machine.
        try:
            config_parser(kind)(text)
        except ConfigError as e:
            raise UserError(
                f"{args.file} is not a good {kind} configuration: " + "; ".join(e.errors)
            ) from None
        return {"cmd": "config", "config": config}

    reply = send(args.broker, args.device, checked, args.timeout, login=_login(args))
    restart = (reply.get("result") or {}).get("restart_in_s")
    return _reply_of(
        args,
        reply,
        f"{args.device}: configuration installed on trial; it restarts in {restart} s and keeps it only if "
        "it reaches the centre with it",
    )


def _positive_timeout(args: argparse.Namespace) -> None:
    if not args.timeout > 0:
        raise UserError("--timeout needs a number of seconds above 0")


def cmd_monitor(args: argparse.Namespace) -> int:
    import threading

    from .centrecmd import Lamps, device_rows

    columns = [
        "device",
        "kind",
        "site",
        "status",
        "level",
        "mode",
        "alarm",
        "faults",
        "pending",
        "hours",
        "kwh",
        "cycles",
        "signed",
        "ts",
    ]
    login = _login(args)
    if args.once:
        lamps = Lamps(args.broker, login=login)
        try:
            rows = device_rows(lamps)
        finally:
            lamps.close()
        if args.json:
            for r in rows:
                _print_line(r)
        else:
            _table(rows, columns)
        return 0
    changed = threading.Event()
    lamps = Lamps(args.broker, on_change=changed.set, login=login)
    try:
        changed.set()
        while True:
            changed.wait()
            changed.clear()
            rows = device_rows(lamps)
            if args.json:
                for r in rows:
                    _print_line(r)
                sys.stdout.flush()
            else:
                print("\x1b[2J\x1b[H", end="")
                _table(rows, columns)
    except KeyboardInterrupt:
        return 0
    finally:
        lamps.close()


def _flat(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "-" if value is None else str(value)


def cmd_diag(args: argparse.Namespace) -> int:
    from . import diag

    if not _positive(args.timeout) or args.timeout > 600:
        raise UserError("--timeout needs a number of seconds above 0 (at most 600)")
    tz_text = None
    if args.diag_command == "status" and not args.args and not args.json:
        # The technician's view shows the park's local time: the zone is in the
        # configuration in force, asked on the same connection.
        with diag.Port(args.port) as p:
            reply = p.ask("status", args.timeout)
            if reply["ok"]:
                cfg = p.ask("config get", args.timeout)
                site = (cfg.get("data") or {}).get("config", {}).get("site", {}) if cfg["ok"] else {}
                tz_text = site.get("tz") if isinstance(site, dict) else None
    else:
        reply = diag.run(args.port, args.diag_command, args.args, args.timeout)
    if not reply["ok"]:
        if args.json:
            _print_json(reply)
        raise UserError(f"the board refused: {reply.get('error')}")
    data = reply.get("data")
    invalid = (
        args.diag_command == "config"
        and args.args[:1] == ["validate"]
        and isinstance(data, dict)
        and data.get("valid") is False
    )
    if args.json:
        _print_json(data)
        return EXIT_FAILED if invalid else EXIT_OK
    from rich.table import Table

    console = _console()
    title = " ".join([args.diag_command, *args.args[:1]])
    if invalid:
        assert isinstance(data, dict)
        errors = data.get("errors") or []
        print(f"{args.args[1]}: not valid for this board, {len(errors)} error(s):", file=sys.stderr)
        for err in errors:
            print(f"  {err}", file=sys.stderr)
        return EXIT_FAILED
    if args.diag_command == "status" and isinstance(data, dict) and not args.args:
        table = Table(title="status", show_header=False)
        table.add_column("what")
        table.add_column("value")
        for k, v in diag.status_view(data, tz_text):
            table.add_row(k, v)
        console.print(table)
    elif args.diag_command == "config" and isinstance(data, dict) and "config" in data:
        console.print(f"{data.get('file')}" + (" (on trial)" if data.get("trial") else ""))
        print(json.dumps(data["config"], indent=2, ensure_ascii=False, sort_keys=True))
    elif isinstance(data, list) and data and isinstance(data[0], dict):
        table = Table(title=title)
        keys = list(data[0])
        for k in keys:
            table.add_column(k)
        for row in data:
            table.add_row(*(_flat(row.get(k)) for k in keys))
        console.print(table)
    elif isinstance(data, dict):
        table = Table(title=title, show_header=False)
        table.add_column("what")
        table.add_column("value")
        for k in sorted(data):
            table.add_row(k, _flat(data[k]))
        console.print(table)
    else:
        console.print(_flat(data))
    return EXIT_OK


def _deploy_report(done, as_json: bool) -> None:
    if as_json:
        return
    from rich.table import Table

    table = Table(title=f"deployed {done.version} ({done.hash[:12]}) in {done.seconds:.1f} s")
    table.add_column("file")
    table.add_column("")
    for p in done.copied:
        table.add_row(p, "copied")
    for p in done.removed:
        table.add_row(p, "removed")
    for p in done.up_to_date:
        table.add_row(p, "up to date")
    _console().print(table)


def cmd_deploy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .build import LazyProgress
    from .deploy import deploy

    bar = LazyProgress(not args.json)
    try:
        done = deploy(
            args.port,
            args.app,
            Path(args.device_config) if args.device_config else None,
            chip=args.chip,
            progress=bar,
        )
    finally:
        bar.close()
    if args.json:
        _print_json(done.as_json())
    _deploy_report(done, args.json)
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .provision import centre_account, provision

    secrets = Path(args.secrets) if args.secrets else None
    if args.centre:
        if not args.broker_dir:
            raise UserError("--centre adds the centre's account to a broker folder: give --broker-dir DIR")
        if args.inventory or args.device or args.port or args.ca or args.release_key:
            raise UserError("--centre takes only --broker-dir and --secrets (no device is provisioned)")
        done = centre_account(Path(args.broker_dir), secrets)
        if args.json:
            _print_json(done)
        else:
            print(f"the centre's account {done['account']!r} is in {done['passwd']} (password not shown)")
        return 0
    missing = [f"--{k}" for k in ("inventory", "device", "port") if not getattr(args, k)]
    if missing:
        raise UserError(f"provisioning a device needs {', '.join(missing)}")
    out = provision(
        Path(args.inventory),
        args.device,
        args.port,
        secrets,
        Path(args.ca) if args.ca else None,
        Path(args.broker_dir) if args.broker_dir else None,
        Path(args.release_key) if args.release_key else None,
    )
    if args.json:
        _print_json(out)
        return 0
    from .deploy import Deployed

    _deploy_report(Deployed(**{k: v for k, v in out["deploy"].items()}), False)
    print(f"{out['device']}: configuration installed as {out['installed']} (secrets not shown):")
    print(json.dumps(out["config"]["network"], indent=2, sort_keys=True))
    if "broker_account" in out:
        acct = out["broker_account"]
        print(
            f"broker account {acct['user']!r} written to {acct['passwd']} (a running broker reads it "
            "at SIGHUP)"
        )
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import release

    if args.release_command == "keygen":
        _output_folder(args.out, "--out")
        done = release.keygen(Path(args.out))
        if args.json:
            _print_json(done)
        else:
            print(f"private key  {done['private_key']} (mode 0600: keep it offline, never on a server)")
            print(f"public key   {done['public_key']} (for the devices: parkctl provision --release-key)")
            print(f"key id       {done['key_id']}")
        return 0
    if args.release_command == "sign" and args.image:
        _output_folder(args.out, "--out")
        if args.build:
            raise UserError("--image or --build, not both: an image release holds the image alone")
        if not args.chip:
            raise UserError("--image needs --chip (esp32 or esp32s3): the chip the image is built for")
        done = release.sign_image(
            args.app,
            args.chip,
            args.version,
            Path(args.key),
            Path(args.out),
            Path(args.image),
            args.downgrade_ok,
        )
        if args.json:
            _print_json(done)
        else:
            down = ", signed as a permitted downgrade" if done["downgrade_ok"] else ""
            print(
                f"{done['app']} {done['version']} for {done['chips'][0]}: MicroPython image {done['image']}, "
                f"{_human_size(done['bytes'])}, key {done['key_id']}{down}"
            )
            print(f"release in {done['release']}")
        return 0
    if args.release_command == "sign":
        if args.chip:
            raise UserError("--chip is for --image: a release of a build is for the build's chip")
        _output_folder(args.out, "--out")
        done = release.sign(
            args.app,
            args.version,
            Path(args.key),
            Path(args.out),
            Path(args.build) if args.build else None,
            args.downgrade_ok,
        )
        if args.json:
            _print_json(done)
        else:
            down = ", signed as a permitted downgrade" if done["downgrade_ok"] else ""
            print(
                f"{done['app']} {done['version']} for {', '.join(done['chips'])}: {done['files']} files, "
                f"{_human_size(done['bytes'])}, key {done['key_id']}{down}"
            )
            print(f"release in {done['release']}")
        return 0
    from .build import DEFAULT_CHIP

    found = release.verify(
        Path(args.release), Path(args.key), args.app, args.chip or DEFAULT_CHIP[args.app], args.running
    )
    if args.json:
        _print_json(found)
    elif found["ok"] and "image" in found:
        print(f"{found['app']} {found['version']}: signature, manifest and image {found['image']} good")
    elif found["ok"]:
        print(f"{found['app']} {found['version']}: signature, manifest and {found['files']} files good")
    else:
        print(f"refused: {found['reason']}")
    return 0 if found["ok"] else EXIT_FAILED


def cmd_rollout(args: argparse.Namespace) -> int:
    from .rolloutrun import run

    if args.resume and args.abort:
        raise UserError("--resume or --abort, not both")
    if args.deadline is not None and not _positive(args.deadline):
        raise UserError("--deadline needs a number of seconds above 0")
    from .rollout import TRIAL_RANGE, parse_waves

    if args.trial is not None and not TRIAL_RANGE[0] <= args.trial <= TRIAL_RANGE[1]:
        raise UserError(f"--trial is from {TRIAL_RANGE[0]} to {TRIAL_RANGE[1]} s (what a device takes)")
    if args.waves is not None:
        try:
            parse_waves(args.waves)
        except ValueError as e:
            raise UserError(str(e)) from None
    return run(args, _table)


def cmd_broker(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from .parkbroker import BrokerDir, ParkBroker

    tls = None
    given = [args.cert, args.key, args.ca]
    if any(given):
        if not all(given):
            raise UserError("--cert, --key and --ca go together (or none: a certificate is made for the run)")
        tls = (Path(args.ca), Path(args.cert), Path(args.key))
        for f in tls:
            if not f.is_file():
                raise UserError(f"cannot read {f}")
    if not 0 < args.port < 65536 or (args.plain_port is not None and not 0 < args.plain_port < 65536):
        raise UserError("a port is a number from 1 to 65535")
    folder = Path(args.dir)
    broker = ParkBroker(
        folder,
        port=args.port,
        bind=args.bind,
        plain_port=args.plain_port,
        names=args.name or None,
        tls=tls,
    ).start()
    accounts = BrokerDir(folder).users()
    info = {
        "url": f"mqtts://{args.name[0] if args.name else 'localhost'}:{broker.port}",
        "plain_url": broker.plain_url,
        "ca": str(broker.ca),
        "folder": str(folder),
        "accounts": accounts,
        "pid": broker.proc.pid if broker.proc else None,
    }
    if args.json:
        _print_line(info)
    else:
        print(f"the park's broker (Mosquitto, deploy/mosquitto/park.conf) at {info['url']}")
        if broker.plain_url:
            print(f"  without TLS, for the simulator on this machine only: {broker.plain_url}")
        print(f"  its CA certificate (devices: provision --ca; tools: --ca): {info['ca']}")
        none = f"none yet (parkctl provision --broker-dir {folder})"
        print(f"  accounts: {', '.join(accounts) or none}")
        print("  Ctrl-C stops it")
    sys.stdout.flush()
    # SIGHUP reloads the accounts and rights: pass it on (after a provision).
    signal.signal(signal.SIGHUP, lambda *_: broker.reload())

    def stop(*_) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        assert broker.proc is not None
        code = broker.proc.wait()
        raise UserError(f"Mosquitto stopped (exit status {code}); its log: {folder / 'mosquitto.log'}")
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def cmd_hil(args: argparse.Namespace, extra: list[str]) -> int:
    import subprocess

    from .hil import board_problem
    from .runtime import ROOT

    problem = board_problem(args.board, args.rig)
    if problem:
        raise UserError(problem)
    logs = ROOT / "build" / "hil"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "hil"), "--board", args.board]
    cmd += ["--hil-logs", str(logs), f"--junitxml={logs / 'junit.xml'}", "-p", "no:cacheprovider"]
    if args.rig:
        cmd += ["--rig", args.rig]
    if args.app:
        cmd += ["--hil-app", args.app]
    return subprocess.call([*cmd, *extra], cwd=ROOT)


def cmd_vboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import vboard

    image = Path(args.flash) if args.flash else vboard.default_image(args.app)
    if not args.flash and not image.exists():
        # A new board: flashed with a build of the app, as from the factory.
        import shutil

        from .build import build

        b = build(args.app, image.parent, chip="vboard")
        shutil.copyfile(b.image, image)
        print(f"a new flash image {image} with {b.manifest['version']}", flush=True)
    return vboard.run(args.app, image, Path(args.link) if args.link else None, quiet=args.quiet)


def cmd_campaign(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import campaign
    from .build import LazyProgress

    if args.trials < 1:
        raise UserError("--trials must be at least 1")
    if args.jobs is not None and not 1 <= args.jobs <= 256:
        raise UserError("--jobs must be 1..256")
    bar = LazyProgress(enabled=not args.json)
    try:
        summary = campaign.run(
            args.trials,
            args.runtime,
            args.seed,
            args.jobs,
            Path(args.out) if args.out else None,
            progress=lambda done, total: bar(f"{args.campaign} trials", done, total),
            kind=args.campaign,
        )
    finally:
        bar.close()
    if args.campaign == "update-cuts":
        from .updatecuts import INVARIANTS
    else:
        INVARIANTS = campaign.INVARIANTS
    names = dict(INVARIANTS, errors="trials the simulator could not run")
    if args.json:
        _print_json(
            {
                "trials": summary.trials,
                "runtime": summary.runtime,
                "seed": summary.seed,
                "jobs": summary.jobs,
                "seconds": round(summary.seconds, 1),
                "trials_per_minute": round(summary.per_minute, 1),
                "counts": summary.counts,
                **(
                    {"cuts_inside_update_flash_ops": summary.landed} if args.campaign == "update-cuts" else {}
                ),
                "failed": [
                    {"trial": o.index, "why": o.why or [o.error], "counts": o.counts} for o in summary.failed
                ],
                "written": [str(p) for p in summary.written],
            }
        )
    else:
        print(
            f"{args.campaign}: {summary.trials} trials ({summary.runtime}, seed {summary.seed}) in "
            f"{summary.seconds:.0f} s on {summary.jobs} process(es): {summary.per_minute:.0f} trials a minute"
        )
        if args.campaign == "update-cuts":
            print(f"  {summary.landed:6d}  power cuts inside a flash operation of an update (checked)")
        for key, text in names.items():
            print(f"  {summary.counts[key]:6d}  {text}")
        print(f"  {len(summary.failed):6d}  failing trials")
        for o in summary.failed[:10]:
            print(f"  trial {o.index}: {(o.why or [o.error])[0]}")
        if summary.written:
            print(f"{len(summary.written)} failing trial(s) written to {args.out} as scenario files")
    return 1 if summary.failed else 0


def diag_commands() -> tuple[str, ...]:
    from .diag import COMMANDS

    return COMMANDS


def _positive(x: float | None) -> bool:
    """Above 0 and finite: nan and inf get past a `> 0` test and fail far away."""
    import math

    return x is not None and math.isfinite(x) and x > 0


DEVICE_CONFIG_HELP = "this board's own configuration, installed as /lamp.json (a kiosk's as /kiosk.json)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="parkctl", description="Tools for the park's lamp controllers and check-in kiosks.")
    parser.add_argument("--version", action="version", version=f"parkctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .build import APPS, CHIPS

    sun = sub.add_parser(
        "sun",
        help="civil dawn, sunrise, sunset and civil dusk for a place and date",
        description="Solar events of one local date, computed by the firmware's own sun module.",
    )
    sun.add_argument("--lat", required=True, help="latitude, degrees north (-90..90)")
    sun.add_argument("--lon", required=True, help="longitude, degrees east (-180..180)")
    sun.add_argument("--date", required=True, help="local date, YYYY-MM-DD")
    sun.add_argument("--tz", required=True, help='POSIX TZ string, e.g. "CST-8"')
    sun.add_argument("--runtime", choices=RUNTIMES, default="cpython", help="interpreter to compute in")
    sun.add_argument("--json", action="store_true", help="print JSON")
    sun.set_defaults(func=cmd_sun)

    sched = sub.add_parser(
        "schedule",
        help="every level change of a lamp configuration over some days",
        description="Level changes, computed by the firmware's own lighting engine.",
    )
    sched.add_argument("--config", required=True, help="lamp configuration (JSON)")
    sched.add_argument("--date", help="first local date, YYYY-MM-DD")
    sched.add_argument("--days", type=int, default=1, help="how many days (1..366, default 1)")
    sched.add_argument("--year", type=int, help="with --summary: a whole year, YYYY")
    sched.add_argument(
        "--summary", action="store_true", help="hours at each level, kWh, saving, daylight hours"
    )
    sched.add_argument(
        "--watts", type=float, default=100.0, help="the lamp's power at full output (default 100)"
    )
    sched.add_argument(
        "--plot", metavar="FILE", help="with --summary: a PNG of the year (date, time of day, level)"
    )
    sched.add_argument("--runtime", choices=RUNTIMES, default="cpython", help="interpreter to compute in")
    sched.add_argument("--json", action="store_true", help="print JSON")
    sched.set_defaults(func=cmd_schedule)

    sim = sub.add_parser(
        "sim",
        help="run a scenario on the simulated lamp controller or kiosk",
        description="Runs the unmodified firmware on a virtual ESP32 through a scenario (docs/scenarios.md).",
    )
    sim.add_argument(
        "scenario",
        nargs="?",
        help="scenario file, or the name of one in sim/scenarios (default: the winter night in the G60 park)",
    )
    sim.add_argument(
        "--runtime", choices=RUNTIMES, default="cpython", help="interpreter to run the firmware in"
    )
    sim.add_argument("--seed", type=int, help="noise seed (default: the scenario's)")
    sim.add_argument(
        "--broker",
        metavar="URL",
        help="MQTT broker for a networked scenario: embedded (the default, amqtt in this process), "
        "mosquitto (one started for the run) or mqtt://HOST:PORT (one that is running)",
    )
    sim.add_argument("--plot", metavar="FILE", help="write a PNG plot of the lamp level")
    sim.add_argument("--json", action="store_true", help="print the timeline as JSON lines")
    sim.add_argument("--frames", metavar="DIR", help="a kiosk's display: write every frame as a PNG into DIR")
    sim.add_argument("--lamps", type=int, default=1, metavar="N", help="N lamps at once (CPython)")
    sim.add_argument(
        "--jobs",
        type=int,
        metavar="J",
        help="--lamps: run them in J processes (default: one per 100 lamps, up to the cores there are)",
    )
    sim.add_argument(
        "--realtime",
        type=float,
        metavar="X",
        help="run at X times real time, to watch (default: as fast as it goes)",
    )
    sim.set_defaults(func=cmd_sim)

    camp = sub.add_parser(
        "campaign",
        help="random trials of the simulated lamp against what it promises",
        description="Runs many short random trials of the simulated lamp and checks every promise "
        "(docs/testing.md).",
    )
    camp_sub = camp.add_subparsers(dest="campaign", required=True, metavar="CAMPAIGN")
    pc = camp_sub.add_parser(
        "power-cuts",
        help="presses, commands and configuration updates with power cuts at random flash operations",
        description="Each trial: a random window of a night with presses, commands from the centre, "
        "configuration updates and power cuts part-way through random flash operations, on a "
        "Mosquitto of its own; then alarms lost, invented, duplicated, boards looping, wrong levels 3 s "
        "after power returns, commands run twice and flash images that do not mount are counted.",
    )
    uc = camp_sub.add_parser(
        "update-cuts",
        help="updates of the lamp app over MQTT with power cuts during the transfer, switch and first boots",
        description="Each trial: a lamp deployed with a release is offered a newer one (or one whose app "
        "crashes at import) and loses its power one to three times, mostly part-way through flash "
        "operations, from the offer on; then boards left without a whole app, updates not finished or "
        "not reported, corrupt staging left, boards looping and flash images that do not mount are "
        "counted (docs/updates.md).",
    )
    for cp in (pc, uc):  # the two campaigns take the same options
        cp.add_argument("--trials", type=int, required=True, metavar="N", help="how many trials")
        cp.add_argument(
            "--runtime", choices=RUNTIMES, default="cpython", help="interpreter to run the firmware in"
        )
        cp.add_argument(
            "--seed", type=int, default=1, help="the campaign's seed (default 1): trials are made from it"
        )
        cp.add_argument("--jobs", type=int, metavar="J", help="processes (default: one per core)")
        cp.add_argument("--out", metavar="DIR", help="write each failing trial here as a scenario file")
        cp.add_argument("--json", action="store_true", help="print the counts as JSON")
        cp.set_defaults(func=cmd_campaign)

    broker_help = "the park's MQTT broker, mqtt[s]://HOST[:PORT] (default: $PARK_BROKER)"
    default_broker = os.environ.get("PARK_BROKER")

    def centre_login(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--secrets",
            metavar="TOML",
            help="the secrets file whose [centre] table has the broker account (or $PARK_CENTRE_USER "
            "and $PARK_CENTRE_PASSWORD; never on the command line)",
        )
        p.add_argument(
            "--ca", metavar="FILE", help="an mqtts:// broker's CA certificate, PEM (default: $PARK_BROKER_CA)"
        )

    mon = sub.add_parser(
        "monitor",
        help="the lamps live: online, level, open alarms, faults",
        description="Shows every lamp as the broker last heard it (online or offline, level, mode, "
        "open alarm, faults, undelivered events), redrawn as lamps report, until Ctrl-C; --once "
        "prints it once (docs/protocol.md).",
    )
    mon.add_argument("--broker", default=default_broker, required=default_broker is None, help=broker_help)
    mon.add_argument("--once", action="store_true", help="print the table once and exit")
    mon.add_argument("--json", action="store_true", help="JSON lines, one per lamp")
    centre_login(mon)
    mon.set_defaults(func=cmd_monitor)

    al = sub.add_parser(
        "alarms",
        help="the open alarms of every lamp",
        description="Lists the alarms the lamps report open (raised or acknowledged, not yet "
        "resolved), from what the broker retained; `ack` and `resolve` take their ids.",
    )
    al.add_argument("--broker", default=default_broker, required=default_broker is None, help=broker_help)
    al.add_argument("--json", action="store_true", help="JSON lines, one per alarm")
    centre_login(al)
    al.set_defaults(func=cmd_alarms)

    acts = (
        ("ack", "acknowledge", "the lamp's ring LED stays lit, the lamp goes on flashing until resolved"),
        ("resolve", "resolve (close)", "the lamp stops flashing and goes back to its schedule"),
    )
    for name, what, effect in acts:
        p = sub.add_parser(
            name,
            help=f"{what} an alarm",
            description=f"Sends the lamp the centre's command to {what.split()[0]} the alarm ({effect}) "
            "and waits for its reply; a lamp that is away gets it when it is back.",
        )
        p.add_argument("alarm", help="the alarm's id, as `parkctl alarms` lists it")
        p.add_argument("--broker", default=default_broker, required=default_broker is None, help=broker_help)
        p.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="seconds to wait for the lamp's reply",
        )
        p.add_argument("--json", action="store_true", help="print the lamp's reply as JSON")
        centre_login(p)
        p.set_defaults(func=cmd_act)

    def to_device(p: argparse.ArgumentParser) -> None:
        p.add_argument("device", help="the device's id, as `parkctl monitor` lists it")
        p.add_argument("--broker", default=default_broker, required=default_broker is None, help=broker_help)
        p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the device's reply")
        p.add_argument("--json", action="store_true", help="print the device's reply as JSON")
        centre_login(p)

    st = sub.add_parser("status", help="ask one device for its state now (its `status` command)")
    to_device(st)
    st.set_defaults(func=cmd_status)

    ov = sub.add_parser(
        "override",
        help="hold a lamp at a level for a while, or clear the hold",
        description="Sends the lamp's `override` command: it holds LEVEL for MINUTES (it needs a valid "
        "time), then goes back to its schedule; --clear ends a hold at once (docs/protocol.md).",
    )
    to_device(ov)
    ov.add_argument("--level", type=int, help="the level to hold, 0..100 %%")
    ov.add_argument("--minutes", type=int, help="for how long, 1..10080")
    ov.add_argument("--clear", action="store_true", help="end the hold: back to the schedule")
    ov.set_defaults(func=cmd_override)

    vb = sub.add_parser(
        "vboard",
        help="a virtual ESP32 at a serial port (mpremote, parkctl diag and deploy work with it)",
        description="Runs the real MicroPython interpreter as a virtual board behind a pseudo-terminal "
        "(docs/vboard.md) until stopped.",
    )
    vb.add_argument("app", choices=("lamp", "kiosk"), help="which board")
    vb.add_argument(
        "--flash",
        metavar="IMAGE",
        help="the board's flash: a littlefs image (parkctl build --chip vboard); what the board "
        "writes lands in it (default: build/vboard-APP/flash.img)",
    )
    vb.add_argument("--link", metavar="PATH", help="keep a symlink to the port here (a stable name)")
    vb.add_argument("--quiet", action="store_true", help="do not print the board's resets and world events")
    vb.set_defaults(func=cmd_vboard)

    dp = sub.add_parser(
        "deploy",
        help="copy an app onto a running board over its serial port, only what changed",
        description="Builds the app for the board at PORT, copies the files whose sha256 differs "
        "(mpremote's transport), removes those the old build had and the new one has not, then "
        "soft-resets the board. The board's data (journal, installed configuration) is not touched.",
    )
    dp.add_argument("app", choices=("lamp", "kiosk"), help="the app to deploy")
    dp.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    dp.add_argument("--device-config", metavar="FILE", help=DEVICE_CONFIG_HELP)
    dp.add_argument(
        "--chip",
        choices=list(CHIPS),
        help="build for this chip (default: what the board says it is)",
    )
    dp.add_argument("--json", action="store_true", help="print what was copied as JSON")
    dp.set_defaults(func=cmd_deploy)

    pv = sub.add_parser(
        "provision",
        help="install one device's configuration from the park's inventory (and the app)",
        description="Makes the device's configuration from the inventory (CSV) and its secrets "
        "(a TOML file or $PARK_WIFI_PASSWORD, $PARK_MQTT_USER, $PARK_MQTT_PASSWORD), deploys the app "
        "and writes the configuration to the board only; secrets are never printed (docs/provisioning.md).",
    )
    pv.add_argument("--inventory", metavar="CSV", help="the park's device inventory")
    pv.add_argument("--device", metavar="ID", help="the device's id in the inventory")
    pv.add_argument("--port", help="the board's serial port")
    pv.add_argument("--secrets", metavar="TOML", help="the secrets file (default: the environment only)")
    pv.add_argument(
        "--ca",
        metavar="FILE",
        help="the CA certificate (PEM or DER) the device checks an mqtts:// broker's certificate against",
    )
    pv.add_argument(
        "--broker-dir",
        metavar="DIR",
        help="the park broker's folder (docs/broker.md): the device's account (user = device id) is "
        "added to its password file, hashed, and a kiosk gets its site's roster",
    )
    pv.add_argument(
        "--centre",
        action="store_true",
        help="add the centre's account to --broker-dir instead (password from $PARK_CENTRE_PASSWORD "
        "or the secrets file's [centre] table)",
    )
    pv.add_argument(
        "--release-key",
        metavar="FILE",
        help="the park's release public key (release.pub), installed as /release.pub: the device takes "
        "updates signed with its private key only (docs/updates.md)",
    )
    pv.add_argument("--json", action="store_true", help="print the result (secrets masked) as JSON")
    pv.set_defaults(func=cmd_provision)

    bk = sub.add_parser(
        "broker",
        help="run the park's broker here: Mosquitto with the shipped configuration",
        description="Runs Mosquitto with deploy/mosquitto/park.conf (TLS, no anonymous access, per-device "
        "rights) from a broker folder, until stopped; without --cert/--key/--ca it makes a CA and a "
        "certificate for the run (docs/broker.md).",
    )
    bk.add_argument("--dir", default="build/broker", help="the broker folder (default: build/broker)")
    bk.add_argument("--port", type=int, default=8883, help="the TLS listener's port (default: 8883)")
    bk.add_argument("--bind", default=None, help="the address to listen at (default: every address)")
    bk.add_argument(
        "--plain-port",
        type=int,
        metavar="PORT",
        help="also listen without TLS on 127.0.0.1:PORT, same accounts and rights (for the simulator)",
    )
    bk.add_argument(
        "--name",
        action="append",
        help="a host name or address the made certificate is for (repeatable; default: localhost, 127.0.0.1)",
    )
    bk.add_argument("--cert", metavar="PEM", help="the broker's certificate (with --key and --ca)")
    bk.add_argument("--key", metavar="PEM", help="its private key")
    bk.add_argument("--ca", metavar="PEM", help="the CA certificate that signed it")
    bk.add_argument("--json", action="store_true", help="print where it listens as JSON")
    bk.set_defaults(func=cmd_broker)

    hl = sub.add_parser(
        "hil",
        help="run the hardware-in-the-loop suite on the virtual board or a real one",
        description="Runs tests/hil with pytest (other arguments go to pytest); each test's serial log "
        "and a JUnit report (junit.xml) go to build/hil/ (docs/hil.md).",
    )
    hl.add_argument(
        "--board",
        default="vboard",
        help="vboard (default: a virtual board for each app's tests), vboard:lamp, vboard:kiosk, "
        "or a real board's serial port",
    )
    hl.add_argument(
        "--app",
        choices=("lamp", "kiosk"),
        help="the app to deploy to the real board at --board (default lamp)",
    )
    hl.add_argument("--rig", metavar="TOML", help="what is wired to what on a real board")
    hl.set_defaults(func=cmd_hil, passthrough=True)

    dg = sub.add_parser(
        "diag",
        help="diagnostics over a board's USB serial port, while the lamp runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sends one command to the firmware's diagnostics console (docs/diagnostics.md).\n"
        "Every board: status, log [N], time [set ISO], config get|set FILE|validate FILE, reboot, help.\n"
        "A lamp also:  selftest, alarm test.\n"
        "A kiosk also: face, purge PERSON.\n"
        "A board refuses, naming its own, a command its app does not have.",
    )
    dg.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    dg.add_argument("--json", action="store_true", help="print the board's answer as JSON")
    dg.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the answer",
    )
    dg.add_argument("diag_command", metavar="COMMAND", choices=diag_commands(), help="the console command")
    dg.add_argument("args", nargs="*", help="its arguments")
    dg.set_defaults(func=cmd_diag)

    from .flash import DEFAULT_BAUD

    bld = sub.add_parser(
        "build",
        help="compile an app, make its littlefs image (and a factory image)",
        description="Stages the board's filesystem (boot.py and main.py as source, the rest as .mpy, "
        "/manifest.json), makes its littlefs2 image for the chip's vfs partition and, given a "
        "MicroPython firmware, one factory image (docs/flashing.md).",
    )
    bld.add_argument("app", choices=APPS, help="the app to build")
    bld.add_argument("--out", metavar="DIR", help="output folder (default: build/APP)")
    bld.add_argument(
        "--chip", choices=list(CHIPS), help="target (default: esp32 for the lamp, esp32s3 for the kiosk)"
    )
    bld.add_argument(
        "--firmware", metavar="BIN", help="MicroPython .bin for the chip: also write DIR/factory.bin"
    )
    bld.add_argument("--device-config", metavar="FILE", help=DEVICE_CONFIG_HELP)
    bld.add_argument(
        "--release-key",
        metavar="FILE",
        help="install the park's release public key (release.pub) as /release.pub: the board takes "
        "updates signed with its private key only (docs/updates.md)",
    )
    bld.add_argument("--json", action="store_true", help="print the summary as JSON")
    bld.set_defaults(func=cmd_build)

    fl = sub.add_parser(
        "flash",
        help="build an app and write it to a board with esptool",
        description="Builds the app, then esptool writes the firmware (if given) and the filesystem "
        "image at the chip's offsets and checks what it wrote (docs/flashing.md).",
    )
    fl.add_argument("app", choices=APPS, help="the app to flash")
    fl.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    fl.add_argument("--firmware", metavar="BIN", help="MicroPython .bin to write too (a new board)")
    fl.add_argument("--device-config", metavar="FILE", help=DEVICE_CONFIG_HELP)
    fl.add_argument(
        "--release-key",
        metavar="FILE",
        help="install the park's release public key (release.pub) as /release.pub (docs/updates.md)",
    )
    fl.add_argument(
        "--chip",
        choices=[n for n, c in CHIPS.items() if c.esptool],
        help="(default: esp32 for the lamp, esp32s3 for the kiosk)",
    )
    fl.add_argument("--baud", type=int, default=DEFAULT_BAUD, help=f"baud rate (default {DEFAULT_BAUD})")
    fl.add_argument("--erase", action="store_true", help="erase the whole flash first")
    fl.add_argument(
        "--force", action="store_true", help="flash even if the lamp has undelivered events or an open alarm"
    )
    fl.add_argument("--out", metavar="DIR", help="build folder (default: build/APP-CHIP)")
    fl.set_defaults(func=cmd_flash)

    rel = sub.add_parser(
        "release",
        help="the park's release key and signed releases of an app (docs/updates.md)",
        description="Makes the offline release key pair, signs what `parkctl build` made as a release "
        "that devices verify with the public key, and checks a release as a device would.",
    )
    rel_sub = rel.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    kg = rel_sub.add_parser(
        "keygen",
        help="make a release key pair (ECDSA P-256): DIR/release-key.pem (private) and DIR/release.pub",
    )
    kg.add_argument("--out", required=True, metavar="DIR", help="folder for the two key files")
    kg.add_argument("--json", action="store_true", help="print the files and key id as JSON")
    kg.set_defaults(func=cmd_release)
    sg = rel_sub.add_parser(
        "sign",
        help="sign a build as a release: DIR/release.json, DIR/release.sig, DIR/files/",
        description="Reads the build `parkctl build APP` left (build/APP, or --build), checks it against "
        "its manifest, and writes the release: every file, the manifest (app, chip, version, each file's "
        "path, size and sha256) and its signature.",
    )
    sg.add_argument("--app", required=True, choices=APPS, help="the app the build is of")
    sg.add_argument("--version", required=True, metavar="V", help="the release's version, e.g. 1.4.2")
    sg.add_argument("--key", required=True, metavar="FILE", help="the release private key (release-key.pem)")
    sg.add_argument("--out", required=True, metavar="DIR", help="folder for the release")
    sg.add_argument("--build", metavar="DIR", help="the build folder (default: build/APP)")
    sg.add_argument(
        "--image",
        metavar="FILE",
        help="sign a MicroPython image (an ESP-IDF .app-bin) instead of a build: for boards flashed with "
        'the OTA partition table (docs/updates.md, "The MicroPython image")',
    )
    sg.add_argument("--chip", choices=["esp32", "esp32s3"], help="the image's chip (with --image)")
    sg.add_argument(
        "--downgrade-ok",
        action="store_true",
        help="let devices running a newer version take this one (a deliberate rollback)",
    )
    sg.add_argument("--json", action="store_true", help="print a summary as JSON")
    sg.set_defaults(func=cmd_release)
    vf = rel_sub.add_parser(
        "verify",
        help="check a release as a device would (the firmware's own code): exit 1 if it would refuse it",
    )
    vf.add_argument("release", metavar="DIR", help="the release folder")
    vf.add_argument("--key", required=True, metavar="FILE", help="the release public key (release.pub)")
    vf.add_argument("--app", required=True, choices=APPS, help="the device's app")
    vf.add_argument("--chip", choices=list(CHIPS), help="the device's chip (default: the app's)")
    vf.add_argument("--running", metavar="V", help="the version the device runs (default: none yet)")
    vf.add_argument("--json", action="store_true", help="print the verdict as JSON")
    vf.set_defaults(func=cmd_release)

    ro = sub.add_parser(
        "rollout",
        help="offer a signed release to a fleet wave by wave; halt at the first rollback (docs/updates.md)",
        description="Offers the release to the devices of its app (--group: sites, ids or patterns) wave "
        "by wave, serves the pieces they fetch, waits for each to run it healthy, and halts as soon as a "
        "device of a wave rolls back, refuses it or stays silent past --deadline: no later wave is offered. "
        "Its state is saved (--state, default DIR/rollout.json) for --resume or --abort.",
    )
    ro.add_argument("--release", metavar="DIR", help="the release folder (`parkctl release sign` wrote)")
    ro.add_argument(
        "--key",
        metavar="FILE",
        help="the park's release public key (release.pub): the release is checked first",
    )
    ro.add_argument("--broker", default=default_broker, required=default_broker is None, help=broker_help)
    ro.add_argument(
        "--group",
        action="append",
        metavar="G",
        help="a site id, a device id or a pattern (lamp-0*) of the devices to update; repeatable "
        "(default: all)",
    )
    ro.add_argument(
        "--waves",
        metavar="LIST",
        help="cumulative wave targets, counts or percentages (default 1,5%%,25%%,100%%)",
    )
    ro.add_argument(
        "--deadline",
        type=float,
        metavar="S",
        help="seconds from its offer for a device to run it healthy (900)",
    )
    ro.add_argument(
        "--trial", type=int, metavar="S", help="the new app's trial on the device, 60..86400 s (600)"
    )
    ro.add_argument("--state", metavar="FILE", help="the rollout's state file (default: DIR/rollout.json)")
    ro.add_argument("--resume", action="store_true", help="go on with the rollout in --state")
    ro.add_argument(
        "--abort", action="store_true", help="end the rollout in --state: fetching devices cancel"
    )
    ro.add_argument("--json", action="store_true", help="print one JSON object at the end")
    centre_login(ro)
    ro.set_defaults(func=cmd_rollout)

    config = sub.add_parser("config", help="device configuration files")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a device configuration and list every error")
    check.add_argument("file", help="the configuration (JSON)")
    check.add_argument(
        "--app", choices=("lamp", "kiosk"), default="lamp", help="whose configuration it is (default lamp)"
    )
    check.add_argument(
        "--from",
        dest="from_date",
        metavar="YYYY-MM-DD",
        help="first night of the year checked for steps that fall in daylight (default today)",
    )
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=cmd_config_check)
    push = config_sub.add_parser(
        "push",
        help="send a device a new configuration through the broker, checked here first",
        description="Checks FILE with the device's own parser (its kind from what it published), then "
        "sends its `config` command: installed on trial, kept only if the device reaches the centre "
        "with it (docs/protocol.md).",
    )
    push.add_argument("device", help="the device's id")
    push.add_argument("file", help="the whole configuration (JSON)")
    push.add_argument("--broker", default=default_broker, required=default_broker is None, help=broker_help)
    push.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the device's reply")
    push.add_argument("--json", action="store_true", help="print the device's reply as JSON")
    centre_login(push)
    push.set_defaults(func=cmd_config_push)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake in the arguments told in one line (the README's
    promise), not after the whole usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# The exit statuses of every command (README.md, "Exit status").
EXIT_OK = 0
EXIT_FAILED = 1  # it ran, and what it checked failed: a check, an expectation, a test
EXIT_BAD_INPUT = 2  # not done: bad arguments or files, refused, nothing answering
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: stdout's reader went away


def _interruptible() -> None:
    """Ctrl-C (SIGINT) stops every command, exit status 130, also one started in
    the background of a script: a shell without job control starts those with
    SIGINT ignored, and Python keeps it ignored, so `parkctl vboard` sent SIGINT
    ran on (a stress run's test_vboard, `make test` started with `&`)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone (`parkctl ... | head`), and not some other
    pipe or socket: the writing end of a pipe with no reader polls as an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    _interruptible()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error("unrecognized arguments: " + " ".join(extra))
    name = " ".join(
        [
            "parkctl",
            args.command,
            *filter(None, [getattr(args, "config_command", None), getattr(args, "release_command", None)]),
        ]
    )
    try:
        if getattr(args, "passthrough", False):
            status = args.func(args, extra)
        else:
            status = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe can still be answered
        return status
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulatorError as e:
        print(f"{name}: the simulator failed: {e}", file=sys.stderr)
        return 3
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # The reader wanted no more (| head): stop quietly with the status of a tool
        # killed by SIGPIPE, and keep Python's exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # Files, folders, ports and sockets the user pointed us at: one line, the
        # system's reason and the name it was about.
        where = f" ({e.filename})" if e.filename else ""
        print(f"{name}: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
