# The kiosk's logic without a display: the face module's frames, the roster's
# updates, the check-in decisions. CPython, float32, MicroPython. (Scores are
# binary fractions: the ESP32's float32 holds them exactly.)

import json
from binascii import hexlify
from hashlib import sha256

from checkin import ALREADY, NOT_RECOGNISED, WELCOME, CheckIns
from facemodule import FACE, HEARTBEAT, JsonFaceModule, crc16
from fwtest import raises
from roster import Roster, RosterError, parse


def frame(obj, crc=True):
    body = json.dumps(obj).encode()
    return body + (b"*%04X" % crc16(body) if crc else b"") + b"\r\n"


def update(version, rows, count=None, digest=None):
    body = json.dumps(rows).encode()
    head = {"version": version, "count": len(rows) if count is None else count}
    head["sha256"] = digest or hexlify(sha256(body).digest()).decode()
    return json.dumps(head).encode() + b"\n" + body


def test_crc16_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1


def test_face_frames_in_pieces_with_and_without_crc():
    m = JsonFaceModule()
    data = frame({"type": "face", "id": 1024, "score": 0.875, "live": 1})
    data += frame({"type": "hb"}, crc=False)
    data += frame({"type": "face", "score": 0.25})
    events = []
    for i in range(0, len(data), 7):  # as a UART delivers them
        events += m.feed(data[i : i + 7])
    assert events == [(FACE, "1024", 0.875, True), (HEARTBEAT,), (FACE, None, 0.25, None)]
    assert (m.frames, m.bad_crc, m.malformed) == (3, 0, 0)


def test_bad_frames_are_dropped_and_counted():
    m = JsonFaceModule()
    good = frame({"type": "face", "id": "7", "score": 0.875, "live": True})
    bad_crc = good[:-6] + b"0000\r\n"
    garbage = b"\x00\xff\xfe not json\n"
    overlong = b"{" + b"x" * 400 + b"}\n"
    wrong = frame({"type": "face", "id": "7", "score": 7})  # score out of 0..1
    events = m.feed(bad_crc + garbage + overlong + wrong + good)
    assert events == [(FACE, "7", 0.875, True)]
    assert (m.frames, m.bad_crc, m.malformed) == (1, 1, 3)
    strict = JsonFaceModule(require_crc=True)
    assert strict.feed(frame({"type": "hb"}, crc=False) + frame({"type": "hb"})) == [(HEARTBEAT,)]
    assert strict.bad_crc == 1


def test_a_roster_update_is_checked_whole_and_a_bad_one_changes_nothing():
    rows = [["1024", "张伟", "工程部", True], ["2048", "Li Na", "Security", False]]
    r = parse(update(3, rows))
    assert r.version == 3 and len(r) == 2
    assert r.get("1024") == ("张伟", "工程部", True)
    assert r.get("2048")[2] is False
    raises(RosterError, parse, update(3, rows), r)  # not newer
    raises(RosterError, parse, update(4, rows, digest="00" * 32), r)
    raises(RosterError, parse, update(4, rows)[:-5], r)  # cut short: checksum
    raises(RosterError, parse, update(4, rows, count=3), r)
    raises(RosterError, parse, update(4, [["1", "A", "B", "yes"]]), r)
    raises(RosterError, parse, update(4, [["1", "A", "B", True], ["1", "C", "D", True]]), r)
    raises(RosterError, parse, b"no header", r)
    assert parse(update(4, rows[:1]), r).version == 4


def test_check_ins_welcome_once_per_window_and_count_the_rest():
    roster = Roster(1, {"1024": ("张伟", "工程部", True), "2048": ("Li Na", "Security", False)})
    c = CheckIns(roster, threshold=0.8, window_s=300)
    t = 1000
    assert c.decide((FACE, "1024", 0.93, True), t) == (
        WELCOME,
        {"id": "1024", "name": "张伟", "dept": "工程部", "at": t},
    )
    assert c.decide((FACE, "1024", 0.95, True), t + 299) == (ALREADY, {"id": "1024", "name": "张伟", "at": t})
    assert c.decide((FACE, "1024", 0.95, True), t + 300)[0] == WELCOME
    assert c.decide((FACE, None, 0.9, True), t)[1] == {"why": "unknown"}
    assert c.decide((FACE, "1024", 0.5, True), t)[1] == {"why": "low_score"}
    assert c.decide((FACE, "1024", 0.9, False), t)[1] == {"why": "liveness"}
    assert c.decide((FACE, "1024", 0.9, None), t)[1] == {"why": "liveness"}
    assert c.decide((FACE, "2048", 0.99, True), t)[0] == NOT_RECOGNISED  # not active
    assert c.decide((FACE, "9999", 0.99, True), t)[1] == {"why": "not_on_roster"}
    assert c.decide((HEARTBEAT,), t) is None
    assert c.rejected == {"unknown": 1, "low_score": 1, "liveness": 2, "not_on_roster": 2}
    assert c.repeats == 1
    no_liveness = CheckIns(roster, require_liveness=False)
    assert no_liveness.decide((FACE, "1024", 0.9, None), t)[0] == WELCOME


