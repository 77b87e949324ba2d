"""Which steps of a lamp configuration a year of nights skips, for `parkctl config
check`: a step that falls in daylight on some nights (a 05:00 boost after a summer
sunrise) does nothing on those nights, and the technician is told when."""

from __future__ import annotations

from .fwscripts.lamp_schedule import skip_reason, skipped


def _ranges(days: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for d in days:
        if out and out[-1][1] == d - 1:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def skipped_steps(cfg, first_day: int, nights: int = 365) -> list[dict]:
    """For each step skipped on some of the nights first_day .. first_day+nights-1:
    {"step", "why", "nights", "dates": ["YYYY-MM-DD..YYYY-MM-DD", ...]}, in the
    order of the first night each was skipped on."""
    import civil
    from schedule import Engine

    engine = Engine(cfg)
    seen: dict[tuple[int, int, str], list[int]] = {}
    for day in range(first_day, first_day + nights):
        rule = engine.program_for(day)[0]
        for _, i, where, bound in skipped(engine, day):
            text = skip_reason(engine, rule, i, where, bound)
            head, _, why = text.partition(" skipped: ")
            days = seen.setdefault((rule, i, why), [])
            if not days or days[-1] != day:
                days.append(day)

    def iso(day: int) -> str:
        y, m, d = civil.civil_from_days(day)
        return f"{y:04d}-{m:02d}-{d:02d}"

    out = []
    for (rule, i, why), days in seen.items():
        head = engine.describe(("schedule", rule, i, None))
        spans = [iso(a) if a == b else f"{iso(a)}..{iso(b)}" for a, b in _ranges(days)]
        out.append({"step": head, "why": why, "nights": len(days), "dates": spans})
    return out
