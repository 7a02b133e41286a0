"""RetryAfterPause against a real redis-server: one 429 pauses every caller, sync and async."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events, set_testing

from .conftest import Runner
from .redis_server import RedisServer, make_client
from .threads import WAIT

pytest.importorskip("redis", reason="the redis package is not installed")

import redis

from resilience.integrations.redis import (
    CallDelayed,
    PausedError,
    PauseStarted,
    RedisStore,
    RetryAfterPause,
    StoreUnavailable,
)

pytest_plugins = ["tests.redis_fixtures"]

KEY = "resilience:pause:{api}"


class RateLimited(Exception):
    """A 429 carrying Retry-After, as the HTTP clients' status errors do."""

    status_code = 429

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"429, retry after {retry_after}")
        self.retry_after = retry_after


class BadRequest(Exception):
    """A 400 that carries Retry-After anyway: not worth retrying, so no pause."""

    status_code = 400
    retry_after = 30.0


def pause(store: RedisStore, clock: FakeClock | None = None, **options: Any) -> RetryAfterPause:
    return RetryAfterPause(
        on=rs.transient, name="api", store=store, clock=clock or FakeClock(), **options
    )


def limited(after: float | None = 2.0) -> Any:
    def call() -> None:
        raise RateLimited(after)

    return call


def ok() -> str:
    return "ok"


def test_a_429_pauses_every_process(client: redis.Redis, mode: Runner) -> None:
    """One caller's Retry-After makes another process's next call wait it out first."""
    store = RedisStore(client)
    hit, other_clock = pause(store), FakeClock()
    other = pause(store, other_clock)
    with capture_events() as events:
        with pytest.raises(RateLimited):
            mode.run(hit(mode.make(limited(2.0))))
        assert 1_000 < client.pttl(KEY) <= 2_000  # the server's clock measures it
        assert mode.run(other(mode.make(ok))) == "ok"
    (waited,) = other_clock.sleeps
    assert 1.0 < waited <= 2.0  # what was left of the pause when it was read
    started = [e for e in events if isinstance(e, PauseStarted)]
    delayed = [e for e in events if isinstance(e, CallDelayed)]
    assert [e.retry_after for e in started] == [2.0]
    assert [e.delay for e in delayed] == [waited]


def test_the_caller_that_got_the_429_pauses_too(client: redis.Redis) -> None:
    """Its own next call waits, without a round trip: the pause is known locally at once."""
    clock = FakeClock()
    p = pause(RedisStore(client, refresh=60.0), clock)
    with pytest.raises(RateLimited):
        p.call(limited(3.0))
    assert p.call(ok) == "ok"
    (waited,) = clock.sleeps
    assert 2.0 < waited <= 3.0


def test_no_pause_no_wait_no_round_trip(client: redis.Redis) -> None:
    """Calls while nothing is paused run at once; a fresh cache means no Redis read."""
    clock = FakeClock()
    p = pause(RedisStore(client), clock)
    assert p.call(ok) == "ok"
    before = reads(client)
    for _ in range(1000):
        p.call(ok)
    assert reads(client) == before
    assert clock.sleeps == []
    assert client.exists(KEY) == 0


def reads(client: redis.Redis) -> int:
    """Commands that can read a pause the server has run so far (INFO commandstats)."""
    stats = client.info("commandstats")
    names = ("cmdstat_pttl", "cmdstat_get", "cmdstat_evalsha", "cmdstat_eval")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in names)


def test_a_pause_is_waited_out_once_on_a_fake_clock(client: redis.Redis) -> None:
    """With a FakeClock the server's key outlives the virtual wait: the pause waited
    out is over for this process all the same; a new pause is waited out again."""
    clock = FakeClock()
    p = pause(RedisStore(client), clock)
    p.start(2.0)
    assert [p.call(ok) for _ in range(3)] == ["ok"] * 3
    assert clock.sleeps == [2.0]
    assert p.remaining == 0.0
    assert client.exists(KEY) == 1  # still there on the server's clock
    client.delete(KEY)
    p.start(3.0)  # a new pause
    p.call(ok)
    p.call(ok)
    assert clock.sleeps == [2.0, 3.0]


