"""
`call` / `acall` and policy construction in two source trees, side by side.

Made for issue #16: ``call`` and ``acall`` refuse the wrong kind of callable
(a coroutine function given to ``call``, a sync one to ``acall``); the success
path must stay as cheap as before. Each case is timed in the old tree and in
the new one, interleaved, and the table gives the median time per call in each
and the median of the per-round ratios new/old, with their range.

    python benchmarks/bench_call.py --old /tmp/old-tree            # about a minute
    python benchmarks/bench_call.py --old /tmp/old-tree --rounds 3

*--old* is an older checkout (``git worktree add --detach /tmp/old-tree main``);
*--new* defaults to the repository this script lives in. Every measurement runs
in a child process whose ``sys.path`` starts with its tree (two trees cannot be
imported in one process); each round measures both trees back to back,
alternating which goes first. A measurement is the best of 5 timeit runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, sys, timeit
import resilience as rs

def work(x=1):
    return x

async def awork(x=1):
    return x

class Client:
    def get(self, x=1):
        return x

client = Client()
retry = rs.Retry(on=ConnectionError, attempts=3)
pipeline = rs.compose(rs.Retry(on=ConnectionError), rs.Timeout(10.0))

def best(fn, number):
    return min(timeit.repeat(fn, number=number, repeat=5)) / number

def abest(make, number):
    async def body():
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(5):
            t0 = loop.time()
            for _ in range(number):
                await make()
            times.append(loop.time() - t0)
        return min(times) / number
    return asyncio.run(body())

N = 100_000
results = {
    "bare call": best(lambda: work(1), N),
    "retry.call(work)": best(lambda: retry.call(work, 1), N),
    "retry.call(client.get)": best(lambda: retry.call(client.get, 1), N),
    "retry.call(len)": best(lambda: retry.call(len, "x"), N),
    "pipeline.call(work)": best(lambda: pipeline.call(work, 1), N),
    "await retry.acall(awork)": abest(lambda: retry.acall(awork, 1), N // 2),
    "await retry.acall(lambda)": abest(lambda: retry.acall(lambda: awork(1)), N // 2),
    "Retry(on=...)": best(lambda: rs.Retry(on=ConnectionError), N // 10),
    "Timeout(10.0)": best(lambda: rs.Timeout(10.0), N // 10),
}
print(json.dumps({"file": rs.__file__, "results": results}))
"""


def measure(tree: Path) -> dict[str, float]:
    """Run the cases in a child whose path starts with *tree*; return seconds per call."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=tree, capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out)
    assert data["file"].startswith(str(tree)), data["file"]
    return data["results"]  # type: ignore[no-any-return]


def main() -> None:
    """Measure, round by round, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, default=REPO)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    old: list[dict[str, float]] = []
    new: list[dict[str, float]] = []
    for i in range(args.rounds):
        if i % 2:
            new.append(measure(args.new.resolve()))
            old.append(measure(args.old.resolve()))
        else:
            old.append(measure(args.old.resolve()))
            new.append(measure(args.new.resolve()))
    print(f"{'case':<28} {'old ns':>8} {'new ns':>8} {'new/old':>8}  range")
    for case in old[0]:
        ratios = [n[case] / o[case] for o, n in zip(old, new, strict=True)]
        o_ns = statistics.median(o[case] for o in old) * 1e9
        n_ns = statistics.median(n[case] for n in new) * 1e9
        print(
            f"{case:<28} {o_ns:>8.0f} {n_ns:>8.0f} {statistics.median(ratios):>8.2f}"
            f"  {min(ratios):.2f}-{max(ratios):.2f}"
        )


if __name__ == "__main__":
    main()
