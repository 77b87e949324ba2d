# A boot that failed before it was healthy (bootcount.failed): its exception
# said on the console and kept beside the count, for safe mode to report.
# Loaded only when a boot fails, so that the boot that goes well never has it
# on the heap.

import sys

from bootcount import _write, read


def keep(e):
    """e as 'Type: message (at file:line, ...)', innermost frame first, written
    beside the count (its type alone if there is no heap for more)."""
    try:
        sys.print_exception(e)
        n, lim, why = read()
        why = type(e).__name__  # if there is no heap left for more
        try:
            import io

            # 'Type: message (at file:line, ...)', innermost first, from the
            # traceback as print_exception writes it ('  File "x.py", line 22, in f').
            s = io.BytesIO()
            # (The ESP32 stubs' BytesIO is no stream, nor has getvalue: MicroPython's has both.)
            sys.print_exception(e, s)  # pyright: ignore[reportArgumentType]
            w = []
            for t in s.getvalue().decode().split("\n"):  # pyright: ignore[reportAttributeAccessIssue]
                t = t.split('"')
                if len(t) > 2 and t[0].strip() == "File":
                    w.insert(0, t[1].split("/")[-1] + ":" + t[2].split(",")[1].split()[-1])
            t = str(e)
            why = "%s%s (at %s)" % (why, ": " + t if t else "", ", ".join(w[:3]) or "?")
        except Exception:  # noqa: BLE001 - no heap left for it: the type alone
            pass
        _write(n, lim, why[:300])
    except Exception:  # noqa: BLE001 - the board is reset all the same (bootcount.failed)
        pass
