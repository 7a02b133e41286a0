"""
Fixtures of the Redis integration tests, loaded as a plugin: ``pytest_plugins = [...]``.

- ``redis_server``: one real ``redis-server`` for the session, on an ephemeral port;
- ``client``: a client of it with short timeouts and no retries, on an empty database;
- ``own_server``: a server of the test's own, to kill and restart;
- ``clock``: a `resilience.testing.FakeClock` (the local cache's time).

On a machine without ``redis-server`` (or without the ``redis`` package) every
test using them is skipped, with the reason in pytest's summary: never a
silent pass. ``scripts/check`` installs the server where apt is available.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience.testing import FakeClock

from .redis_server import RedisServer, make_client, redis_server_binary

try:
    import redis
except ImportError:  # pragma: no cover - the tests extra installs it
    redis = None  # type: ignore[assignment]

SKIP_REASON = (
    "redis-server is not installed (apt-get install redis-server; scripts/check does it "
    "where apt exists): the Redis store and pause tests did NOT run"
)


def require_redis() -> None:
    """Skip the calling test, loudly, if the server or the client library is missing."""
    if redis is None:
        pytest.skip("the redis package is not installed (pip install 'resilience-policies[redis]')")
    if redis_server_binary() is None:
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session."""
    require_redis()
    with RedisServer() as server:
        yield server.start()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the session's server, on a database emptied for this test."""
    connection = make_client(redis_server.url)
    connection.flushall()
    yield connection
    connection.close()


@pytest.fixture
def other(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A second client of the session's server: another "process" (`client` emptied it)."""
    connection = make_client(redis_server.url)
    yield connection
    connection.close()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill and restart."""
    require_redis()
    with RedisServer() as server:
        yield server.start()


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time for the local cache and the waits: no test sleeps through them."""
    return FakeClock()
