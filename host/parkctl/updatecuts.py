"""`parkctl campaign update-cuts`: updates of the lamp app over MQTT with power
cuts at random flash operations during the transfer, the switch and the first
boots of the new app (docs/updates.md, docs/testing.md).

Each trial: a lamp deployed with release 1.0.0 is offered 1.1.0 (or, in one
trial in five, 1.2.0, whose app raises at import) by the simulated centre, and
loses its power one to three times, mostly part-way through a program or erase
of the flash, from the offer on. Then, from the timeline and the flash image the
trial leaves:
- the app on the flash is whole: its /manifest.json is one of the two releases',
  byte for byte, and every file it lists has its sha256 (else "boards left
  without a whole app");
- it is the app it should be by then: 1.1.0, or 1.0.0 back after 1.2.0 failed,
  with no trial left running, and the centre was told (update_done or
  update_rolled_back) (else "updates not finished");
- nothing staged that is wrong and looks done: a file in /stage/files as long as
  the manifest says but with another sha256 (else "corrupt staging left");
- no boot loop, and the flash mounts.

The releases are made once per campaign (a fresh release key), in a folder the
trials share; a failing trial is written out with them."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from .campaign import CONFIG, Outcome, _clock

INVARIANTS = (
    ("broken", "boards left without a whole app"),
    ("unfinished", "updates not finished (or not reported)"),
    ("corrupt", "corrupt staging left (undetected)"),
    ("looping", "boards looping"),
    ("flash", "flash images that do not mount"),
)
GOOD, BAD, OLD = "1.1.0", "1.2.0", "1.0.0"
AFTER_S = 180  # after the last power return: the transfer goes on, the trial runs
OPS = 450  # a cut lands in one of this many flash operations after it is armed


def sim_build(folder: Path, app: str = "lamp", main: str | None = None) -> Path:
    """A build folder (fs/ and its manifest, as `parkctl build` leaves one) of
    `app`'s boot.py and main.py (main.py replaced by `main` if given): a release
    made from it is all the simulator needs, which runs the app's own sources for
    every module not on the board's flash as `.py` (docs/sim.md)."""
    from .build import make_manifest
    from .runtime import ROOT

    source = ROOT / "firmware" / app
    files = {
        "/boot.py": (source / "boot.py").read_bytes(),
        "/main.py": main.encode() if main is not None else (source / "main.py").read_bytes(),
    }
    fs = folder / "fs"
    fs.mkdir(parents=True)
    for path, data in files.items():
        (fs / path[1:]).write_bytes(data)
    manifest = make_manifest(app, "esp32s3" if app == "kiosk" else "esp32", "sim", files)
    (fs / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, separators=(",", ":")))
    return folder


def prepare(folder: Path) -> Path:
    """The releases every trial uses: 1.0.0 (deployed), 1.1.0 and 1.2.0 (crashes
    at import), signed with a release key made now."""
    from . import release
    from .runtime import ROOT

    release.keygen(folder / "keys")
    main = (ROOT / "firmware" / "lamp" / "main.py").read_text()
    broken = main.replace(
        "    import json\n", '    import json\n\n    raise RuntimeError("a release broken at import")\n', 1
    )
    for version, text in ((OLD, None), (GOOD, None), (BAD, broken)):
        build = sim_build(folder / f"build-{version}", "lamp", text)
        release.sign("lamp", version, folder / "keys" / "release-key.pem", folder / version, build)
    return folder


def make_trial(campaign_seed: int, index: int, releases: Path) -> tuple[str, dict, str]:
    """(scenario text, configuration, the version offered) of trial `index`."""
    rnd = random.Random(campaign_seed * 1_000_003 + index)
    seed = rnd.randrange(1, 2**31)
    config = json.loads(CONFIG.read_text())
    config["device"] = f"lamp-update-{index}"
    t0 = rnd.randrange(17 * 3600, 30 * 3600)
    offered = BAD if rnd.random() < 0.2 else GOOD
    offer = t0 + rnd.randrange(20, 60)
    lines = [
        f"# update power-cut campaign {campaign_seed}, trial {index}: {offered} offered",
        "config trial.json",
        f"start {_clock(t0)}",
        "END",
        f"seed {seed}",
        "wifi up",
        f"deployed {releases / OLD / 'files'}",
        f"release key {releases / 'keys' / 'release.pub'}",
        f"at {_clock(offer)} centre offers {releases / offered}",
    ]
    # The cuts one after the other from the offer on: each armed when the power
    # is back from the one before, and landing in the N-th flash operation from
    # then. An update of these releases is about 350 operations in all (the
    # transfer, the switch, the new app's first boot; a rollback more), so N
    # runs over all of it; a cut past its end lands in the lamp's own writes.
    at = offer
    for _ in range(rnd.randint(1, 3)):
        back = at + rnd.choice((1, 2, 5, 30))
        if rnd.random() < 0.85:
            lines.append(f"power cut at flash op {rnd.randint(1, OPS)} after {_clock(at)} - {_clock(back)}")
        else:
            lines.append(f"power off {_clock(at)} - {_clock(back)}")
        at = back + 2
    last = at
    text = "\n".join(lines).replace("END", f"end {_clock(last + AFTER_S)}") + "\n"
    return text, config, offered


