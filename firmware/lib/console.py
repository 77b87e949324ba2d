# The diagnostics console on the board's USB serial line, read inside the main
# loop while the firmware runs (the lighting never stops for it).
#
# A command is a line of words ("log 20", "time set 2026-11-28T18:00:00Z");
# every line gets one reply, a line of JSON: {"console": <command>, "ok": true,
# "data": ...} or {"console": <command, null for garbage>, "ok": false, "error": why}.
# Anything can arrive on a serial line: bytes that are not UTF-8, control
# characters, lines longer than LINE_MAX (refused whole, and what follows up to
# the next line end with them). An error in a handler is a reply, never the end
# of the console. (Ctrl-C is not a byte here: the port turns it into
# KeyboardInterrupt, which stops main.py, as on any MicroPython board.)

import json

from uplink import CommandError

LINE_MAX = 4096  # a whole configuration fits (`config set`)


class Console:
    def __init__(self, write, handlers):
        """write(line): the serial line out; handlers: name -> fn(args) -> data
        (anything json can write) or raises CommandError; or a function that
        makes them, called at the first line someone types: the diagnostics'
        code stays out of the heap until a technician uses the console."""
        self.write = write
        made = isinstance(handlers, dict)
        self.handlers = handlers if made else {}
        self._make = None if made else handlers
        self.buf = bytearray()
        self.overlong = False
        self.commands = 0
        self.errors = 0

    def feed(self, data):
        for b in data:
            if b == 10 or b == 13:  # "\n" or "\r": a line ends
                if self.overlong:
                    self.overlong = False
                    self._reply(None, False, "line longer than %d bytes: ignored" % LINE_MAX)
                elif self.buf:
                    line = bytes(self.buf)
                    self.buf = bytearray()
                    self._line(line)
            elif b == 8 or b == 127:  # backspace, for someone typing in a terminal
                if self.buf:
                    self.buf = self.buf[:-1]
            elif self.overlong:
                pass
            elif len(self.buf) >= LINE_MAX:
                self.overlong = True
                self.buf = bytearray()
            else:
                self.buf.append(b)

    def _line(self, line):
        try:
            text = line.decode()
        except UnicodeError:
            self._reply(None, False, "not UTF-8 text")
            return
        words = text.split()
        if not words:
            return
        name = words[0]
        make = self._make
        if make is not None:
            try:
                self.handlers = make()
            except Exception as e:  # noqa: BLE001 - say why; the next line tries again
                why = "%s: %s" % (type(e).__name__, e)
                self._reply(name, False, "the console's commands could not be loaded: " + why)
                return
            self._make = None
        fn = self.handlers.get(name)
        if fn is None:
            # A word is named in the reply (so a client can match it); garbage is not.
            word = len(name) <= 32 and name.isalpha()
            shown = name if word else name[:32].encode()
            self._reply(name if word else None, False, "unknown command %r: try help" % shown)
            return
        try:
            data = fn(words[1:], text)
        except CommandError as e:
            self._reply(name, False, str(e))
            return
        except Exception as e:  # noqa: BLE001 - the console outlives a failing command
            self._reply(name, False, "%s: %s" % (type(e).__name__, e))
            return
        self.commands += 1
        self._reply(name, True, None, data)

    def _reply(self, name, ok, error=None, data=None):
        if not ok:
            self.errors += 1
        msg = {"console": name, "ok": ok}
        if error is not None:
            msg["error"] = error
        if data is not None:
            msg["data"] = data
        self.write(json.dumps(msg))