def test_the_pause_only_grows(client: redis.Redis) -> None:
    """A shorter Retry-After never shortens a pause in force."""
    p = pause(RedisStore(client))
    p.start(10.0)
    p.start(1.0)
    assert 9_000 < client.pttl(KEY) <= 10_000


def test_failures_without_retry_after_or_not_retried_start_nothing(client: redis.Redis) -> None:
    """Only failures the classifier retries and that carry Retry-After start a pause."""
    p = pause(RedisStore(client))
    with pytest.raises(RateLimited):
        p.call(limited(None))
    with pytest.raises(BadRequest):
        p.call(lambda: (_ for _ in ()).throw(BadRequest()))
    assert client.exists(KEY) == 0


def test_a_pause_longer_than_max_wait_rejects_at_once(client: redis.Redis) -> None:
    """A caller that would wait beyond max_wait gets PausedError and nothing runs."""
    clock = FakeClock()
    p = pause(RedisStore(client), clock, max_wait=5.0)
    p.start(30.0)
    ran: list[int] = []
    with capture_events() as events, pytest.raises(PausedError) as info:
        p.call(lambda: ran.append(1))
    assert ran == []
    assert clock.sleeps == []
    assert info.value.name == "api"
    assert 25.0 < info.value.retry_after <= 30.0
    assert isinstance(info.value, rs.RejectedError)
    (rejected,) = events
    assert isinstance(rejected, rs.CallRejected)
    assert rejected.reason == "paused"


def test_a_pause_past_the_deadline_rejects_at_once(client: redis.Redis) -> None:
    """Waiting past the innermost deadline would be in vain: PausedError instead."""
    clock = FakeClock()
    p = pause(RedisStore(client), clock)
    p.start(10.0)
    with pytest.raises(PausedError):
        rs.compose(rs.Timeout(5.0, clock=clock), p).call(ok)
    assert rs.compose(rs.Timeout(20.0, clock=clock), p).call(ok) == "ok"


def test_max_pause_caps_what_one_response_can_start(client: redis.Redis) -> None:
    """A Retry-After of a day pauses the fleet for max_pause at most."""
    p = pause(RedisStore(client), max_pause=60.0, max_wait=None)
    with pytest.raises(RateLimited):
        p.call(limited(86_400.0))
    assert 59_000 < client.pttl(KEY) <= 60_000


def test_the_pause_expires_on_the_server(client: redis.Redis) -> None:
    """The key is the pause: it is gone when the pause ends, by Redis's clock."""
    p = pause(RedisStore(client, refresh=0))
    p.start(1.0)  # 1 s: the key is still there when read, however loaded the machine
    assert client.exists(KEY) == 1
    give_up = time.monotonic() + WAIT
    while client.exists(KEY):  # a real 1 s expiry
        assert time.monotonic() < give_up, "the pause never expired"
        time.sleep(0.01)
    assert p.remaining == 0.0


def test_testing_mode_makes_waits_zero(client: redis.Redis) -> None:
    """set_testing(True): the pause is honoured with a zero wait."""
    clock = FakeClock()
    p = pause(RedisStore(client), clock)
    p.start(5.0)
    with set_testing(True):
        assert p.call(ok) == "ok"
    assert clock.sleeps == []


def test_inside_retry_the_waits_do_not_add_up(client: redis.Redis) -> None:
    """Retry sleeps the Retry-After floor; the pause then has nothing left to add."""
    clock = FakeClock()
    p = pause(RedisStore(client, refresh=60.0), clock)
    retry = rs.Retry(on=rs.transient, attempts=2, clock=clock, backoff=rs.backoff.constant(0.1))
    outcomes = iter([RateLimited(2.0), None])

    def flaky() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    assert rs.compose(retry, p).call(flaky) == "ok"
    assert clock.sleeps == [2.0]


