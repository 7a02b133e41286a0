"""RedisRetryBudget against a real redis-server: one retry budget for every process."""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any

import pytest

import resilience as rs
from resilience import backoff
from resilience.testing import FakeClock, capture_events

from .conftest import Runner
from .redis_server import RedisServer, free_port, make_client
from .threads import WAIT, join_all

pytest.importorskip("redis", reason="the redis package is not installed")

import redis

from resilience.integrations.redis import (
    RedisRetryBudget,
    RedisStore,
    StoreRecovered,
    StoreUnavailable,
)

pytest_plugins = ["tests.redis_fixtures"]

KEY = "resilience:budget:{api}"


def budget(
    client: redis.Redis, clock: FakeClock | None = None, *, store: Any = None, **options: Any
) -> RedisRetryBudget:
    options.setdefault("name", "api")
    options.setdefault("per", 60.0)  # no bucket leaves the window during a test
    return RedisRetryBudget(
        store=store or RedisStore(client), clock=clock or FakeClock(), **options
    )


def firsts(b: RedisRetryBudget, n: int) -> None:
    for _ in range(n):
        b.first()


def spend(b: RedisRetryBudget, n: int) -> int:
    """Ask *n* times; return how many retries were allowed."""
    return sum(b.spend() for _ in range(n))


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def window(client: redis.Redis, key: str = KEY) -> tuple[float, int]:
    """The first attempts and the retries in the shared window, as Redis holds them."""
    fields = {text(k): float(v) for k, v in client.hgetall(key).items()}
    return (
        sum(v for k, v in fields.items() if k.startswith("f")),
        int(sum(v for k, v in fields.items() if k.startswith("r"))),
    )


# --- one window for the fleet ---------------------------------------------------------------


def test_two_processes_share_one_window(client: redis.Redis, other: redis.Redis) -> None:
    """Retries allowed overall are at most ratio x (everyone's first attempts) + minimum."""
    a = budget(client, ratio=0.1, minimum=10)
    b = budget(other, ratio=0.1, minimum=10)
    firsts(a, 100)
    firsts(b, 50)
    allowed = sum(x.spend() for _ in range(50) for x in (a, b))
    assert allowed == 10 + 0.1 * 150
    assert window(client) == (150.0, 25)
    assert not a.spend()
    assert not b.spend()
    firsts(b, 10)  # one more retry earned, by b's calls, spendable by a
    assert not a.spend()  # a's ask does not carry b's first attempts
    assert b.spend()
    assert not a.spend()


def test_the_minimum_is_for_the_fleet(client: redis.Redis, other: redis.Redis) -> None:
    """With no traffic, the processes together get *minimum* retries, not each of them."""
    a = budget(client, ratio=0.5, minimum=4)
    b = budget(other, ratio=0.5, minimum=4)
    assert spend(a, 3) == 3
    assert spend(b, 3) == 1
    assert spend(a, 3) == 0


def test_threads_of_two_processes_never_exceed_the_budget(
    client: redis.Redis, other: redis.Redis
) -> None:
    """8 threads asking at once through two budget objects: exactly the budget overall."""
    a = budget(client, ratio=0.1, minimum=10)
    b = budget(other, ratio=0.1, minimum=10)
    firsts(a, 100)
    firsts(b, 50)
    allowed: list[int] = []
    lock = threading.Lock()

    def worker(x: RedisRetryBudget) -> None:
        n = spend(x, 40)
        with lock:
            allowed.append(n)

    threads = [threading.Thread(target=worker, args=(x,)) for x in (a, b) * 4]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert sum(allowed) == 25
    assert window(client) == (150.0, 25)


def test_budgets_of_other_names_or_prefixes_are_apart(client: redis.Redis) -> None:
    """The name and the store's prefix are the budget's identity."""
    a = budget(client, ratio=0.0, minimum=1)
    assert spend(a, 2) == 1
    assert spend(budget(client, name="db", ratio=0.0, minimum=1), 2) == 1
    store = RedisStore(client, prefix="other")
    assert spend(budget(client, store=store, ratio=0.0, minimum=1), 2) == 1
    assert sorted(client.keys()) == [
        b"other:budget:{api}",
        b"resilience:budget:{api}",
        b"resilience:budget:{db}",
    ]


