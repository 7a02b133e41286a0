"""
The async Redis gates, old tree vs new: `AsyncRetryAfterPause` and `AsyncRedisRateLimiter`.

Both became awaiting gates (`resilience.engine.AwaitingGate`) instead of
runners of their own around the engine's sync gate; this checks that a call
through them costs no more. Each case runs against a stub client that answers
every script at once ("no network": the Python side alone, where a change
would show) and against one real redis-server on 127.0.0.1 started for the
run (``redis-server`` must be installed). Two trees cannot be imported in one
process: each round runs one child process per tree, back to back,
alternating which goes first; a child reports the best of 5 timings per case.
Times are the median over the rounds, new/old the median of the per-round
ratios.

    python benchmarks/bench_redis_async_gates.py --old /tmp/old-tree [--rounds 7]

*--old* is an older checkout (``git worktree add /tmp/old-tree <commit>``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CHILD = r"""
import asyncio, json, sys, time
sys.path[:0] = [sys.argv[1]]
import resilience
assert resilience.__file__.startswith(sys.argv[1]), resilience.__file__
import resilience as rs
from resilience.integrations.redis import (
    AsyncRedisRateLimiter, AsyncRedisStore, AsyncRetryAfterPause,
)

url, number = sys.argv[2], int(sys.argv[3])

class Stub:
    # An asyncio client that answers every script at once: the Python side alone.

    def __init__(self, reply):
        self.reply = reply
        self.connection_pool = None

    def register_script(self, script):
        reply = self.reply
        async def run(keys=None, args=None, client=None):
            return reply
        return run

    async def execute_command(self, *args, **options):
        raise AssertionError("the stub runs scripts only")

async def work():
    return 1

async def best(fn, n):
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        times.append((time.perf_counter() - t0) / n)
    return min(times)

def pause(store):
    return AsyncRetryAfterPause(on=rs.transient, name="bench", store=store)

def limiter(store):
    return AsyncRedisRateLimiter(name="bench", store=store, rate=1e9, per=1.0)

async def block(gate):
    async with gate:
        pass

async def main():
    out = {}
    many = 10 * number
    cached = pause(AsyncRedisStore(Stub([0, ""])))
    read = pause(AsyncRedisStore(Stub([0, ""]), refresh=0.0))
    stubbed = limiter(AsyncRedisStore(Stub([1, 0, b"1.000"])))
    out["no network: AsyncRetryAfterPause, cached"] = await best(lambda: cached.acall(work), many)
    out["no network: AsyncRetryAfterPause, a read per call"] = await best(
        lambda: read.acall(work), many
    )
    out["no network: AsyncRetryAfterPause, async with"] = await best(lambda: block(cached), many)
    out["no network: AsyncRedisRateLimiter, acall"] = await best(lambda: stubbed.acall(work), many)
    out["no network: AsyncRedisRateLimiter, async with"] = await best(
        lambda: block(stubbed), many
    )
    store = AsyncRedisStore.from_url(url, timeout=5.0, refresh=0.0)
    served = pause(store)
    fleet = limiter(store)
    await served.acall(work)
    await fleet.acall(work)
    out["Redis: AsyncRetryAfterPause, a read per call"] = await best(
        lambda: served.acall(work), number
    )
    out["Redis: AsyncRedisRateLimiter, acall"] = await best(lambda: fleet.acall(work), number)
    await store.client.aclose()
    print(json.dumps(out))

asyncio.run(main())
"""


def child(tree: Path, url: str, number: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), url, str(number)],
        check=False,
        capture_output=True,
        text=True,
        cwd="/",
    )
    if done.returncode:
        raise RuntimeError(f"the child measuring {tree} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, default=REPO)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.redis_server import RedisServer

    with RedisServer() as server:
        server.start()
        old: dict[str, list[float]] = {}
        new: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for index in range(args.rounds):
            pair = [(args.old, old), (args.new, new)]
            if index % 2:
                pair.reverse()
            got = {id(times): child(tree, server.url, args.number) for tree, times in pair}
            for case in got[id(new)]:
                for times in (old, new):
                    times.setdefault(case, []).append(got[id(times)][case])
                ratios.setdefault(case, []).append(got[id(new)][case] / got[id(old)][case])
        print(f"Old tree ({args.old}) vs new ({args.new}); median of {args.rounds} rounds\n")
        width = max(len(c) for c in new)
        print(f"{'case':<{width}}  {'old (µs)':>8}  {'new (µs)':>8}  {'new/old':>7}  {'range':>11}")
        for case in new:
            mid = statistics.median(ratios[case])
            print(
                f"{case:<{width}}  {statistics.median(old[case]) * 1e6:>8.1f}  "
                f"{statistics.median(new[case]) * 1e6:>8.1f}  {mid:>7.2f}  "
                f"{min(ratios[case]):.2f}-{max(ratios[case]):.2f}"
            )


if __name__ == "__main__":
    main()
