"""
A small harness over pyperf: run cases side by side in one run, print ratios.

Each benchmark script builds a list of `Case` objects and calls `main(cases)`.
pyperf re-runs the script in worker processes, calibrates the loop counts and
checks stability; the parent prints one table: mean time per call, the ratio
to the baseline (the first case, normally the bare call) and to a named
references named by the script (e.g. one wrapt layer and tenacity).

    python benchmarks/bench_retry.py            # full run (a minute or two)
    python benchmarks/bench_retry.py --fast     # quicker, less precise
    python benchmarks/bench_retry.py --quick    # no pyperf: timeit, for a smoke run

Ratios matter, not absolute times: they are measured in the same run, on the
same machine, with the same loop around every case.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


def work(x: int = 1) -> int:
    """The protected call of every benchmark: as cheap as a call gets."""
    return x


async def awork(x: int = 1) -> int:
    """The async protected call of every benchmark."""
    return x


def closure(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The cheapest possible decorator: a `functools.wraps` closure (a baseline)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One `wrapt.FunctionWrapper` pass-through layer (the baseline the goals name)."""
    import wrapt

    def call(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    return wrapt.FunctionWrapper(fn, call)


@dataclass(frozen=True)
class Case:
    """
    One thing to measure: a zero-argument callable (or coroutine function).

    *setup*, if given, runs in the process that measures the case, right
    before it is timed: process-wide state (global hooks, logging) that only
    this case should see.
    """

    name: str
    fn: Callable[[], Any]
    is_async: bool = False
    setup: Callable[[], object] | None = None


def _sync_timer(fn: Callable[[], Any]) -> Callable[[int], float]:
    def timer(loops: int) -> float:
        r = range(loops)
        t0 = time.perf_counter()
        for _ in r:
            fn()
        return time.perf_counter() - t0

    return timer


def _async_timer(fn: Callable[[], Awaitable[Any]]) -> Callable[[int], float]:
    async def body(loops: int) -> float:
        r = range(loops)
        t0 = time.perf_counter()
        for _ in r:
            await fn()
        return time.perf_counter() - t0

    def timer(loops: int) -> float:
        return asyncio.run(body(loops))

    return timer


def timer_of(case: Case) -> Callable[[int], float]:
    """Return ``timer(loops) -> seconds`` for *case*, running its setup first."""
    timer = _async_timer(case.fn) if case.is_async else _sync_timer(case.fn)
    setup = case.setup
    if setup is None:
        return timer

    def prepared(loops: int) -> float:
        setup()
        return timer(loops)

    return prepared


def table(results: dict[str, float], references: tuple[str, ...] = ()) -> str:
    """Format seconds per call as a table, with ratios to the first case and *references*."""
    names = list(results)
    refs = [r for r in references if r in results]
    width = max(len(n) for n in names)
    cols = [names[0], *refs]
    colw = [max(12, len(c) + 2) for c in cols]
    head = f"{'case':<{width}}  {'per call':>10}" + "".join(
        f"  {'x ' + c:>{w}}" for c, w in zip(cols, colw, strict=True)
    )
    lines = [head, "-" * len(head)]
    for name in names:
        t = results[name]
        line = f"{name:<{width}}  {t * 1e9:>7.0f} ns" + "".join(
            f"  {t / results[c]:>{w}.2f}" for c, w in zip(cols, colw, strict=True)
        )
        lines.append(line)
    return "\n".join(lines)


def _quick(cases: list[Case]) -> dict[str, float]:
    out: dict[str, float] = {}
    for case in cases:
        timer = timer_of(case)
        loops = 20_000 if case.is_async else 100_000
        # interleave-free but min of repeats: good enough for a smoke run
        best = min(timer(loops) for _ in range(5))
        out[case.name] = best / loops
    return out


def main(cases: list[Case], *, title: str, references: tuple[str, ...] = ()) -> None:
    """Measure *cases* side by side and print the table (in the parent process)."""
    if "--quick" in sys.argv:
        print(f"{title} (quick: timeit, min of 5)\n")
        print(table(_quick(cases), references))
        return
    import pyperf

    runner = pyperf.Runner()
    results: dict[str, float] = {}
    for case in cases:
        bench = runner.bench_time_func(case.name, timer_of(case))
        if bench is not None and not runner.args.worker:
            results[case.name] = bench.mean()
    if results and not runner.args.worker:
        print(f"\n{title}\n")
        print(table(results, references))


def timeit_once(fn: Callable[[], Any], number: int = 1000) -> float:
    """Seconds per call of *fn* over *number* calls (for smoke checks)."""
    return timeit.timeit(fn, number=number) / number
