"""Reading a text file a person gave us (a configuration, a scenario): one place,
so that `parkctl config check`, `schedule`, `sim`, `build`, `diag config` and the
scenario's own `config` line say the same thing about the same bad file."""

from __future__ import annotations

from pathlib import Path

# What the first bytes say a file is, when it is not UTF-8 text as the board reads it.
_MARKS = (
    (
        b"\xef\xbb\xbf",
        "starts with a UTF-8 byte-order mark (as some Windows editors save): save it as UTF-8 without one",
    ),
    (b"\xff\xfe", "is UTF-16 text (it starts with a UTF-16 byte-order mark): save it as UTF-8"),
    (b"\xfe\xff", "is UTF-16 text (it starts with a UTF-16 byte-order mark): save it as UTF-8"),
)


class TextFileError(ValueError):
    """A file that cannot be read as text: one line, naming the file and the problem.
    `unreadable`: the system's reason when the file could not be read at all."""

    def __init__(self, text: str, unreadable: str | None = None) -> None:
        super().__init__(text)
        self.unreadable = unreadable


def read_text(path: Path | str) -> str:
    """The file's text, as UTF-8 without a byte-order mark (what the board's own
    json.loads takes), or TextFileError saying why not."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        why = e.strerror or str(e)
        raise TextFileError(f"cannot read {path}: {why}", why) from None
    for mark, what in _MARKS:
        if data.startswith(mark):
            raise TextFileError(f"{path} {what}")
    if b"\x00" in data[:8192]:
        raise TextFileError(f"{path} is a binary file, not text (a NUL byte at offset {data.index(0)})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TextFileError(
            f"{path} is not UTF-8 text (byte {data[e.start]:#04x} on line {line}): save it as UTF-8"
        ) from None
