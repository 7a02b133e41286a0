"""
The Redis circuit store's round trips in two checkouts, side by side in one run.

For a change to the store's scripts or to what travels with them: each round
runs every case once in the old tree and once in the new one (in turn, each in
its own subprocess, against one redis-server started for the run), and the
table gives the median time per call of each tree and the median of the
per-round ratios new/old, with their range. The "(Redis)" rows are the
script's own time in the server (INFO commandstats), less noisy than the
round trip's.

    python benchmarks/bench_redis_trees.py --old /tmp/old-tree            # 7 rounds
    python benchmarks/bench_redis_trees.py --old /tmp/old-tree --rounds 15

Cases: a success read from Redis (``refresh=0``: the acquire script), a failure
counted in Redis (the record script, below the threshold), and a rejection by
an open circuit read from Redis (``refresh=0``, open: the acquire script's
reply carries the cause).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Run in a subprocess whose cwd is the tree: that tree's `resilience` is imported.
WORKER = r"""
import json, sys, time
sys.path.insert(0, ".")
import redis
import resilience as rs
from resilience.integrations.redis import RedisStore

url, calls = sys.argv[1], int(sys.argv[2])
client = redis.Redis.from_url(url)

class Boom(Exception):
    pass

def work():
    return 1

def boom():
    raise Boom("connection refused by the upstream at 10.0.0.1:443")

def timed(fn):
    for _ in range(50):
        fn()
    client.config_resetstat()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = (time.perf_counter() - start) / calls
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return elapsed, float(stats.get("usec_per_call", 0.0)) / 1e6

def success():
    b = rs.CircuitBreaker(on=Boom, name="s", store=RedisStore(client, refresh=0.0))
    return timed(lambda: b.call(work))

def failure():
    b = rs.CircuitBreaker(
        on=Boom, name="f", store=RedisStore(client), failure_threshold=10**9
    )
    def once():
        try:
            b.call(boom)
        except Boom:
            pass
    return timed(once)

def rejection():
    opener = rs.CircuitBreaker(on=Boom, name="r", store=RedisStore(client), failure_threshold=1)
    try:
        opener.call(boom)
    except (Boom, rs.CircuitOpenError):
        pass
    b = rs.CircuitBreaker(on=Boom, name="r", store=RedisStore(client, refresh=0.0))
    def once():
        try:
            b.call(work)
        except rs.CircuitOpenError:
            pass
    return timed(once)

client.flushall()
results = {}
for case in (success, failure, rejection):
    results[case.__name__], results[case.__name__ + " (Redis)"] = case()
print(json.dumps(results))
"""


def run(tree: Path, url: str, calls: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", WORKER, url, str(calls)],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--old", type=Path, required=True, help="an older checkout")
    parser.add_argument("--new", type=Path, default=HERE.parent, help="default: this one")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="calls per case and round")
    options = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from tests.redis_server import RedisServer

    with RedisServer().start() as server:
        old: dict[str, list[float]] = {}
        new: dict[str, list[float]] = {}
        for _ in range(options.rounds):
            for tree, into in ((options.old, old), (options.new, new)):
                for case, seconds in run(tree, server.url, options.calls).items():
                    into.setdefault(case, []).append(seconds)
    print(f"{'case':<12}{'old µs':>10}{'new µs':>10}{'new/old':>10}  range")
    for case in old:
        ratios = [n / o for n, o in zip(new[case], old[case], strict=True)]
        print(
            f"{case:<12}{statistics.median(old[case]) * 1e6:>10.1f}"
            f"{statistics.median(new[case]) * 1e6:>10.1f}{statistics.median(ratios):>10.3f}"
            f"  {min(ratios):.3f}-{max(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
