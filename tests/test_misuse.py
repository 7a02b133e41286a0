"""The mistakes of a first hour with the library, and what their errors say (issue #16)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

import resilience as rs
from resilience import backoff

# --- call / acall with the wrong kind of function (issue #16, item 2) ---------------------

POLICIES: dict[str, Callable[[], rs.Policy | rs.Pipeline]] = {
    "Retry": lambda: rs.Retry(on=Exception, backoff=backoff.constant(0.0)),
    "Timeout": lambda: rs.Timeout(10.0),
    "CircuitBreaker": lambda: rs.CircuitBreaker(on=Exception, failure_threshold=1),
    "Bulkhead": lambda: rs.Bulkhead(max_concurrent=1),
    "Fallback": lambda: rs.Fallback(on=Exception, to=0),
    "Hedge": lambda: rs.Hedge(on=Exception, delay=1.0),
    "Pipeline": lambda: rs.compose(rs.Retry(on=Exception), rs.Timeout(10.0)),
}


async def fetch() -> int:
    return 1


def count() -> int:
    return 1


def numbers() -> Iterator[int]:
    yield 1


async def anumbers() -> AsyncIterator[int]:
    yield 1


class Client:
    async def get(self) -> int:
        return 1


@pytest.mark.parametrize("make", POLICIES.values(), ids=POLICIES)
def test_call_refuses_a_coroutine_function(make: Callable[[], rs.Policy | rs.Pipeline]) -> None:
    """call(async_fn) raises a TypeError naming acall, for every policy and pipelines."""
    policy = make()
    name = type(policy).__name__
    with pytest.raises(TypeError) as info:
        policy.call(fetch)  # type: ignore[union-attr]
    assert str(info.value) == (
        f"{name}.call() runs sync functions, and fetch is a coroutine function: "
        f"use await {name}.acall(fetch, ...)"
    )


@pytest.mark.parametrize("make", POLICIES.values(), ids=POLICIES)
def test_acall_refuses_a_sync_function(make: Callable[[], rs.Policy | rs.Pipeline]) -> None:
    """acall(sync_fn) raises a TypeError naming call, for every policy and pipelines."""
    policy = make()
    name = type(policy).__name__
    with pytest.raises(TypeError) as info:
        asyncio.run(policy.acall(count))  # type: ignore[union-attr, arg-type]
    assert str(info.value) == (
        f"{name}.acall() runs coroutine functions, and count is a function (it returned "
        f"int, not an awaitable): use {name}.call(count, ...)"
    )


def test_call_names_a_bound_coroutine_method() -> None:
    """call(obj.async_method) names the method."""
    with pytest.raises(TypeError, match=r"and Client\.get is a coroutine function"):
        rs.Retry(on=Exception).call(Client().get)  # type: ignore[unused-coroutine]


def test_acall_runs_a_sync_function_once_and_counts_nothing() -> None:
    """acall(sync_fn) runs it once: not retried, no failure for the breaker."""
    runs: list[int] = []

    def work() -> int:
        runs.append(1)
        return 1

    breaker = rs.CircuitBreaker(on=Exception, failure_threshold=1)
    pipeline = rs.compose(rs.Retry(on=Exception, backoff=backoff.constant(0.0)), breaker)
    with pytest.raises(TypeError):
        asyncio.run(pipeline.acall(work))  # type: ignore[arg-type]
    assert runs == [1]
    assert breaker.state is rs.CircuitState.CLOSED


def test_acall_takes_a_sync_function_returning_an_awaitable() -> None:
    """acall(lambda: coro()) still works: what counts is what the function returns."""
    assert asyncio.run(rs.Retry(on=Exception).acall(lambda: fetch())) == 1


def test_call_refuses_a_generator_function() -> None:
    """call(generator function) says to decorate it."""
    with pytest.raises(TypeError) as info:
        rs.Retry(on=Exception).call(numbers)
    assert str(info.value) == (
        "Retry.call() runs sync functions, and numbers is a generator function: "
        "decorate it, so that the policies cover its iteration"
    )


def test_acall_refuses_an_async_generator_function() -> None:
    """acall(async generator function) says to decorate it."""
    with pytest.raises(TypeError) as info:
        asyncio.run(rs.Retry(on=Exception).acall(anumbers))  # type: ignore[arg-type]
    assert str(info.value) == (
        "Retry.acall() runs coroutine functions, and anumbers is an async generator "
        "function: decorate it, so that the policies cover its iteration"
    )


def test_call_refuses_what_is_not_callable() -> None:
    """retry.call(42) says what it got, as retry(42) does; it never runs the policy."""
    with pytest.raises(TypeError) as info:
        rs.Retry(on=Exception).call(42)  # type: ignore[arg-type]
    assert str(info.value) == "Retry.call() runs callables, got int: 42"


def test_acall_refuses_what_is_not_callable() -> None:
    """await pipeline.acall(42) says what it got."""
    with pytest.raises(TypeError) as info:
        asyncio.run(rs.compose(rs.Timeout(1.0)).acall(42))  # type: ignore[arg-type]
    assert str(info.value) == "Pipeline.acall() runs callables, got int: 42"


def test_call_takes_builtins_and_bound_methods() -> None:
    """Builtins and bound sync methods pass the check."""
    retry = rs.Retry(on=Exception)
    assert retry.call(len, "ab") == 2
    assert retry.call([3].pop) == 3
