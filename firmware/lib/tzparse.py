# The parser of POSIX TZ strings (posixtz.py says their form): loaded while a
# configuration is read and forgotten after it (settings.loads), as the rest of the
# configuration's parser is.

from posixtz import TZError

_DEFAULT_RULE = "M3.2.0,M11.1.0"


class _Parser:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def fail(self, what):
        part = self.text[self.pos :] or "end of string"
        raise TZError('bad TZ "%s": %s at "%s"' % (self.text, what, part))

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self, what):
        start = self.pos
        text = self.text
        if self.peek() == "<":
            end = text.find(">", start)
            if end < 0:
                self.fail(what + ' "<" has no closing ">"')
            body = text[start + 1 : end]
            if len(body) < 3:
                self.fail(what + " needs 3 or more characters")
            for c in body:
                if not (c.isalpha() or c.isdigit() or c in "+-"):
                    self.fail(what + " may hold only letters, digits, + and -")
            self.pos = end + 1
            return body
        while self.pos < len(text) and text[self.pos].isalpha():
            self.pos += 1
        if self.pos - start < 3:
            self.pos = start
            self.fail(what + " needs 3 or more letters")
        return text[start : self.pos]

    def number(self, what, lo, hi):
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos].isdigit():
            self.pos += 1
        if self.pos == start:
            self.fail("expected " + what)
        n = int(text[start : self.pos])
        if not lo <= n <= hi:
            self.pos = start
            self.fail("%s must be %d..%d" % (what, lo, hi))
        return n

    def hms(self, what, max_hours):
        """[+-]hh[:mm[:ss]] -> signed seconds."""
        sign = 1
        c = self.peek()
        if c in ("+", "-"):
            sign = -1 if c == "-" else 1
            self.pos += 1
        secs = self.number(what + " hours", 0, max_hours) * 3600
        if self.peek() == ":":
            self.pos += 1
            secs += self.number(what + " minutes", 0, 59) * 60
            if self.peek() == ":":
                self.pos += 1
                secs += self.number(what + " seconds", 0, 59)
        return sign * secs

    def rule(self, what):
        c = self.peek()
        if c == "M":
            self.pos += 1
            m = self.number(what + " month", 1, 12)
            if self.peek() != ".":
                self.fail(what + " needs Mmonth.week.day")
            self.pos += 1
            w = self.number(what + " week", 1, 5)
            if self.peek() != ".":
                self.fail(what + " needs Mmonth.week.day")
            self.pos += 1
            d = self.number(what + " weekday", 0, 6)
            r = ("M", m, w, d)
        elif c == "J":
            self.pos += 1
            r = ("J", self.number(what + " Julian day", 1, 365), 0, 0)
        elif c.isdigit():
            r = ("N", self.number(what + " day", 0, 365), 0, 0)
        else:
            self.fail(what + " must be Mm.w.d, Jn or n")
        at = 7200
        if self.peek() == "/":
            self.pos += 1
            at = self.hms(what + " time", 167)
        return r + (at,)


def parse(text):
    """The POSIX TZ string `text` as (std_name, std, dst_name, dst, start, end):
    offsets local minus UTC in seconds, rules (kind, a, week, day, at) or None
    without DST. TZError names what is wrong."""
    if not isinstance(text, str):
        raise TZError("TZ must be a string, not %s" % type(text).__name__)
    p = _Parser(text)
    std_name = p.name("standard time name")
    if not p.peek():
        p.fail("expected a UTC offset after the name")
    std = -p.hms("UTC offset", 24)
    if not p.peek():
        return std_name, std, None, std, None, None
    dst_name = p.name("DST name")
    c = p.peek()
    if c and (c.isdigit() or c in "+-"):
        dst = -p.hms("DST offset", 24)
    else:
        dst = std + 3600
    if not p.peek():
        p = _Parser(_DEFAULT_RULE)
    elif p.peek() == ",":
        p.pos += 1
    else:
        p.fail('expected "," before the DST rules')
    start = p.rule("DST start")
    if p.peek() != ",":
        p.fail('expected "," before the DST end rule')
    p.pos += 1
    end = p.rule("DST end")
    if p.peek():
        p.fail("unexpected text after the DST end rule")
    return std_name, std, dst_name, dst, start, end