def test_streams_wait_and_start_pauses(client: redis.Redis) -> None:
    """Generators and async generators wait before the first item; a failure starts a pause."""
    clock = FakeClock()
    p = pause(RedisStore(client, refresh=60.0), clock)

    @p
    def gen() -> Iterator[int]:
        yield 1
        raise RateLimited(4.0)

    @p
    async def agen() -> AsyncIterator[int]:
        yield 1
        yield 2

    with pytest.raises(RateLimited):
        list(gen())

    async def consume() -> list[int]:
        return [item async for item in agen()]

    assert asyncio.run(consume()) == [1, 2]
    (waited,) = clock.sleeps
    assert 3.0 < waited <= 4.0


def test_results_can_start_a_pause(client: redis.Redis) -> None:
    """A returned response with 429 and Retry-After pauses too (results are classified)."""

    class Response:
        status_code = 429
        headers = {"Retry-After": "7"}  # noqa: RUF012

    p = pause(RedisStore(client))
    assert isinstance(p.call(Response), Response)
    assert 6_000 < client.pttl(KEY) <= 7_000


def test_cancellation_is_never_classified(client: redis.Redis) -> None:
    """KeyboardInterrupt passes through and starts nothing."""
    p = pause(RedisStore(client))
    with pytest.raises(KeyboardInterrupt):
        p.call(lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert client.exists(KEY) == 0


def test_redis_down_keeps_a_local_pause(own_server: RedisServer) -> None:
    """Without Redis, the pause still holds within the process; one StoreUnavailable."""
    clock = FakeClock()
    p = pause(RedisStore(make_client(own_server.url), refresh=0), clock)
    own_server.kill()
    with capture_events() as events:
        with pytest.raises(RateLimited):
            p.call(limited(2.0))
        assert p.call(ok) == "ok"
    assert clock.sleeps == [2.0]
    names = [type(e).__name__ for e in events]
    assert names.count("StoreUnavailable") == 1
    (lost,) = (e for e in events if isinstance(e, StoreUnavailable))
    assert lost.fallback == "local"


def test_bad_configuration_fails_at_construction(client: redis.Redis) -> None:
    """on, name and store are required; durations are checked."""
    store = RedisStore(client)
    with pytest.raises(TypeError):
        RetryAfterPause(name="api", store=store)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs a name"):
        RetryAfterPause(on=rs.transient, name="", store=store)
    with pytest.raises(TypeError, match="store must be a RedisStore"):
        RetryAfterPause(on=rs.transient, name="api", store=client)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_wait must be a finite number of seconds >= 0"):
        RetryAfterPause(on=rs.transient, name="api", store=store, max_wait=-1)
    with pytest.raises(TypeError, match=r"needs a name \(a str\).* got int: 5"):
        RetryAfterPause(on=rs.transient, name=5, store=store)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pause must be at most"):
        RetryAfterPause(on=rs.transient, name="api", store=store, max_pause=1e16)
    with pytest.raises(ValueError, match="seconds must be"):
        pause(store).start(0)
    assert "name='api'" in repr(pause(store))


def test_paused_error_pickles() -> None:
    """PausedError keeps its fields and its PEP 678 notes across pickling."""
    original = PausedError("api", 3.5)
    original.add_note("resilience: gave up after 2 attempts")
    error = pickle.loads(pickle.dumps(original))
    assert (error.name, error.retry_after) == ("api", 3.5)
    assert "3.5 s" in str(error)
    assert error.__notes__ == ["resilience: gave up after 2 attempts"]


def test_explain_says_what_the_pause_does(client: redis.Redis) -> None:
    """describe(): the rules that start a pause, its bounds, its key, and the pause now."""
    p = pause(RedisStore(client), max_wait=30.0)
    p.start(10.0)
    description = p.describe()
    assert description.title.startswith("RetryAfterPause 'api'")
    text = "\n".join(description.details)
    assert "status 429" in text
    assert "'resilience:pause:{api}'" in text
    assert "at most 30 s" in text
    assert "paused now: for " in text
    assert (description.attempts, description.sleeps, description.sleeps_retry_after) == (
        1,
        0.0,
        30.0,
    )
    assert "RetryAfterPause 'api'" in p.explain()