def test_first_attempts_are_spread_over_the_time_they_were_counted(client: redis.Redis) -> None:
    """Counted over ten windows, about a tenth of them are still in the window."""
    clock = FakeClock()
    b = budget(client, clock, per=1.0, ratio=1.0, minimum=0)
    clock.advance(10.0)
    firsts(b, 1000)
    b.spend()
    counted, _ = window(client)
    assert 89.9 < counted <= 100.0  # the window: the 10 newest buckets, the newest one partly


def test_the_window_slides_on_the_servers_clock(client: redis.Redis) -> None:
    """Retries allowed in a window are available again once it has passed (real time)."""
    # 1 s: the three spends must fall in one window however loaded the machine is.
    b = budget(client, per=1.0, ratio=0.0, minimum=2)
    assert spend(b, 3) == 2
    give_up = time.monotonic() + WAIT
    while not b.spend():  # a real 1 s window
        assert time.monotonic() < give_up, "the window never slid"
        time.sleep(0.01)


def test_the_key_is_namespaced_and_expires(client: redis.Redis) -> None:
    """One hash with a hash tag on the name, living *per* seconds after its last write."""
    store = RedisStore(client, prefix="billing")
    assert store.budget_key("api") == "billing:budget:{api}"
    b = budget(client, store=store, per=30.0)
    firsts(b, 3)
    b.spend()
    key = "billing:budget:{api}"
    assert client.keys() == [key.encode()]
    assert client.type(key) == b"hash"
    assert 29_000 < client.pttl(key) <= 30_000
    assert window(client, key) == (3.0, 1)
    fields = {text(k) for k in client.hkeys(key)}
    assert fields == {"h", *(f"f{i}" for i in range(10)), *(f"r{i}" for i in range(10))}


def test_the_key_is_gone_after_the_window(client: redis.Redis) -> None:
    """A budget nobody asks is no key at all, once a window has passed (real expiry)."""
    b = budget(client, per=1.0)  # 1 s: the key is still there when read, however loaded
    b.spend()
    assert 0 < client.pttl(KEY) <= 1_000
    give_up = time.monotonic() + WAIT
    while client.exists(KEY):  # a real 1 s expiry
        assert time.monotonic() < give_up, "the key never expired"
        time.sleep(0.01)


def test_the_success_path_makes_no_round_trip(client: redis.Redis) -> None:
    """first() is a local counter: a thousand calls, no command reaches Redis."""
    b = budget(client)
    b.spend()  # loads the script (EVALSHA answered NOSCRIPT, then EVAL)
    before = commands(client)
    firsts(b, 1000)
    assert commands(client) == before
    b.spend()
    assert commands(client) == before + 1  # one script call for the retry asked


def commands(client: redis.Redis) -> int:
    """Scripts the server has run so far (INFO commandstats; a budget sends nothing else)."""
    stats = client.info("commandstats")
    names = ("cmdstat_evalsha", "cmdstat_eval")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in names)


# --- with Retry ------------------------------------------------------------------------------


def failing() -> object:
    raise ValueError("down")


def test_retry_gives_up_with_reason_budget(
    client: redis.Redis, other: redis.Redis, mode: Runner
) -> None:
    """Another process spent the fleet's budget: this Retry gives up at once."""
    spend(budget(other, ratio=0.0, minimum=2), 2)
    b = budget(client, ratio=0.0, minimum=2)
    retry = rs.Retry(
        on=ValueError, attempts=5, budget=b, backoff=backoff.constant(1.0), clock=FakeClock()
    )
    with capture_events() as events, pytest.raises(ValueError, match="down"):
        mode.run(retry(mode.make(failing)))
    (exhausted,) = events
    assert isinstance(exhausted, rs.RetriesExhausted)
    assert (exhausted.reason, exhausted.attempts) == ("budget", 1)
    assert window(client) == (1.0, 2)  # its first attempt reached Redis with the ask


def test_retry_counts_first_attempts_and_retries_in_redis(client: redis.Redis) -> None:
    """Calls through Retry are first attempts in the shared window; retries are counted."""
    b = budget(client, ratio=0.5, minimum=0)
    retry = rs.Retry(
        on=ValueError, attempts=3, budget=b, backoff=backoff.constant(1.0), clock=FakeClock()
    )
    for _ in range(4):
        assert retry.call(lambda: "ok") == "ok"
    with capture_events() as events, pytest.raises(ValueError, match="down"):
        retry.call(failing)
    # 5 first attempts: 2.5 retries allowed; the 2 asked for were.
    assert [type(e).__name__ for e in events] == [
        "RetryScheduled",
        "RetryScheduled",
        "RetriesExhausted",
    ]
    assert events[-1].reason == "attempts"  # type: ignore[attr-defined]
    assert window(client) == (5.0, 2)
    assert "RedisRetryBudget(name='api'" in retry.explain()


