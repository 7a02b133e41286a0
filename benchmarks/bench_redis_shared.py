"""
The fleet-wide rate limiter and retry budget over Redis: sync old vs new, and the async twins.

Two tables, against one real redis-server on 127.0.0.1 started for the run
(``redis-server`` must be installed):

1. **Sync, old tree vs new tree** (issue #15: the sync limiter and budget must
   not get slower): `RedisRateLimiter` admitting a decorated call, refusing
   one (``max_wait=0``, an empty bucket), and `RedisRetryBudget.spend`, each
   against the server and against a stub client that answers every script at
   once ("no network": the Python side alone, where a change would show). Two
   trees cannot be imported in one process: each round runs one child process
   per tree, back to back, alternating which goes first; a child reports the
   best of 5 timings per case. Times are the median over the rounds, new/old
   the median of the per-round ratios.
2. **Async vs sync, new tree**: a coroutine through `AsyncRedisRateLimiter`
   against a function through `RedisRateLimiter`, `AsyncRedisRetryBudget.aspend`
   against `RedisRetryBudget.spend`, and the round trips each makes per call
   (the server's own count of scripts run, ``INFO commandstats``).

    python benchmarks/bench_redis_shared.py --old /tmp/old-tree [--rounds 7]

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
import resilience, redis
assert resilience.__file__.startswith(sys.argv[1]), resilience.__file__
import resilience as rs
from resilience.integrations.redis import RedisRateLimiter, RedisRetryBudget, RedisStore

url, mode, number = sys.argv[2], sys.argv[3], int(sys.argv[4])
client = redis.Redis.from_url(url, socket_timeout=5.0)
store = RedisStore(client)

def best(fn, n=number):
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return min(times)

def work():
    return 1

def refuse(r):
    def call():
        try:
            r.call(work)
        except rs.RateLimitedError:
            pass
    return call

def scripts():
    stats = client.info("commandstats")
    return sum(int(stats.get(k, {}).get("calls", 0)) for k in ("cmdstat_evalsha", "cmdstat_eval"))

class Stub:
    # A client that answers every script at once, as Redis would: the Python side alone.

    def __init__(self, reply):
        self.reply = reply
        self.connection_pool = None

    def register_script(self, script):
        reply = self.reply
        return lambda keys=None, args=None, client=None: reply

    def execute_command(self, *args, **options):
        raise AssertionError("the stub runs scripts only")

out = {}
if mode == "sync":
    stubbed = RedisRateLimiter(
        name="bench-stub", store=RedisStore(Stub([1, 0, b"1.000"])), rate=1e9, per=1.0
    )
    refusing = RedisRateLimiter(
        name="bench-stub", store=RedisStore(Stub([0, 5000000])), rate=1, per=60.0, max_wait=0
    )
    stub_budget = RedisRetryBudget(name="bench-stub", store=RedisStore(Stub([1, 1, "1"])))
    many = 20 * number
    out["no network: RedisRateLimiter, call admitted"] = best(lambda: stubbed.call(work), many)
    out["no network: RedisRateLimiter, call refused"] = best(refuse(refusing), many)
    out["no network: RedisRetryBudget.spend"] = best(stub_budget.spend, many)
    admit = RedisRateLimiter(name="bench-admit", store=store, rate=1e9, per=1.0)
    full = RedisRateLimiter(name="bench-full", store=store, rate=1, per=3600.0, max_wait=0)
    refuse(full)()  # empties the bucket (a child before this one may have)
    budget = RedisRetryBudget(name="bench-budget", store=store, ratio=1.0, minimum=10**9)
    out["RedisRateLimiter: call admitted"] = best(lambda: admit.call(work))
    out["RedisRateLimiter: call refused"] = best(refuse(full))
    out["RedisRetryBudget.spend"] = best(budget.spend)
else:
    from resilience.integrations.redis import (
        AsyncRedisRateLimiter, AsyncRedisRetryBudget, AsyncRedisStore,
    )
    admit = RedisRateLimiter(name="bench-admit", store=store, rate=1e9, per=1.0)
    budget = RedisRetryBudget(name="bench-budget", store=store, ratio=1.0, minimum=10**9)
    async def awork():
        return 1
    async def main():
        astore = AsyncRedisStore.from_url(url, timeout=5.0)
        alimiter = AsyncRedisRateLimiter(name="bench-admit", store=astore, rate=1e9, per=1.0)
        abudget = AsyncRedisRetryBudget(name="bench-budget", store=astore, ratio=1.0, minimum=10**9)
        async def abest(fn):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(number):
                    await fn()
                times.append((time.perf_counter() - t0) / number)
            return min(times)
        await alimiter.acall(awork)
        await abudget.aspend()
        before = scripts()
        for _ in range(100):
            await alimiter.acall(awork)
        out["round trips per acquire: AsyncRedisRateLimiter"] = (scripts() - before) / 100
        acquire = lambda: alimiter.acall(awork)  # noqa: E731
        out["async: AsyncRedisRateLimiter, acall admitted"] = await abest(acquire)
        out["async: AsyncRedisRetryBudget.aspend"] = await abest(abudget.aspend)
        await astore.client.aclose()
    admit.call(work)
    before = scripts()
    for _ in range(100):
        admit.call(work)
    out["round trips per acquire: RedisRateLimiter"] = (scripts() - before) / 100
    out["sync: RedisRateLimiter, call admitted"] = best(lambda: admit.call(work))
    out["sync: RedisRetryBudget.spend"] = best(budget.spend)
    asyncio.run(main())
print(json.dumps(out))
"""


def child(tree: Path, url: str, mode: str, number: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), url, mode, str(number)],
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
    parser.add_argument("--number", type=int, default=2000)
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
            got = {id(times): child(tree, server.url, "sync", args.number) for tree, times in pair}
            for case in got[id(new)]:
                for times in (old, new):
                    times.setdefault(case, []).append(got[id(times)][case])
                ratios.setdefault(case, []).append(got[id(new)][case] / got[id(old)][case])
        print(f"Sync, old tree ({args.old}) vs new ({args.new}); median of {args.rounds} rounds\n")
        width = max(len(c) for c in new)
        print(f"{'case':<{width}}  {'old (µs)':>8}  {'new (µs)':>8}  {'new/old':>7}  {'range':>11}")
        for case in new:
            mid = statistics.median(ratios[case])
            print(
                f"{case:<{width}}  {statistics.median(old[case]) * 1e6:>8.1f}  "
                f"{statistics.median(new[case]) * 1e6:>8.1f}  {mid:>7.2f}  "
                f"{min(ratios[case]):.2f}-{max(ratios[case]):.2f}"
            )
        runs = [child(args.new, server.url, "async", args.number) for _ in range(3)]
        print("\nAsync vs sync, new tree (median of 3 runs)\n")
        width = max(len(c) for c in runs[0])
        for case in runs[0]:
            value = statistics.median(run[case] for run in runs)
            shown = f"{value:.2f}" if case.startswith("round trips") else f"{value * 1e6:.1f} µs"
            print(f"{case:<{width}}  {shown:>10}")


if __name__ == "__main__":
    main()
