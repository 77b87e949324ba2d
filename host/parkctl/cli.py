"""The `parkctl` command line."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import UserError
from .runtime import RUNTIMES, call


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


SUN_KEYS = ("civil_dawn", "sunrise", "sunset", "civil_dusk", "polar")


def cmd_sun(args: argparse.Namespace) -> int:
    answer = call("sun_day", [args.lat, args.lon, args.date, args.tz], args.runtime)
    answer = {k: answer[k] for k in SUN_KEYS}  # MicroPython's dicts have no order
    if args.json:
        _print_json(answer)
        return 0
    from rich.console import Console
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
    console = Console()
    console.print(table)
    if answer["polar"]:
        console.print(f"polar {answer['polar']}: the sun does not rise and set that day")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parkctl", description="Tools for the park's lamp controllers and check-in kiosks."
    )
    parser.add_argument("--version", action="version", version=f"parkctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sun = sub.add_parser(
        "sun",
        help="civil dawn, sunrise, sunset and civil dusk for a place and date",
        description="Solar events of one local date, computed by the firmware's own sun module.",
    )
    sun.add_argument("--lat", required=True, help="latitude, degrees north (-90..90)")
    sun.add_argument("--lon", required=True, help="longitude, degrees east (-180..180)")
    sun.add_argument("--date", required=True, help="local date, YYYY-MM-DD")
    sun.add_argument("--tz", required=True, help='POSIX TZ string, e.g. "CST-8"')
    sun.add_argument(
        "--runtime", choices=RUNTIMES, default="cpython", help="interpreter to compute in"
    )
    sun.add_argument("--json", action="store_true", help="print JSON")
    sun.set_defaults(func=cmd_sun)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"parkctl {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
