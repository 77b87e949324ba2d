"""Skyfield with the JPL DE421 ephemeris: the high-accuracy reference the firmware's
sun code is measured against. Test-only; offline (the ephemeris ships in skyfield-data)."""

from __future__ import annotations

import warnings
from functools import cache

from skyfield import almanac
from skyfield.api import Loader, wgs84

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from skyfield_data import get_skyfield_data_path

# 2000-01-01T00:00:00 UTC as a Unix timestamp: park time = unix - this.
PARK_EPOCH_UNIX = 946684800


@cache
def _sky():
    loader = Loader(get_skyfield_data_path(), expire=False, verbose=False)
    ts = loader.timescale(builtin=True)
    eph = loader("de421.bsp")
    return ts, eph


def _park(times) -> list[int]:
    # Time.utc_datetime() -> aware datetimes; timestamps are exact enough (< 1 ms).
    return [round(dt.timestamp()) - PARK_EPOCH_UNIX for dt in times.utc_datetime()]


def crossings(lat: float, lon: float, t0: int, t1: int, horizon: float | None):
    """Risings and settings of the sun's centre through `horizon` degrees (None:
    skyfield's sunrise horizon, refraction plus the true apparent radius) between
    park times t0 and t1. Returns (risings, settings) as sorted park times."""
    ts, eph = _sky()
    obs = eph["earth"] + wgs84.latlon(lat, lon)
    a = ts.utc(2000, 1, 1, 0, 0, t0)
    b = ts.utc(2000, 1, 1, 0, 0, t1)
    sun = eph["sun"]
    rt, ry = almanac.find_risings(obs, sun, a, b, horizon_degrees=horizon)
    st, sy = almanac.find_settings(obs, sun, a, b, horizon_degrees=horizon)
    rises = [t for t, ok in zip(_park(rt), ry, strict=True) if ok]
    sets = [t for t, ok in zip(_park(st), sy, strict=True) if ok]
    return rises, sets


def elevation(lat: float, lon: float, t: int) -> float:
    """Apparent geometric (unrefracted) elevation of the sun's centre, degrees."""
    ts, eph = _sky()
    obs = eph["earth"] + wgs84.latlon(lat, lon)
    alt, _, _ = obs.at(ts.utc(2000, 1, 1, 0, 0, t)).observe(eph["sun"]).apparent().altaz()
    return alt.degrees
