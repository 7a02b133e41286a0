"""
A breaker shared through Redis, against pybreaker's Redis storage, side by side in one run.

Per-call cost (pyperf, through the shared harness) against a real redis-server
on 127.0.0.1 started for the run (``redis-server`` must be installed):

- the success path of `rs.CircuitBreaker` with `RedisStore`, **cached** (the
  default: the state read at most every 0.25 s, so no round trip per call) and
  **uncached** (``refresh=0``: one script round trip per call);
- the failure path (a failure counted in Redis, never reaching the threshold):
  one round trip;
- `RetryAfterPause` on the success path (cached);
- the same with pybreaker and ``pybreaker.CircuitRedisStorage``, and both
  breakers in memory for reference.

    python benchmarks/bench_redis.py            # full run
    python benchmarks/bench_redis.py --fast     # quicker, less precise
    python benchmarks/bench_redis.py --quick    # no pyperf: timeit, for a smoke run

The parent process starts one redis-server and hands its URL to pyperf's
workers through the environment (``--inherit-environ``).
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

import resilience as rs
from benchmarks._harness import Case, main
from resilience.integrations.redis import RedisStore, RetryAfterPause
from tests.redis_server import RedisServer, make_client

ENV = "RESILIENCE_BENCH_REDIS_URL"


class Boom(Exception):
    """The failure of the failure-path cases."""


def work(x: int = 1) -> int:
    return x


async def awork(x: int = 1) -> int:
    return x


def boom() -> None:
    raise Boom


def swallowing(fn: Callable[[], Any]) -> Callable[[], None]:
    """A zero-argument case that calls *fn* and catches its Boom (the failure path)."""

    def case() -> None:
        try:
            fn()
        except Boom:
            pass

    return case


def server_url() -> str:
    """The URL of the run's redis-server, started here if this is the parent process."""
    url = os.environ.get(ENV)
    if url:
        return url
    server = RedisServer().start()
    atexit.register(server.close)
    os.environ[ENV] = server.url
    if "--quick" not in sys.argv:
        sys.argv.append(f"--inherit-environ={ENV}")
    return server.url


def rs_breaker(client: redis.Redis | None, name: str, **store: Any) -> rs.CircuitBreaker:
    options: dict[str, Any] = {}
    if client is not None:
        options["store"] = RedisStore(client, prefix="bench", **store)
    return rs.CircuitBreaker(
        on=Boom, name=name, failure_threshold=1_000_000_000, reset_timeout=60.0, **options
    )


def py_breaker(client: redis.Redis | None, name: str) -> Any:
    import pybreaker

    options: dict[str, Any] = {}
    if client is not None:
        options["state_storage"] = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"bench-{name}"
        )
    return pybreaker.CircuitBreaker(fail_max=1_000_000_000, reset_timeout=60, exclude=[], **options)


def cases() -> list[Case]:
    client = make_client(server_url())
    client.flushall()
    cached = rs_breaker(client, "cached")
    uncached = rs_breaker(client, "uncached", refresh=0)
    # An exception-only classifier: the pause's own cost (rs.transient also classifies results).
    pause = RetryAfterPause(on=ConnectionError, name="bench", store=RedisStore(client))
    out = [
        Case("bare call", work),
        Case("rs.CircuitBreaker (in memory)", rs_breaker(None, "memory")(work)),
        Case("rs + RedisStore, cached", cached(work)),
        Case("rs + RedisStore, uncached", uncached(work)),
        Case("rs + RedisStore, failure", swallowing(rs_breaker(client, "failing")(boom))),
        Case("rs.RetryAfterPause, cached", pause(work)),
    ]
    try:
        out += [
            Case("pybreaker (in memory)", py_breaker(None, "memory")(work)),
            Case("pybreaker + CircuitRedisStorage", py_breaker(client, "redis")(work)),
            Case(
                "pybreaker + Redis, failure",
                swallowing(py_breaker(client, "failing")(boom)),
            ),
        ]
    except ImportError:
        pass
    out += [
        Case("async bare call", awork, is_async=True),
        Case("async rs + RedisStore, cached", cached(awork), is_async=True),
        Case("async rs + RedisStore, uncached", uncached(awork), is_async=True),
    ]
    return out


if __name__ == "__main__":
    main(
        cases(),
        title="CircuitBreaker shared through Redis: cost per call (redis-server on 127.0.0.1)",
        references=("rs.CircuitBreaker (in memory)", "pybreaker + CircuitRedisStorage"),
    )
