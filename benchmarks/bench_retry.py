"""
Success-path overhead of Retry against the peers, side by side in one run.

Every retrying case is configured alike: 3 attempts, exponential backoff,
retry on one exception type; the call always succeeds, so what is measured is
the price of being ready to retry (with a retry budget: one lock-free count
per call).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


import attrs

import resilience as rs
from benchmarks._harness import Case, awork, closure, main, passthrough, work
from resilience._budget import RetryBudget, TokenBudget


def with_tenacity(fn: Callable[..., Any]) -> Callable[..., Any]:
    import tenacity

    return tenacity.retry(
        retry=tenacity.retry_if_exception_type(ConnectionError),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.1, max=10),
    )(fn)


def with_stamina(fn: Callable[..., Any]) -> Callable[..., Any]:
    import stamina

    return stamina.retry(on=ConnectionError, attempts=3)(fn)


def with_backoff(fn: Callable[..., Any]) -> Callable[..., Any]:
    import backoff

    return backoff.on_exception(backoff.expo, ConnectionError, max_tries=3)(fn)


PEERS = {"tenacity": with_tenacity, "stamina": with_stamina, "backoff": with_backoff}


def cases() -> list[Case]:
    retry = rs.Retry(
        on=ConnectionError, attempts=3, backoff=rs.backoff.exponential(initial=0.1, max=10.0)
    )
    out = [
        Case("bare call", work),
        Case("functools.wraps closure", closure(work)),
        Case("wrapt FunctionWrapper", passthrough(work)),
        Case("rs.Retry", retry(work)),
        Case("rs.Retry, run once: retry.call(fn)", functools.partial(retry.call, work)),
        Case("rs.Retry + RetryBudget", attrs.evolve(retry, budget=RetryBudget())(work)),
        Case("rs.Retry + TokenBudget", attrs.evolve(retry, budget=TokenBudget())(work)),
    ]
    for peer, wrap in PEERS.items():
        try:
            out.append(Case(peer, wrap(work)))
        except ImportError:
            pass
    out.append(Case("async bare call", awork, is_async=True))
    out.append(Case("async rs.Retry", retry(awork), is_async=True))
    out.append(
        Case(
            "async rs.Retry + RetryBudget",
            attrs.evolve(retry, budget=RetryBudget())(awork),
            is_async=True,
        )
    )
    for peer, wrap in PEERS.items():
        try:
            out.append(Case(f"async {peer}", wrap(awork), is_async=True))
        except ImportError:
            pass
    return out


if __name__ == "__main__":
    main(
        cases(),
        title="Retry: success-path cost per call",
        references=("wrapt FunctionWrapper", "tenacity"),
    )
