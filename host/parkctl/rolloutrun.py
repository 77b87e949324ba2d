"""`parkctl rollout` at a real broker: the devices found from what the broker
retained, the state machine (rollout.py) driven with paho and the wall clock,
its state saved to a file after every change so a rollout can be resumed or
aborted by a later run (docs/updates.md, "Rolling a release over a fleet")."""

from __future__ import annotations

import fnmatch
import json
import os
import queue
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import UserError
from .rollout import DONE, Release, Rollout, check_release

STATE_FILE = "rollout.json"  # in the release's folder, unless --state
SAVE_EVERY_S = 2.0  # at most this often while pieces are served; at once for a change of state
PUBLISH_WAIT_S = 10.0  # the last commands (cancels) reach the broker within this, or we say so
COLUMNS = ["device", "wave", "from", "state", "progress", "detail"]


def select(
    devices: dict[str, dict[str, Any]], app: str, groups: list[str]
) -> dict[str, tuple[str, str | None]]:
    """The devices of `app` that the groups name (each a site id, a device id or
    an fnmatch pattern over device ids; none: every device of the app):
    id -> (topic prefix, the version it runs)."""
    mine = {d: v for d, v in devices.items() if v.get("kind") == app}
    if not mine:
        raise UserError(f"no {app} device at the broker (none has published its state)")
    chosen: dict[str, tuple[str, str | None]] = {}
    for g in groups or ["*"]:
        hit = [d for d, v in mine.items() if v["site"] == g or d == g or fnmatch.fnmatchcase(d, g)]
        if not hit:
            raise UserError(f"--group {g}: no {app} device at the broker is of that site or matches that id")
        for d in hit:
            v = mine[d]
            app_state = v["state"].get("app") if isinstance(v.get("state"), dict) else None
            version = app_state.get("version") if isinstance(app_state, dict) else None
            if v.get("verified") is False:
                version = None  # not the device's word: it is offered, and its own state tells
            chosen[d] = (f"park/{v['site']}/{app}/{d}", version if isinstance(version, str) else None)
    return chosen


def _save(path: Path, rollout: Rollout, folder: Path) -> None:
    data = dict(rollout.to_json(), release_dir=str(folder.resolve()))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)  # a crash leaves the old state or the new, never half of one


