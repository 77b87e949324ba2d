"""Shared fixtures: the real broker.

Mosquitto (Debian's package, installed by `make setup`) is started by the tests
themselves on a free loopback port with a configuration of its own, and
stopped at the end; a test may kill and restart it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from parkctl.brokers import Mosquitto

# No property test may fail for being slow: on a loaded machine an example that
# writes files or starts the interpreter can take seconds. Hypothesis's deadline
# and its too-slow health check are timing assertions, and the suite asserts no
# timings (benchmarks do).
settings.register_profile("park", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("park")

# The HIL harness (docs/hil.md): --board, and the board, rig and broker fixtures of tests/hil.
pytest_plugins = ("parkctl.hil",)


@pytest.fixture
def mosquitto(broker: Mosquitto) -> Mosquitto:
    """The tests' name for the HIL plugin's `broker`: a Mosquitto of the test's own."""
    return broker
