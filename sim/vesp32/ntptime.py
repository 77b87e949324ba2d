# The virtual ESP32's `ntptime`: asks the world's NTP server (reachable only
# with Wi-Fi up; the scenario may make it unreachable or step its time).

import _hub

host = "pool.ntp.org"
timeout = 1


def time():
    """Seconds since 2000-01-01 UTC, from the server; OSError when unreachable."""
    w = _hub.board.world
    t = w.ntp_time()
    if t is None:
        raise OSError(110)  # ETIMEDOUT, as a lost UDP answer gives
    return t


def settime():
    t = time()
    _hub.board.set_rtc_us(t * 1000000)