# --- Redis unreachable -----------------------------------------------------------------------


def test_redis_down_falls_back_to_a_local_budget_and_recovers(own_server: RedisServer) -> None:
    """A local RetryBudget with the same settings; one StoreUnavailable; StoreRecovered later."""
    clock = FakeClock()
    client = make_client(own_server.url)
    b = budget(client, clock, store=RedisStore(client, reconnect=5.0), ratio=0.5, minimum=1)
    assert b.spend()  # Redis: the fleet's minimum
    own_server.kill()
    with capture_events() as events:
        firsts(b, 4)
        allowed = spend(b, 5)  # this process alone: 1 + 0.5 x 4
        assert allowed == 3
        assert spend(b, 3) == 0  # no round trip tried before reconnect
    (lost,) = events
    assert isinstance(lost, StoreUnavailable)
    assert (lost.name, lost.fallback) == ("api", "local")
    assert isinstance(lost.error, redis.exceptions.ConnectionError)
    # Back up (an empty server on the same port).
    own_server.start(own_server.port)
    with capture_events() as events:
        assert not b.spend()  # still local until the reconnect interval has passed
        assert events == []
        clock.advance(5.0)
        assert b.spend()  # Redis again: a fresh shared window
    (recovered,) = events
    assert isinstance(recovered, StoreRecovered)
    assert recovered.downtime >= 5.0
    assert window(client) == (0.0, 1)


def test_redis_unreachable_from_the_start(redis_server: RedisServer) -> None:
    """Nothing listens: every ask is answered locally, no Redis error escapes, one event."""
    clock = FakeClock()
    client = make_client(f"redis://127.0.0.1:{free_port()}/0")
    hook_events: list[rs.Event] = []
    b = budget(client, clock, ratio=0.0, minimum=2, hooks=[hook_events.append])
    assert spend(b, 4) == 2
    clock.advance(1.0)  # the default reconnect: tries again, fails quietly
    assert spend(b, 1) == 0
    assert [type(e).__name__ for e in hook_events] == ["StoreUnavailable"]


# --- configuration ---------------------------------------------------------------------------


def test_it_is_a_budget_with_its_settings(client: redis.Redis) -> None:
    """A Budget for Retry; its settings and a repr without the client."""
    store = RedisStore(client)
    b = RedisRetryBudget(
        name="api", store=store, ratio=0.2, minimum=3, per=datetime.timedelta(seconds=2)
    )
    assert isinstance(b, rs.Budget)
    assert (b.name, b.store, b.ratio, b.minimum, b.per) == ("api", store, 0.2, 3, 2.0)
    assert repr(b) == "RedisRetryBudget(name='api', ratio=0.2, minimum=3, per=2.0)"
    assert RedisRetryBudget.__module__ == "resilience.integrations.redis"
    d = RedisRetryBudget(name="api", store=store)
    assert (d.ratio, d.minimum, d.per) == (0.1, 10, 1.0)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"name": ""}, ValueError, "needs a name"),
        ({"name": 5}, TypeError, r"needs a name \(a str\).* got int: 5"),
        ({"name": "a{b}"}, ValueError, "name must not contain braces"),
        ({"store": "redis"}, TypeError, "store must be a RedisStore"),
        ({"ratio": -0.1}, ValueError, "ratio must be a finite number >= 0"),
        ({"ratio": "0.1"}, TypeError, "ratio must be a number"),
        ({"minimum": -1}, ValueError, "minimum"),
        ({"minimum": 1.5}, TypeError, "minimum"),
        ({"per": 0}, ValueError, "per must be a finite number of seconds > 0"),
        ({"per": 0.001}, ValueError, "per must be at least 0.01 seconds with a RedisStore"),
        ({"per": 1e10}, ValueError, "per must be at most"),
        ({"hooks": 5}, TypeError, "hooks"),
        ({"clock": object()}, TypeError, "clock must have now"),
    ],
)
def test_bad_configuration_names_the_parameter(
    client: redis.Redis, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"name": "api", "store": RedisStore(client), **options}
    with pytest.raises(error, match=match):
        RedisRetryBudget(**arguments)


def test_name_and_store_are_required(client: redis.Redis) -> None:
    with pytest.raises(TypeError):
        RedisRetryBudget(name="api")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RedisRetryBudget(store=RedisStore(client))  # type: ignore[call-arg]