def _image_files(image: Path) -> dict[str, bytes] | None:
    """Every file on the flash image (path -> bytes); None if it does not mount."""
    import littlefs

    from sim import cpython

    ctx = littlefs.UserContext(0)
    ctx.buffer = bytearray(image.read_bytes())
    try:
        fs = cpython.littlefs_on(ctx, image.stat().st_size // cpython.BLOCK_SIZE, mount=False)
        fs.mount()
        out: dict[str, bytes] = {}
        for top, _dirs, names in fs.walk("/"):
            for n in names:
                p = top.rstrip("/") + "/" + n
                with fs.open(p, "rb") as f:
                    out[p] = f.read()
        return out
    except Exception:  # any failure: it does not mount
        return None


def check(
    entries, files: dict[str, bytes] | None, releases: Path, offered: str, index: int, seed: int
) -> Outcome:
    counts = dict.fromkeys((k for k, _ in INVARIANTS), 0)
    why: list[str] = []
    if files is None:
        counts["flash"] = 1
        return Outcome(index, seed, counts, ["the flash image left at the end does not mount"])
    manifests = {v: (releases / v / "files" / "manifest.json").read_bytes() for v in (OLD, GOOD, BAD)}
    on = files.get("/manifest.json")
    running = next((v for v, m in manifests.items() if m == on), None)
    if running is None:
        counts["broken"] = 1
        why.append("/manifest.json is none of the releases'")
    else:
        for path, digest in json.loads(on or b"{}")["files"].items():
            data = files.get(path)
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                counts["broken"] = 1
                why.append(f"{running}'s {path} is {'missing' if data is None else 'not as released'}")
    want = GOOD if offered == GOOD else OLD
    told = "update_done from" if offered == GOOD else "update_rolled_back from"
    if running != want or "/app.trial" in files:
        counts["unfinished"] = 1
        why.append(
            f"the board runs {running} at the end{' on trial' if '/app.trial' in files else ''}, not {want}"
        )
    elif not any(e.kind == "centre" and e.text.startswith(told) for e in entries):
        counts["unfinished"] = 1
        why.append(f"the centre never heard {told.split()[0]}")
    # Staged and looking done, but wrong: the device must never take it as whole.
    staged = files.get("/stage/release.json")
    if staged is not None:
        for e in json.loads(staged)["files"]:
            data = files.get("/stage/files/" + e["path"])
            if (
                data is not None
                and len(data) == e["size"]
                and hashlib.sha256(data).hexdigest() != e["sha256"]
            ):
                counts["corrupt"] += 1
                why.append(f"/stage/files/{e['path']} is whole and wrong")
    # The cuts that landed inside a flash operation from the offer to the
    # update's end (its last report on the console, or the end).
    offer = next((e.t for e in entries if e.kind == "centre" and e.text.startswith("sends update")), None)
    ends = [
        e.t
        for e in entries
        if e.kind == "console" and e.text.startswith(("event update_done", "event update_rolled_back"))
    ]
    end = ends[-1] if ends else entries[-1].t
    landed = sum(
        1
        for e in entries
        if e.kind == "power"
        and e.text.startswith("mains cut in the middle of a flash")
        and offer is not None
        and offer <= e.t <= end
    )
    wdt = sum(1 for e in entries if e.kind == "reset" and e.text == "watchdog")
    stopped = [e.text for e in entries if e.kind == "firmware" and e.text.startswith("main.py stopped")]
    if wdt >= 3 or stopped:
        counts["looping"] = 1
        why.append(f"{wdt} watchdog resets" + (f"; {stopped[0]}" if stopped else ""))
    return Outcome(index, seed, counts, why, landed=landed)


def run_trial(campaign_seed: int, index: int, runtime: str, releases: Path) -> Outcome:
    from . import simcmd

    text, config, offered = make_trial(campaign_seed, index, releases)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scn = Path(tmp) / "trial.scn"
        scn.write_text(text)
        (Path(tmp) / "trial.json").write_text(json.dumps(config, indent=1))
        image = Path(tmp) / "flash.img"
        try:
            result = simcmd.run(scn, runtime, broker="mosquitto", flash=image)
        except Exception as e:
            last = str(e).strip().splitlines()
            return Outcome(index, 0, {}, [], f"{type(e).__name__}: {last[-1] if last else ''}")
        out = check(result.entries, _image_files(image), releases, offered, index, 0)
    out.seconds = time.perf_counter() - start
    return out


def write_failure(out: Path, campaign_seed: int, outcome: Outcome, releases: Path) -> Path:
    """The failing trial as a scenario that runs it again, with its releases."""
    out.mkdir(parents=True, exist_ok=True)
    kept = out / f"update-cuts-{campaign_seed}-releases"
    if not kept.exists():
        shutil.copytree(releases, kept)
    text, config, _ = make_trial(campaign_seed, outcome.index, kept)
    name = f"update-cuts-{campaign_seed}-{outcome.index}"
    (out / f"{name}.json").write_text(json.dumps(config, indent=1) + "\n")
    head = [f"# update power-cut campaign {campaign_seed}, trial {outcome.index}: it failed"]
    head += [f"#   {w}" for w in (outcome.why or [outcome.error])]
    body = text.replace("config trial.json", f"config {name}.json").split("\n", 1)[1]
    path = out / f"{name}.scn"
    path.write_text("\n".join(head) + "\n" + body)
    return path
