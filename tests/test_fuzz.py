"""
Every public constructor, fuzzed: a value is refused, naming its parameter, or it works.

For each parameter of each public constructor, hypothesis draws values of
every kind (huge and tiny numbers, NaN, infinities, negative zero, enormous
ints and timedeltas, bools, strings, containers, None) and puts one in place
of a valid argument. Construction either raises a `TypeError` or `ValueError`
whose message names the parameter, or it succeeds, and then the policy runs a
call (a fake clock: nothing sleeps) whose outcome is the function's own
result or failure, or one of the library's documented errors. Never an
`OverflowError`, a `ZeroDivisionError`, a `MemoryError` or a `TypeError` from
deep inside, at call time (#18.4).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resilience as rs
from resilience import backoff, limits
from resilience.testing import FakeClock


class Boom(Exception):
    """The protected function's own failure: retried, counted, handled."""


EXTREMES: list[object] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    2**31,
    2**53 + 1,
    2**63,
    -(2**63),
    10**8,
    10**60,
    10**400,
    -(10**400),
    0.0,
    -0.0,
    5e-324,
    1e-300,
    1e-7,
    0.5,
    1.5,
    100.0,
    9.3e9,
    1e10,
    1e300,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    datetime.timedelta(0),
    datetime.timedelta(microseconds=1),
    datetime.timedelta.max,
    datetime.timedelta.min,
    "",
    "1",
    (),
    [],
    (1.0, 2.0),
    [0.0, 1e10],
    {"a": 1},
    object(),
]
"""Values that broke constructors once, or could: every one is tried on every parameter."""

WILD = st.one_of(
    st.sampled_from(EXTREMES),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.timedeltas(),
    st.text(max_size=3),
)
"""And values drawn at random, for what nobody thought of."""


class Flaky:
    """Fails with `Boom` *failures* times, then returns ``"ok"``."""

    def __init__(self, failures: int = 1) -> None:
        self.left = failures

    def __call__(self) -> str:
        if self.left > 0:
            self.left -= 1
            raise Boom
        return "ok"

    async def run_async(self) -> str:
        return self()


def outcome(run: Callable[[], object]) -> object:
    """Run a call: its result, or the exception it raised if it is one a caller may see."""
    try:
        return run()
    except (Boom, rs.ResilienceError) as exc:
        return exc


def run_async(make: Callable[[], Any]) -> object:
    async def main() -> object:
        return await make()

    return outcome(lambda: asyncio.run(main()))


# --- what each constructor gets, and what a call through it does ----------------------

Target = tuple[Callable[..., Any], dict[str, Any], Callable[[Any], object]]


def use_retry(retry: rs.Retry) -> object:
    outcome(lambda: retry.call(Flaky(2)))
    return run_async(lambda: retry.acall(Flaky(2).run_async))


def use_breaker(breaker: rs.CircuitBreaker) -> object:
    for _ in range(12):
        outcome(lambda: breaker.call(Flaky(1)))
    breaker.clock.advance(3600.0)  # type: ignore[attr-defined]
    outcome(lambda: breaker.call(Flaky(0)))
    return run_async(lambda: breaker.acall(Flaky(1).run_async))


def use_backoff(curve: Any) -> object:
    return use_retry(rs.Retry(on=Boom, attempts=4, backoff=curve, clock=FakeClock()))


def use_reset(curve: Any) -> object:
    breaker = rs.CircuitBreaker(
        on=Boom, failure_threshold=1, reset_timeout=curve, clock=FakeClock()
    )
    return use_breaker(breaker)


def use_trip(condition: Any) -> object:
    breaker = rs.CircuitBreaker(on=Boom, failure_threshold=None, trip=condition, clock=FakeClock())
    return use_breaker(breaker)


def use_gate(policy: Any) -> object:
    for failures in (0, 1, 1, 0):
        outcome(functools.partial(policy.call, Flaky(failures)))
    return run_async(lambda: policy.acall(Flaky(0).run_async))


def use_timeout(timeout: rs.Timeout) -> object:
    def items() -> Iterator[int]:
        yield from range(3)

    outcome(lambda: list(timeout(items)()))
    if timeout.idle is not None:
        return None  # idle is for streams: a plain function is refused (a TypeError, by design)
    outcome(lambda: timeout.call(Flaky(0)))
    return run_async(lambda: timeout.acall(Flaky(0).run_async))


def use_hedge(hedge: rs.Hedge) -> object:
    for failures in (0, 1, 0):
        run_async(functools.partial(hedge.acall, Flaky(failures).run_async))
    return None


def use_limit(limit: object) -> object:
    bulkhead = rs.Bulkhead(max_concurrent=limit, overload=Boom, clock=FakeClock())
    return use_gate(bulkhead)


def use_budget(budget: Any) -> object:
    return use_retry(rs.Retry(on=Boom, budget=budget, clock=FakeClock()))


