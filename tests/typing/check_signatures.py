"""
Type-checked only (never run): decorated callables keep their signatures.

mypy --strict checks this file; a regression shows up as a type error here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, assert_type

import resilience as rs
from resilience.engine import GatePolicy

retry = rs.Retry(on=rs.transient)
pipeline = rs.compose(retry, rs.Retry(on=ValueError))


@retry
def fetch(url: str, *, timeout: float = 1.0) -> bytes:
    return url.encode()


@pipeline
async def afetch(url: str) -> int:
    return len(url)


assert_type(fetch("x"), bytes)
assert_type(fetch("x", timeout=2.0), bytes)


def take_coroutine(x: Coroutine[Any, Any, int]) -> None:
    x.close()


take_coroutine(afetch("x"))


async def use() -> None:
    assert_type(await afetch("x"), int)
    assert_type(await pipeline.acall(afetch, "y"), int)
    assert_type(await retry.acall(afetch, "y"), int)


assert_type(retry.call(fetch, "y", timeout=3.0), bytes)
assert_type(pipeline.call(fetch, "y"), bytes)


class Client:
    @retry
    def get(self, path: str) -> str:
        return path

    @retry
    @classmethod
    def make(cls, name: str) -> Client:
        return cls()

    @staticmethod
    @retry
    def util(n: int) -> int:
        return n


assert_type(Client().get("/"), str)
assert_type(Client.make("n"), Client)
assert_type(Client.util(1), int)


def take_awaitable(x: Awaitable[int]) -> None: ...


aw = afetch("z")
take_awaitable(aw)

for attempt in retry.attempts():
    with attempt:
        assert_type(attempt.number, int)


async def attempts_async() -> None:
    async for attempt in retry.attempts():
        async with attempt as entered:
            assert_type(entered, rs.Attempt)


# Wrong arguments are still caught after decoration:
fetch(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
fetch("x", retries=2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

# A policy's required `on` stays required for type checkers (issue #16: at run
# time, leaving it out gets the same message as on=None):
rs.Retry()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
rs.CircuitBreaker()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
rs.Fallback(to=0)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
rs.Hedge(delay=1.0)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]

timeout = rs.Timeout(5.0)
breaker = rs.CircuitBreaker(on=rs.transient, name="typing")
stack = rs.compose(retry, breaker, timeout)


@retry
@breaker
@timeout
def stacked(n: int, *, label: str = "") -> list[str]:
    return [label] * n


@stack
async def astacked(n: int) -> float:
    return n / 2


assert_type(stacked(2, label="x"), list[str])
assert_type(stack.call(stacked, 1), list[str])
assert_type(breaker.call(fetch, "u"), bytes)
assert_type(timeout.call(fetch, "u", timeout=1.0), bytes)


async def use_stack() -> None:
    assert_type(await astacked(3), float)
    assert_type(await timeout.acall(astacked, 1), float)
    assert_type(await breaker.acall(afetch, "v"), int)
    async with timeout:
        pass


with timeout as deadline:
    assert_type(deadline.remaining(), float)
with breaker:
    pass

stacked("2")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def cap_types(maybe: float | None) -> None:
    """A number given to cap() gives a float back; None (or nothing) may give None."""
    assert_type(rs.deadline.cap(10.0), float)
    assert_type(rs.deadline.cap(3), float)
    assert_type(rs.deadline.cap(), float | None)
    assert_type(rs.deadline.cap(None), float | None)
    assert_type(rs.deadline.cap(maybe), float | None)


# Gates on the engine keep signatures too: the Bulkhead, and a user's own gate.

bulkhead = rs.Bulkhead(max_concurrent=4, max_queue=8)


@bulkhead
def limited(n: int, *, label: str = "") -> list[int]:
    return [n]


@bulkhead
async def alimited(n: int) -> str:
    return str(n)


assert_type(limited(1, label="a"), list[int])
assert_type(bulkhead.call(limited, 2), list[int])


async def use_bulkhead() -> None:
    assert_type(await alimited(3), str)
    assert_type(await bulkhead.acall(alimited, 4), str)
    async with bulkhead as entered:
        assert_type(entered, rs.Bulkhead)


class Counter(GatePolicy):
    def admit(self, target: object, /) -> None:
        return None


counter = Counter()


@counter
def counted(text: str) -> int:
    return len(text)


assert_type(counted("abc"), int)
with counter as held:
    assert_type(held, Counter)


# The RateLimiter keeps signatures; its explicit form yields a permit.

limiter = rs.RateLimiter(rate=60, per=60.0, cost=lambda prompt, max_tokens=256: max_tokens)


@limiter
def paced(prompt: str, max_tokens: int = 256) -> dict[str, int]:
    return {"max_tokens": max_tokens}


@limiter
async def apaced(prompt: str) -> bytes:
    return prompt.encode()


assert_type(paced("hi", max_tokens=3), dict[str, int])
assert_type(limiter.call(paced, "hi"), dict[str, int])
assert_type(limiter.try_acquire(3), bool)
with limiter.acquire(10) as permit:
    assert_type(permit, rs.RateLimitPermit)
    permit.settle(8)


async def use_limiter() -> None:
    assert_type(await apaced("x"), bytes)
    async with limiter.acquire(5) as apermit:
        assert_type(apermit, rs.RateLimitPermit)
    async with rs.RateLimiter(rate=1) as entered:
        assert_type(entered, rs.RateLimiter)


# A breaker whose circuit is awaited (an AsyncCircuitStore): its store= is accepted as is.
def async_breaker(store: rs.AsyncCircuitStore) -> rs.CircuitBreaker:
    return rs.CircuitBreaker(on=rs.transient, name="typing", store=lambda b: store)


async def use_async_breaker(b: rs.CircuitBreaker) -> None:
    assert_type(await b.acall(afetch, "w"), int)
    await b.aopen()
    await b.areset()


# --- the fleet's async rate limiter and retry budget (issue #15) ---------------------------

from resilience.integrations.redis import (  # noqa: E402
    AsyncRedisRateLimiter,
    AsyncRedisRetryBudget,
    AsyncRedisStore,
)

fleet_async = AsyncRedisStore.from_url("redis://localhost:6379/0")
arpm = AsyncRedisRateLimiter(name="rpm", store=fleet_async, rate=600)
abudget = AsyncRedisRetryBudget(name="api", store=fleet_async, ratio=0.1)


@rs.Retry(on=ConnectionError, budget=abudget)
@arpm
async def limited_fetch(url: str, *, tokens: int = 1) -> bytes:
    return url.encode()


async def use_fleet() -> None:
    assert_type(await limited_fetch("u", tokens=2), bytes)
    assert_type(await arpm.acall(afetch, "x"), int)
    assert_type(await abudget.aspend(), bool)
    assert_type(arpm.admitted, float)
    async with arpm as entered:
        assert_type(entered, AsyncRedisRateLimiter)


abreaker = rs.CircuitBreaker(on=rs.transient, name="api", store=fleet_async)


@abreaker
async def guarded(url: str) -> bytes:
    return url.encode()


async def use_fleet_breaker() -> None:
    assert_type(await guarded("u"), bytes)
    await abreaker.aisolate()
