"""`parkctl diag`: the lamp's diagnostics console over its USB serial port.

The firmware reads command lines on its serial console while it runs and answers
each with one JSON line ({"console": name, "ok": ..., "data"/"error": ...}),
among the event lines it prints anyway (docs/diagnostics.md). This side sends a
line and waits for that answer; it never interrupts the firmware (no Ctrl-C),
so the lamp keeps its light.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import serial

from .errors import UserError

# Every device's (firmware/lib/diagbase.py), the lamp's and the kiosk's: the board
# refuses, naming its own, a command its app does not have.
COMMANDS = (
    "status",
    "log",
    "time",
    "config",
    "reboot",
    "help",
    "selftest",
    "alarm",
    "safemode",
    "face",
    "purge",
)
LINE_MAX = 4096  # firmware/lib/console.py's limit


def serial_port_problem(path: str) -> str | None:
    """Why `path` cannot be a board's serial port (None: it may be): not there, or a
    file or folder (a serial port, a USB adapter's or a pseudo-terminal, is a
    character device)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return f"no serial port {path}: is the board plugged in (or the virtual board running)?"
    if not stat.S_ISCHR(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a file"
        return f"{path} is {what}, not a serial port (e.g. /dev/ttyUSB0)"
    return None


class Port:
    """A board's serial port, opened without resetting the board."""

    def __init__(self, path: str, baud: int = 115200) -> None:
        problem = serial_port_problem(path)
        if problem:
            raise UserError(problem)
        s = serial.Serial()
        s.port = path
        s.baudrate = baud
        s.timeout = 0.05
        s.write_timeout = 5.0  # a board that stops reading: an error, not a hang
        s.exclusive = True
        # DTR and RTS low: on an ESP32 DevKit they drive EN and GPIO0 (reset, boot mode).
        s.dtr = False
        s.rts = False
        try:
            s.open()
        except serial.SerialException as e:
            text = str(e)
            if "lock" in text.lower() or "busy" in text.lower() or "Resource temporarily" in text:
                raise UserError(
                    f"serial port {path} is busy: another program (mpremote, a terminal) has it"
                ) from None
            if "Permission denied" in text:
                raise UserError(
                    f"no permission to open {path}: add yourself to the dialout group, log in again"
                ) from None
            raise UserError(f"cannot open {path}: {text}") from None
        self.s = s
        self.path = path

    def close(self) -> None:
        self.s.close()

    def __enter__(self) -> Port:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, line: str, timeout: float = 5.0) -> dict[str, Any]:
        """Sends one command line; the firmware's JSON reply to it."""
        data = line.encode()
        name = line.split()[0] if line.split() else ""
        if len(data) > LINE_MAX:
            raise UserError(f"the command is {len(data)} bytes; the console takes at most {LINE_MAX}")
        s = self.s
        s.reset_input_buffer()
        # A line end first ends whatever a previous client left half-typed.
        try:
            s.write(b"\r\n" + data + b"\r\n")
            s.flush()
        except serial.SerialTimeoutException:
            raise UserError(f"the board at {self.path} takes no input: it is hung") from None
        seen = bytearray()
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.read(4096)
            if not chunk:
                continue
            seen += chunk
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                reply = console_reply(raw)
                if reply is not None and reply["console"] == name:
                    return reply
            if buf.endswith(b">>> ") or buf.endswith(b"raw REPL; CTRL-B to exit\r\n>"):
                raise UserError(
                    f"the board at {self.path} is at the MicroPython REPL, not running the park "
                    "firmware (main.py stopped or was interrupted): reset it (mpremote reset)"
                )
        if not seen:
            raise UserError(
                f"no answer from {self.path} in {timeout:g} s: no MicroPython board there, or it is hung"
            )
        raise UserError(
            f"no answer from the park firmware at {self.path} in {timeout:g} s "
            f"(the board said {bytes(seen[-80:])!r}): is the park firmware installed?"
        )


def console_reply(raw: bytes) -> dict[str, Any] | None:
    """The firmware console's answer in one line of the board's output, or None."""
    raw = raw.strip()
    if not raw.startswith(b"{"):
        return None
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    if isinstance(msg, dict) and "console" in msg and "ok" in msg:
        return msg
    return None


def command_line(command: str, args: list[str]) -> str:
    """The console line for `parkctl diag COMMAND ARGS`: a configuration file named
    after `config set|validate` is sent as one line of JSON."""
    if command == "config" and len(args) == 2 and args[0] in ("set", "validate"):
        from sim.textfile import TextFileError, read_text

        try:
            obj = json.loads(read_text(args[1]))
        except TextFileError as e:
            raise UserError(str(e)) from None
        except ValueError as e:
            raise UserError(f"{args[1]} is not JSON: {e}") from None
        return f"config {args[0]} " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return " ".join([command, *args])


def run(port: str, command: str, args: list[str], timeout: float) -> dict[str, Any]:
    with Port(port) as p:
        return p.ask(command_line(command, args), timeout)


# machine.reset_cause() on the ESP32 (MicroPython's esp32 port), as a technician says it.
RESET_CAUSES = {
    1: "power-on",
    2: "hard reset (EN button or the USB chip)",
    3: "watchdog (the loop hung)",
    4: "wake from deep sleep",
    5: "software reset (reboot, deploy, new configuration)",
}
UNIX_2000 = 946684800


