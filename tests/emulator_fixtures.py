"""
Fixtures of the SaaS LiteLLM profile tests, loaded as a plugin: ``pytest_plugins = [...]``.

- ``emu``: a fresh emulator on 127.0.0.1;
- ``clock``: a `resilience.testing.FakeClock`;
- ``kind``: the client under test, ``"requests"``, ``"httpx"`` or ``"async"``;
- ``api``: the profile's client of that kind on the emulator;
- ``unresponsive``: a port whose connects time out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock

from .emulator_helpers import KINDS, Client, Unresponsive


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A fresh emulator, no faults, slow answers 5 s (woken at teardown)."""
    with Emulator(slow=5.0, failure_latency=(0.0, 0.0), stream_bug=False) as emulator:
        yield emulator


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time for Retry, Timeout and breakers: no test sleeps through a backoff."""
    return FakeClock()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over the three clients: requests, httpx, httpx async."""
    return str(request.param)


@pytest.fixture
def api(kind: str, emu: Emulator, clock: FakeClock) -> Iterator[Client]:
    """The profile's client of *kind* on the emulator, virtual time, no breaker."""
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None)
    yield client
    client.close()


@pytest.fixture
def unresponsive() -> Iterator[Unresponsive]:
    """A port whose connects time out (a full accept queue)."""
    listener = Unresponsive()
    yield listener
    listener.close()
