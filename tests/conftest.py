"""Shared fixtures: the real broker.

Mosquitto (Debian's package, installed by `make setup`) is started by the tests
themselves on a free loopback port with a configuration of its own, and
stopped at the end; a test may kill and restart it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from parkctl.brokers import Mosquitto

# The HIL harness (docs/hil.md): --board, and the board, rig and broker fixtures of tests/hil.
pytest_plugins = ("parkctl.hil",)


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto().start()
    try:
        yield broker
    finally:
        broker.close()