def local_time(ts: int | None, tz_text: str | None) -> str:
    """A Unix time as the park's local time with its zone's name, e.g.
    `2026-12-21 20:30:05 CST (UTC+8)`; UTC when the zone is not known."""
    if not isinstance(ts, int) or isinstance(ts, bool):
        return "not known"
    from .runtime import import_firmware

    import_firmware()
    import civil
    from posixtz import TZ, TZError

    t = ts - UNIX_2000
    try:
        tz = TZ(tz_text or "UTC0")
    except TZError:
        tz = TZ("UTC0")
    off = tz.offset(t)
    name = tz.dst_name if tz.is_dst(t) else tz.std_name
    sign = "+" if off >= 0 else "-"
    hours, rest = divmod(abs(off), 3600)
    utc = f"UTC{sign}{hours}" + (f":{rest // 60:02d}" if rest else "")
    local = civil.format_datetime(tz.to_local(t)).replace("T", " ")
    return f"{local} {name}" + ("" if name == "UTC" else f" ({utc})")


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "?"
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _duration(s: Any) -> str:
    if not isinstance(s, int):
        return "?"
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m = s // 60
    return (f"{d} d " if d else "") + f"{h} h {m:02d} min"


def status_view(s: dict[str, Any], tz_text: str | None) -> list[tuple[str, str]]:
    """`diag status` for a technician at the pole: rows in the order they check
    things (mode and level, faults, alarm, link, time, counters, version), names
    instead of codes, the park's local time. Keys this does not know come last,
    as they are, so a newer firmware's fields are never hidden."""
    used: set[str] = set()

    def get(key: str, default: Any = None) -> Any:
        used.add(key)
        return s.get(key, default)

    rows: list[tuple[str, str]] = []
    device = get("device")
    app = get("app")
    rows.append(("device", f"{device or 'unnamed'} ({app or 'unknown app'})"))
    if app == "kiosk":
        rows.append(("roster", f"version {get('roster')}, {get('people')} people"))
        rows.append(("check-ins", f"{get('today')} today"))
    else:
        level, applied = get("level"), get("applied")
        ramping = applied not in (None, level)
        light = f"{level} %" + (f" (output at {applied} % while it ramps)" if ramping else "")
        rows.append(("mode", f"{get('mode')}: {get('reason')}"))
        rows.append(("level", light))
        rows.append(("relay", f"{get('relay')}, lamp current {get('amps')} A"))
        dark = get("dark")
        problem = get("photocell_problem")
        cell = f"{get('lux')} lux, {'dark' if dark else 'light'}"
        cell += f" (problem: {problem})" if problem else ""
        rows.append(("photocell", cell))
        burning, wh = get("burning_s"), get("energy_wh")
        if isinstance(burning, int):
            # As on the lamp's flash: what a power cut cannot take back (docs/diagnostics.md).
            energy = f"{wh / 1000:,.1f} kWh" if isinstance(wh, int) else "energy not metered"
            counted = f"{burning / 3600:,.1f} burning hours, {energy}, {get('switch_cycles')} switch cycles"
            problem = get("counters_problem")
            rows.append(("counters", counted + (f" (problem: {problem})" if problem else "")))
    faults = get("faults")
    if faults is not None or app != "kiosk":
        rows.append(("faults", ", ".join(faults) if faults else "none"))
    if "alarm" in s or app != "kiosk":
        a = get("alarm")
        if isinstance(a, dict):
            what = f"{a.get('id')} {a.get('state')}, {a.get('presses')} press(es)"
            what += ", raised " + local_time(a.get("raised"), tz_text)
            rows.append(("alarm", what + (" (a test)" if a.get("test") else "")))
        else:
            rows.append(("alarm", "none open"))
    wifi = get("wifi")
    rows.append(("Wi-Fi", "no network configured" if wifi is None else "up" if wifi else "down"))
    rows.append(("MQTT", _flat_value(get("mqtt"))))
    pending = get("pending")
    rows.append(("undelivered", f"{pending} event(s) waiting for the centre" if pending else "nothing"))
    source = get("time_source")
    valid = get("time_valid")
    when = local_time(get("ts"), tz_text) if valid is not False else "not valid (no source yet)"
    rows.append(("time", when + (f", from {source}" if source else "")))
    cause = get("reset_cause")
    rows.append(("last reset", RESET_CAUSES.get(cause, f"cause {cause}") if isinstance(cause, int) else "?"))
    rows.append(("uptime", _duration(get("uptime_s"))))
    rows.append(("boots", str(get("boot"))))
    rows.append(("console errors", str(get("console_errors"))))
    rows.append(("free", f"heap {_size(get('heap_free'))}, flash {_size(get('flash_free'))}"))
    manifest = get("manifest")
    rows.append(("version", f"{get('version')} (build {str(manifest)[:12] if manifest else 'unknown'})"))
    for k in sorted(set(s) - used):
        rows.append((k, _flat_value(s[k])))
    return rows


def _flat_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "-" if value is None else str(value)
