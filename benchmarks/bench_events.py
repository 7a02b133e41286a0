"""
Success-path cost of events and logging: the same policies with no hook at all,
and with the default log hook installed and every logger at DEBUG.

Events are built on failure paths only, so the goal is no difference: a
success never builds an event, reads the hooks or touches a logger. Each case
installs its own process-wide state (``Case.setup``) in the process that
measures it:

- *no hooks*: ``rs.set_hooks([])``, logging unconfigured;
- *logging on*: ``rs.set_hooks([rs.log_event])`` (the default) and a handler
  on the root logger at DEBUG, formatting into memory.

    python benchmarks/bench_events.py            # full run
    python benchmarks/bench_events.py --fast     # quicker, less precise
    python benchmarks/bench_events.py --quick    # no pyperf: timeit, for a smoke run
"""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import resilience as rs
from benchmarks._harness import Case, awork, main, work

_HANDLER = logging.StreamHandler(io.StringIO())
_HANDLER.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))


def no_hooks() -> None:
    """Nobody listens: no global hook, no handler."""
    rs.set_hooks([])
    logging.getLogger().removeHandler(_HANDLER)
    logging.getLogger().setLevel(logging.WARNING)


def logging_on() -> None:
    """The default log hook, and a root handler at DEBUG: every record would be written."""
    rs.set_hooks([rs.log_event])
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    root.setLevel(logging.DEBUG)


def policies() -> dict[str, rs.Retry | rs.Timeout | rs.CircuitBreaker | rs.Pipeline]:
    retry = rs.Retry(on=rs.transient, attempts=3, name="bench")
    breaker = rs.CircuitBreaker(on=rs.transient, name="bench")
    timeout = rs.Timeout(10.0, name="bench")
    return {
        "rs.Retry": retry,
        "rs.Timeout": timeout,
        "rs.CircuitBreaker": breaker,
        "compose(retry, breaker, timeout)": rs.compose(retry, breaker, timeout),
    }


def cases() -> list[Case]:
    out = [Case("bare call", work, setup=no_hooks)]
    # Each case decorates with its own policy objects: no bound runner is shared.
    for name in policies():
        out.append(Case(f"{name}, no hooks", policies()[name](work), setup=no_hooks))
        out.append(Case(f"{name}, logging on", policies()[name](work), setup=logging_on))
    pipeline = "compose(retry, breaker, timeout)"
    out += [
        Case(f"async {pipeline}, no hooks", policies()[pipeline](awork), True, no_hooks),
        Case(f"async {pipeline}, logging on", policies()[pipeline](awork), True, logging_on),
    ]
    return out


if __name__ == "__main__":
    main(
        cases(),
        title="Events: success-path cost per call, no hooks vs the default log hook at DEBUG",
        references=("rs.Retry, no hooks", "compose(retry, breaker, timeout), no hooks"),
    )