TARGETS: dict[str, Target] = {
    "Retry": (
        rs.Retry,
        {
            "on": Boom,
            "attempts": 3,
            "max_retry_after": 60.0,
            "name": None,
            "hooks": (),
            "clock": FakeClock(),
        },
        use_retry,
    ),
    "Timeout": (
        lambda seconds=1.0, **kw: rs.Timeout(seconds, **kw),
        {"seconds": 1.0, "idle": None, "name": None, "clock": FakeClock()},
        use_timeout,
    ),
    "CircuitBreaker": (
        rs.CircuitBreaker,
        {
            "on": Boom,
            "failure_threshold": 5,
            "reset_timeout": 60.0,
            "half_open_max_calls": 1,
            "success_threshold": 1,
            "name": None,
            "clock": FakeClock(),
        },
        use_breaker,
    ),
    "FailureRate": (
        lambda rate=0.5, **kw: rs.FailureRate(rate, **kw),
        {"rate": 0.5, "calls": 10, "minimum_calls": 2},
        use_trip,
    ),
    "FailureRate(seconds)": (
        lambda rate=0.5, **kw: rs.FailureRate(rate, **kw),
        {"rate": 0.5, "seconds": 10.0},
        use_trip,
    ),
    "SlowCallRate": (
        lambda rate=0.5, **kw: rs.SlowCallRate(rate, **kw),
        {"rate": 0.5, "slower_than": 1.0, "calls": 10, "minimum_calls": 2},
        use_trip,
    ),
    "Bulkhead": (
        rs.Bulkhead,
        {
            "max_concurrent": 2,
            "max_queue": 1,
            "max_wait": None,
            "name": None,
            "overload": Boom,
            "clock": FakeClock(),
        },
        use_gate,
    ),
    "Fallback": (rs.Fallback, {"on": Boom, "to": "fallback", "name": None}, use_gate),
    "Hedge": (
        rs.Hedge,
        {"delay": 0.5, "max_hedges": 1, "on": Boom, "clock": FakeClock()},
        use_hedge,
    ),
    "Hedge.percentile": (
        lambda **kw: rs.Hedge(delay=rs.Hedge.percentile(**kw), on=Boom, clock=FakeClock()),
        {"percentile": 95.0, "window": 100, "initial": 0.5, "min_samples": None},
        use_hedge,
    ),
    "RetryBudget": (
        rs.RetryBudget,
        {"ratio": 0.1, "minimum": 10, "per": 1.0, "clock": FakeClock()},
        use_budget,
    ),
    "TokenBudget": (rs.TokenBudget, {"max_tokens": 10, "token_ratio": 0.1}, use_budget),
    "backoff.constant": (
        lambda delay=1.0, **kw: backoff.constant(delay, **kw),
        {"delay": 1.0},
        use_backoff,
    ),
    "backoff.linear": (
        lambda initial=1.0, **kw: backoff.linear(initial, **kw),
        {"initial": 1.0, "step": 1.0, "max": None},
        use_backoff,
    ),
    "backoff.exponential": (
        backoff.exponential,
        {"initial": 0.1, "max": 10.0, "multiplier": 2.0},
        use_backoff,
    ),
    "backoff.exponential as reset_timeout": (
        backoff.exponential,
        {"initial": 0.1, "max": 10.0, "multiplier": 2.0},
        use_reset,
    ),
    "backoff.schedule": (
        lambda delays=(0.0, 1.0), **kw: backoff.schedule(delays, **kw),
        {"delays": (0.0, 1.0)},
        use_backoff,
    ),
    "backoff.proportional": (
        lambda fraction=0.25: backoff.exponential(jitter=backoff.proportional(fraction)),
        {"fraction": 0.25},
        use_backoff,
    ),
    "limits.AIMD": (
        limits.AIMD,
        {"initial": 20, "minimum": 1, "maximum": 200, "backoff": 0.9, "timeout": None},
        use_limit,
    ),
    "limits.Gradient": (
        limits.Gradient,
        {
            "initial": 20,
            "minimum": 1,
            "maximum": 200,
            "smoothing": 0.2,
            "tolerance": 1.5,
            "long_window": 600,
            "queue_size": None,
            "backoff": 0.9,
        },
        use_limit,
    ),
}

CASES = [(target, parameter) for target, (_, base, _) in TARGETS.items() for parameter in base]


def check(target: str, parameter: str, value: object) -> None:
    """Construct *target* with *value* for *parameter*: refused by name, or a call works."""
    make, base, use = TARGETS[target]
    kwargs = {**base, parameter: value}
    for name, given_value in kwargs.items():
        if isinstance(given_value, FakeClock):
            kwargs[name] = FakeClock()  # a fresh one per value
    try:
        policy = make(**kwargs)
    except (TypeError, ValueError) as exc:
        refusal = str(exc)
    else:
        use(policy)
        return
    assert parameter in refusal, f"{target}({parameter}={value!r}): {refusal}"


@pytest.mark.parametrize(("target", "parameter"), CASES)
def test_every_extreme_value_is_refused_by_name_or_works(target: str, parameter: str) -> None:
    """#18.4: each parameter refuses each extreme value at construction, by name, or works."""
    for value in EXTREMES:
        check(target, parameter, value)


@pytest.mark.parametrize(("target", "parameter"), CASES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=WILD)
def test_a_drawn_value_is_refused_by_name_or_works(
    target: str, parameter: str, value: object
) -> None:
    """#18.4: each parameter refuses a drawn value at construction, by name, or works."""
    check(target, parameter, value)
