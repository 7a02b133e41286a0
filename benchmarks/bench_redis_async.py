"""
An async CircuitBreaker shared through Redis: `AsyncRedisStore` against `RedisStore`, side by side.

Both breakers run in one event loop against one redis-server started for the
run (``redis-server`` must be installed); each round measures every case in
turn (the order alternating from round to round, so that drift hits both
alike), and the table gives the median time per call, the median of the
per-round ratios AsyncRedisStore / RedisStore with their range, and the Lua
script round trips per call (INFO commandstats, counted around each timing).

    python benchmarks/bench_redis_async.py              # 7 rounds
    python benchmarks/bench_redis_async.py --rounds 15

Cases, each with both stores:

- **cached**: the default ``refresh=0.25``, the closed success path (no round trip);
- **uncached**: ``refresh=0``, one acquire script per call;
- **failure**: a failure counted in Redis (never reaching the threshold):
  one record script per call (its reply refreshes the cache);
- **50 tasks, failure**: 50 tasks failing at once: with `RedisStore` each
  round trip holds the loop, so they run one after the other; with
  `AsyncRedisStore` their waits overlap (time per call, all tasks
  together). On 127.0.0.1 a round trip is mostly the client's own CPU, not
  waiting, so overlapping gains little here; with a Redis across a network
  the waits are what overlaps.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import redis.asyncio

import resilience as rs
from resilience.integrations.redis import AsyncRedisStore, RedisStore
from tests.redis_server import RedisServer

CALLS = {"cached": 20_000, "uncached": 2_000, "failure": 2_000, "50 tasks, failure": 4_000}
TASKS = 50


class Boom(Exception):
    """The failure of the failure case."""


async def awork() -> int:
    return 1


async def aboom() -> None:
    raise Boom


def breaker(store: Any, name: str) -> rs.CircuitBreaker:
    return rs.CircuitBreaker(
        on=Boom, name=name, failure_threshold=1_000_000_000, reset_timeout=60.0, store=store
    )


def scripts(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{n}", {}).get("calls", 0)) for n in ("evalsha", "eval"))


async def timed(
    case: str, call: Callable[[], Awaitable[Any]], counter: redis.Redis
) -> tuple[float, float]:
    """Seconds per call and round trips per call of *call*, *CALLS[case]* times."""
    calls = CALLS[case]

    async def one() -> None:
        try:
            await call()
        except Boom:
            pass

    async def run(n: int) -> None:
        for _ in range(n):
            await one()

    await run(50)  # warm: scripts loaded, the cache read
    before = scripts(counter)
    start = time.perf_counter()
    if case.startswith(f"{TASKS} tasks"):
        await asyncio.gather(*(run(calls // TASKS) for _ in range(TASKS)))
    else:
        await run(calls)
    elapsed = time.perf_counter() - start
    return elapsed / calls, (scripts(counter) - before) / calls


async def main(url: str, rounds: int) -> str:
    counter = redis.Redis.from_url(url)
    counter.flushall()
    sync_client = redis.Redis.from_url(url, socket_timeout=1.0)
    async_client = redis.asyncio.Redis.from_url(url, socket_timeout=1.0, max_connections=TASKS + 10)
    stores: dict[str, Callable[[str], Any]] = {
        "RedisStore": lambda case: RedisStore(
            sync_client, prefix="sync", refresh=0 if case == "uncached" else 0.25
        ),
        "AsyncRedisStore": lambda case: AsyncRedisStore(
            async_client, prefix="async", refresh=0 if case == "uncached" else 0.25
        ),
    }
    calls: dict[tuple[str, str], Callable[[], Awaitable[Any]]] = {}
    for case in CALLS:
        for kind, make in stores.items():
            b = breaker(make(case), case.replace(" ", "-").replace(",", ""))
            calls[case, kind] = b(aboom if case.endswith("failure") else awork)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    trips: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for r in range(rounds):
        order = list(stores) if r % 2 == 0 else list(reversed(stores))
        for case in CALLS:
            for kind in order:
                seconds, per_call = await timed(case, calls[case, kind], counter)
                times[case, kind].append(seconds)
                trips[case, kind].append(per_call)
    await async_client.aclose()
    sync_client.close()
    counter.close()

    def shown(seconds: float) -> str:
        return f"{seconds * 1e9:.0f} ns" if seconds < 1e-5 else f"{seconds * 1e6:.1f} µs"

    lines = [
        f"Async CircuitBreaker shared through Redis: {rounds} rounds, "
        f"Python {sys.version.split()[0]}, redis-py {redis.__version__}",
        "",
        "| per call | RedisStore | AsyncRedisStore | async / sync (range) "
        "| round trips (sync, async) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for case in CALLS:
        sync_t, async_t = times[case, "RedisStore"], times[case, "AsyncRedisStore"]
        ratios = sorted(a / s for a, s in zip(async_t, sync_t, strict=True))
        lines.append(
            f"| {case} | {shown(statistics.median(sync_t))} | {shown(statistics.median(async_t))} "
            f"| {statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) "
            f"| {statistics.median(trips[case, 'RedisStore']):.2f}, "
            f"{statistics.median(trips[case, 'AsyncRedisStore']):.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with RedisServer() as server:
        server.start()
        print(asyncio.run(main(server.url, args.rounds)))
