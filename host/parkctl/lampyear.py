"""`parkctl schedule --year YYYY --summary`: what a lamp configuration burns in a
year (hours at each level, kWh, the saving against dusk-to-dawn at full power,
hours lit in daylight), and `--plot`: the year at a glance."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import UserError
from .runtime import call_lines


def run(args: argparse.Namespace, text: str) -> int:
    rows = call_lines(
        "lamp_year", [str(args.year), str(args.watts), "1" if args.plot else "0"], args.runtime, stdin=text
    )
    if rows and "error" in rows[-1]:
        raise UserError(rows[-1]["error"])
    *days, summary = rows
    keys = (
        "year",
        "watts",
        "hours_at_level",
        "burning_hours",
        "kwh",
        "dusk_to_dawn_kwh",
        "saving_percent",
        "daylight_burning_hours",
    )
    summary = {k: summary[k] for k in keys}  # MicroPython's dicts have no order
    if args.plot:
        plot(days, summary, Path(args.plot))
    if args.json:
        import json

        print(json.dumps(summary, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.year} at {summary['watts']:g} W")
    table.add_column("")
    table.add_column("value", justify="right")
    for level, hours in summary["hours_at_level"]:
        table.add_row(f"hours at {level:g} %", f"{hours:,.1f}")
    table.add_row("burning hours", f"{summary['burning_hours']:,.1f}")
    table.add_row("energy", f"{summary['kwh']:,.1f} kWh")
    table.add_row("full power dusk to dawn", f"{summary['dusk_to_dawn_kwh']:,.1f} kWh")
    table.add_row("saving", f"{summary['saving_percent']:.1f} %")
    table.add_row("hours lit in daylight", f"{summary['daylight_burning_hours']:,.1f}")
    Console().print(table)
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def plot(days: list[dict], summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    step = 300  # five-minute cells
    grid = np.zeros((86400 // step, len(days)))
    for x, day in enumerate(days):
        level, at = day["start"], 0
        for sec, new in [*day["changes"], [86400, None]]:
            grid[at // step : max(sec // step, at // step + 1) if sec > at else at // step, x] = level
            at, level = sec, new
    fig, ax = plt.subplots(figsize=(12, 6), dpi=100)
    image = ax.imshow(
        grid, aspect="auto", origin="lower", cmap="inferno", vmin=0, vmax=100, extent=(0, len(days), 0, 24)
    )
    xs = np.arange(len(days)) + 0.5
    for key, label, colour in (("sunrise", "sunrise", "#4fc3f7"), ("sunset", "sunset", "#81c784")):
        ys = [d[key] / 3600 if d[key] is not None else np.nan for d in days]
        ax.plot(xs, ys, color=colour, linewidth=1.5, label=label)
    months = [i for i, d in enumerate(days) if d["date"].endswith("-01")]
    ax.set_xticks(months, [days[i]["date"][:7] for i in months], rotation=45)
    ax.set_yticks(range(0, 25, 2))
    ax.set_ylabel("local time (h)")
    ax.set_title(
        f"{summary['year']}: {summary['burning_hours']:,.0f} burning hours, {summary['kwh']:,.0f} kWh at "
        f"{summary['watts']:g} W ({summary['saving_percent']:.1f} % below dusk to dawn at full power), "
        f"{summary['daylight_burning_hours']:,.1f} h lit in daylight",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, label="level (%)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