class Canvas:
    """Keeps only where white was drawn: a full RGB565 frame (150 KB) is the
    kiosk's PSRAM's, not this 100 KB test heap's."""

    def __init__(self, white):
        self.white = white
        self.ink = set()

    def fill(self, c):
        self.ink = set()

    def fill_rect(self, x, y, w, h, c):
        self.ink = set(p for p in self.ink if not (x <= p % 240 < x + w and y <= p // 240 < y + h))

    def pixel(self, x, y, c):
        if c == self.white:
            self.ink.add(y * 240 + x)  # small ints: no allocation per pixel
        else:
            self.ink.discard(y * 240 + x)


class Blank:
    def fill(self, c):
        pass

    def fill_rect(self, x, y, w, h, c):
        pass

    def pixel(self, x, y, c):
        pass


def _tiny_font(path):
    # Two glyphs: "A" a filled 16x16 square, "B" one pixel at the top left.
    from struct import pack

    a = b"\xff" * 32
    b = b"\x80" + b"\x00" * 31
    write_bytes(path, b"PKF1" + pack("<BBHHH", 16, 16, 2, ord("A"), ord("B")) + a + b)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_screens_draw_glyphs_and_a_box_for_what_the_font_lacks():
    from font import Font
    from fwtest import tempdir
    from screens import WHITE, Screens

    path = tempdir() + "/tiny.bin"
    _tiny_font(path)
    c = Canvas(WHITE)
    s = Screens(c, Font(path))
    # ASCII moves on by its ink and a pixel: "A" fills its cell (16 + 1), "B" is
    # one pixel wide (1 + 1).
    assert s.text(0, 100, "AB", WHITE) == 19
    assert s.width("AB") == 19
    assert len([p for p in c.ink if p % 240 < 16]) == 256  # "A": every pixel
    assert 100 * 240 + 17 in c.ink and 101 * 240 + 18 not in c.ink  # "B": one
    assert s.text(0, 200, "Z", WHITE) == 16  # not in the font: a box, a whole cell
    assert s.font.missing == 1
    assert 201 * 240 + 5 in c.ink and 208 * 240 + 8 not in c.ink
    assert s.width("ZZ") == 32 and s.font.missing == 1  # measured, not drawn: not counted
    assert s.text(0, 250, " ", WHITE) == 16 and s.font.missing == 2  # no space in this font: a box
    s.fb = Blank()  # the rest only has to draw without an error: no pixels kept
    s.welcome("AB", "08:59")  # digits missing too: boxes, never an error
    s.idle("08:59", 12, False, 3)
    s.already("AB", "08:59")
    s.not_recognised()
    s.error("camera not found")


def test_the_kiosk_configuration_names_every_problem():
    from configcheck import ConfigError
    from kioskconfig import loads, parse

    shipped = loads(open("firmware/kiosk/config.json").read())
    assert shipped.site_id == "g60" and shipped.window_s == 300 and shipped.liveness is True
    assert shipped.pins["face_rx"] == 18
    bad = {
        "site": {"id": "g 60", "tz": "Mars/Olympus"},
        "checkin": {"threshold": 1.5, "liveness": "yes", "window": 5},
        "pins": {"buzzer": 99},
        "network": {"broker": "http://x"},
    }
    e = raises(ConfigError, parse, bad)
    text = "\n".join(e.errors)
    for part in (
        "site.id:",
        "site.tz:",
        "checkin.threshold: 1.5 is outside",
        "checkin.liveness: must be true or false",
        "checkin.window: unknown setting",
        "pins.buzzer: 99 is outside",
        "network.ssid: missing",
        "network.broker:",
    ):
        assert part in text, (part, text)
    assert raises(ConfigError, loads, "{not json").errors[0].startswith("(file): not valid JSON")


def test_the_same_roster_again_is_recognised_and_a_newer_one_is_not():
    from roster import same

    rows = [["1024", "张伟", "工程部", True]]
    r = parse(update(3, rows))
    assert same(update(3, rows), r)
    assert not same(update(4, rows), r)
    assert not same(b"garbage", r) and not same(update(3, rows), Roster())


def test_a_roster_installed_on_flash_is_searched_there_and_a_bad_update_keeps_it():
    import os

    from fwtest import tempdir
    from roster import RosterFile, install

    path = tempdir() + "/roster.db"
    rows = [["2048", "Li Na", "Security", False], ["1024", "张伟", "工程部", True], ["7", "Zoë", "", True]]
    assert install(update(3, rows), None, path, os) == (3, 3)
    r = RosterFile(path)
    assert (r.version, len(r)) == (3, 3)
    assert r.get("1024") == ("张伟", "工程部", True)
    assert r.get("2048") == ("Li Na", "Security", False)
    assert r.get("7") == ("Zoë", "", True)
    assert r.get("1025") is None and r.get("") is None and r.get("x" * 40) is None
    # Refused, whatever is wrong, and the file in force stays as it was.
    for bad in (
        update(3, rows),  # not newer
        update(4, rows, digest="00" * 32),
        update(4, rows)[:-5],
        update(4, rows, count=4),
        update(4, rows + [["1024", "again", "", True]]),
        update(4, [["1", "A", "B", "yes"]]),
    ):
        raises(RosterError, install, bad, r, path, os)
    r.close()
    r = RosterFile(path)
    assert (r.version, len(r), r.get("1024")[0]) == (3, 3, "张伟")
    assert install(update(4, rows[:1]), r, path + "2", os) == (4, 1)
    r.close()


def test_the_body_is_read_a_row_at_a_time_and_broken_json_is_named():
    from roster import _rows

    assert list(_rows(b' [ ["a", "x]", "", true] , ["b", "\\"y", "", false] ] ')) == [
        ["a", "x]", "", True],
        ["b", '"y', "", False],  # an escaped quote: still inside the string
    ]
    assert list(_rows(b"[]")) == []
    for bad in (b"", b"{}", b"[", b'[["a"] ["b"]]', b'[["a"],,["b"]]', b'["a"]', b"[[1]] x"):
        # (Not "[[1, ]]": MicroPython's json takes a trailing comma. The rows are
        # checked one by one all the same, and the checksum says the centre sent it.)
        raises(RosterError, lambda: list(_rows(bad)))