def _load(path: Path) -> tuple[dict[str, Any], Release, Path]:
    """A saved rollout's state, and its release read again and checked against it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"cannot read the rollout's state {path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path}: not a rollout's state (not JSON)") from None
    if not isinstance(data, dict) or not isinstance(data.get("release_dir"), str):
        raise UserError(f"{path}: not a rollout's state (no release_dir)")
    folder = Path(data["release_dir"])
    return data, Release.from_folder(folder), folder


def _writable(path: Path) -> None:
    """Fails now, not at the first save, for a state file that cannot be written."""
    if path.is_dir():
        raise UserError(f"--state {path} is a folder: give a file")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("")
        tmp.unlink()
    except OSError as e:
        raise UserError(f"--state {path}: cannot be written ({e.strerror or e})") from None


class _Bar:
    """One line on stderr, redrawn, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()
        self.shown = False

    def draw(self, r: Rollout) -> None:
        if not self.on or r.wave < 0:
            return
        wave = r.waves[r.wave]
        done = sum(1 for d in wave if r.devices[d]["state"] == DONE)
        pct = sum(r.devices[d]["progress"] for d in wave) // max(1, len(wave))
        filled = pct * 30 // 100
        sys.stderr.write(
            f"\rwave {r.wave + 1}/{len(r.waves)} [{'#' * filled}{'.' * (30 - filled)}] {pct:3d}%  "
            f"{done}/{len(wave)} healthy "
        )
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def run(args, table) -> int:
    """The command; `table(rows, columns)` prints a table (the CLI's). Everything
    that can be checked here is checked before the broker is asked anything."""
    from sim.cmdsign import COUNTER

    from .centrecmd import Lamps
    from .cli import EXIT_FAILED, _login

    login = _login(args)

    def master_key() -> bytes:
        if login.command_key is None:
            raise UserError(
                "no command key: devices act only on commands signed with theirs; give the park's master key "
                "as $PARK_COMMAND_KEY or in the secrets file's [centre] table (command_key)"
            )
        return login.command_key

    if args.resume or args.abort:
        if args.release or args.key or args.group or args.waves or args.deadline or args.trial:
            raise UserError(
                "--resume and --abort take only --state, --broker and the login: the rest is in the state"
            )
        if not args.state:
            raise UserError("--resume and --abort need --state FILE (the rollout's state)")
        state_path = Path(args.state)
        data, release, folder = _load(state_path)
        try:
            rollout = Rollout.from_json(data, release, master_key(), COUNTER.next)
        except ValueError as e:
            raise UserError(f"{state_path}: {e}") from None
        if rollout.aborted:
            raise UserError(f"{state_path}: this rollout was aborted: start a new one")
        if rollout.done:
            raise UserError(f"{state_path}: this rollout is done: every device runs {release.version}")
        _writable(state_path)
        lamps = Lamps(args.broker, login=login)
    else:
        if not args.release:
            raise UserError(
                "give --release DIR (a release `parkctl release sign` wrote), or --resume/--abort"
            )
        if not args.key:
            raise UserError(
                "give --key FILE: the park's release public key (release.pub), to check the release"
            )
        folder = Path(args.release)
        release = check_release(folder, Path(args.key))
        state_path = Path(args.state) if args.state else folder / STATE_FILE
        if state_path.is_file():
            try:
                old = json.loads(state_path.read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                old = {}
            if isinstance(old, dict) and not old.get("done") and not old.get("aborted"):
                raise UserError(
                    f"{state_path} holds a rollout not finished: --resume or --abort it "
                    "(or give another --state)"
                )
        _writable(state_path)
        master = master_key()
        lamps = Lamps(args.broker, login=login)
        try:
            with lamps._cv:
                devices = {d: dict(v) for d, v in lamps.devices.items()}
            chosen = select(devices, release.app, args.group or [])
            kw: dict[str, Any] = {}
            if args.waves is not None:
                kw["waves"] = args.waves
            if args.deadline is not None:
                kw["deadline_s"] = args.deadline
            if args.trial is not None:
                kw["trial_s"] = args.trial
            try:
                rollout = Rollout(release, chosen, master, COUNTER.next, uuid.uuid4().hex[:8], **kw)
            except ValueError as e:
                raise UserError(str(e)) from None
        except BaseException:
            lamps.close()
            raise
    try:
        return _drive(args, lamps, rollout, folder, state_path, table, EXIT_FAILED)
    finally:
        lamps.close()


def _drive(args, lamps, rollout: Rollout, folder: Path, state_path: Path, table, exit_failed: int) -> int:
    inbox: queue.Queue = queue.Queue()
    client = lamps.client
    # From here on every message goes to the rollout, in the order it came.
    client.on_message = lambda c, u, m: inbox.put((m.topic, bytes(m.payload)))
    app = rollout.release.app
    topics = [(f"park/+/{app}/+/{k}", 1) for k in ("fetch", "state", "event", "reply")]

    def connected(c, userdata, flags, reason, properties=None) -> None:
        # paho reconnects by itself after a lost connection, but a clean session
        # comes back with no subscriptions: without this the devices would look
        # silent and the rollout would halt at their deadlines.
        if not reason.is_failure:
            c.subscribe(topics)

    client.on_connect = connected
    client.subscribe(topics)
    bar = _Bar()
    pending: list = []

    def publish(outs) -> None:
        for topic, payload, qos in outs:
            info = client.publish(topic, payload, qos)
            if qos:
                pending.append(info)

    def show_wave_ends() -> None:
        while rollout.ended:
            wave = rollout.ended.pop(0)
            if not args.json:
                bar.clear()
                print(f"wave {wave} of {len(rollout.waves)}: every device healthy")
                if wave < len(rollout.waves):  # the last one's table is the final one
                    table(rollout.rows(), COLUMNS)

    saved_changes = -1
    saved_at = 0.0
    try:
        now = time.time()
        if args.abort:
            publish(rollout.abort(now))
        elif args.resume:
            publish(rollout.resume(now))
        else:
            publish(rollout.start(now))
        _save(state_path, rollout, folder)
        saved_changes, saved_at = rollout.changes, now
        while not rollout.finished:
            msgs = []
            try:
                msgs.append(inbox.get(timeout=0.5))
                while len(msgs) < 500:  # a burst of fetches, taken together
                    msgs.append(inbox.get_nowait())
            except queue.Empty:
                pass
            now = time.time()
            for topic, payload in msgs:
                publish(rollout.message(topic, payload, now))
            publish(rollout.tick(now))
            show_wave_ends()
            if rollout.changes != saved_changes and (rollout.finished or now - saved_at >= SAVE_EVERY_S):
                _save(state_path, rollout, folder)
                saved_changes, saved_at = rollout.changes, now
            bar.draw(rollout)
        show_wave_ends()
    except KeyboardInterrupt:
        bar.clear()
        _save(state_path, rollout, folder)
        print(
            f"parkctl rollout: interrupted: its state is in {state_path}; go on with --resume or end it "
            "with --abort",
            file=sys.stderr,
        )
        return 130
    bar.clear()
    _save(state_path, rollout, folder)
    deadline = time.monotonic() + PUBLISH_WAIT_S
    for info in pending:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    if args.json:
        print(json.dumps(dict(rollout.summary(), state_file=str(state_path)), indent=2))
    else:
        table(rollout.rows(), COLUMNS)
        s = rollout.summary()
        print(f"{s['outcome']}: {s['done']} of {len(rollout.devices)} devices run {rollout.release.version}")
    if rollout.halted is not None and not rollout.aborted:
        h = rollout.halted
        print(
            f"parkctl rollout: halted: {h['device']} {h['why']}; no later wave was offered "
            f"(state: {state_path})",
            file=sys.stderr,
        )
        return exit_failed
    return 0
