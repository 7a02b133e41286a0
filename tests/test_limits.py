"""Tests of `resilience.limits`: the rules of AIMD and Gradient, bad input, and a simulation."""

from __future__ import annotations

import heapq
import math
import random
import re
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

import resilience as rs
from resilience.engine import Wait, Waiter
from resilience.limits import AIMD, Gradient, Limit, overload
from resilience.testing import FakeClock

# --------------------------------------------------------------------------
# AIMD: exact arithmetic.


def test_aimd_defaults() -> None:
    """AIMD starts at 20 between 1 and 200, backs off by 0.9, with no timeout."""
    aimd = AIMD()
    assert (aimd.limit, aimd.minimum, aimd.maximum) == (20, 1, 200)
    assert aimd.backoff == 0.9
    assert aimd.timeout is None


def test_aimd_drop_cuts_to_floor_of_limit_times_backoff() -> None:
    """Each drop cuts the limit to floor(limit * backoff), and update returns it."""
    aimd = AIMD(initial=20)
    assert [aimd.update(0.1, 20, True) for _ in range(4)] == [18, 16, 14, 12]
    assert aimd.limit == 12


def test_aimd_drop_rounds_down_from_a_product_a_hair_short() -> None:
    """30 * 0.7 is 20.999999999999996 in floats: the cut gives 21, not 20."""
    assert AIMD(initial=30, backoff=0.7).update(0.1, 30, True) == 21


def test_aimd_drop_never_below_minimum() -> None:
    """A drop at the minimum leaves it there."""
    assert AIMD(initial=1).update(0.1, 1, True) == 1
    aimd = AIMD(initial=6, minimum=5)
    assert [aimd.update(0.1, 6, True) for _ in range(2)] == [5, 5]


def test_aimd_grows_by_one_per_limit_successes() -> None:
    """One slot more after `limit` successes at full use: about one per round trip."""
    aimd = AIMD(initial=4)
    assert [aimd.update(0.1, 4, False) for _ in range(4)] == [4, 4, 4, 5]
    assert [aimd.update(0.1, 5, False) for _ in range(5)] == [5, 5, 5, 5, 6]


def test_aimd_success_counts_at_half_the_limit_in_use() -> None:
    """A success counts when inflight * 2 >= limit, not below."""
    aimd = AIMD(initial=10)
    for _ in range(50):
        aimd.update(0.1, 4, False)
    assert aimd.limit == 10
    for _ in range(10):
        aimd.update(0.1, 5, False)
    assert aimd.limit == 11


def test_aimd_drop_starts_the_count_over() -> None:
    """Successes before a drop do not count towards the next increase."""
    aimd = AIMD(initial=4)
    for _ in range(3):
        aimd.update(0.1, 4, False)
    assert aimd.update(0.1, 4, True) == 3
    assert [aimd.update(0.1, 3, False) for _ in range(3)] == [3, 3, 4]


def test_aimd_never_above_maximum() -> None:
    """Successes at the maximum leave it there."""
    aimd = AIMD(initial=3, maximum=3)
    for _ in range(100):
        aimd.update(0.1, 3, False)
    assert aimd.limit == 3


def test_aimd_call_slower_than_timeout_counts_as_a_drop() -> None:
    """With a timeout, a success slower than it cuts the limit; one exactly at it counts up."""
    aimd = AIMD(initial=2, timeout=1.0)
    assert aimd.update(1.0, 2, False) == 2
    assert aimd.update(1.0, 2, False) == 3
    assert aimd.update(1.5, 3, False) == 2


def test_aimd_timeout_accepts_a_timedelta() -> None:
    """timeout= may be a timedelta, kept as float seconds."""
    assert AIMD(timeout=timedelta(milliseconds=250)).timeout == 0.25


def test_aimd_repr_shows_limit_and_settings() -> None:
    """The repr says the current limit and every setting."""
    aimd = AIMD(initial=10, maximum=50, timeout=2.0)
    aimd.update(0.1, 10, True)
    assert repr(aimd) == "AIMD(limit=9, minimum=1, maximum=50, backoff=0.9, timeout=2.0)"


# --------------------------------------------------------------------------
# Gradient: directions and bounds.


def feed(limit: Limit, rtt: float, times: int, *, inflight: int | None = None) -> int:
    """Report *times* calls of *rtt* seconds at full use (or at *inflight*); return the limit."""
    for _ in range(times):
        limit.update(rtt, limit.limit if inflight is None else inflight, False)
    return limit.limit


def test_gradient_defaults() -> None:
    """Gradient starts at 20 between 1 and 200, and knows no latency yet."""
    gradient = Gradient()
    assert (gradient.limit, gradient.minimum, gradient.maximum) == (20, 1, 200)
    assert gradient.baseline is None
    assert gradient.recent is None


def test_gradient_grows_while_latency_stays_at_baseline() -> None:
    """At full use and steady latency the limit grows by sqrt(limit) * smoothing per round trip."""
    gradient = Gradient(initial=16)
    feed(gradient, 0.1, 16)  # one round trip: +0.2 * sqrt(16) = +0.8
    assert gradient.limit == 16
    feed(gradient, 0.1, 17)
    assert gradient.limit == 17
    assert feed(gradient, 0.1, 2000) > 40
    assert gradient.baseline == pytest.approx(0.1)


def test_gradient_constant_queue_size() -> None:
    """queue_size=4 adds 4 * smoothing slots per round trip, whatever the limit."""
    gradient = Gradient(initial=100, queue_size=4)
    feed(gradient, 0.1, 100)
    assert gradient.limit == 100  # 100.8
    feed(gradient, 0.1, 100)
    assert gradient.limit == 101  # 101.6


def test_gradient_never_above_maximum() -> None:
    """However long the latency stays low, the limit stops at the maximum."""
    gradient = Gradient(initial=5, maximum=8)
    assert feed(gradient, 0.1, 1000) == 8


def test_gradient_shrinks_as_latency_rises_past_tolerance() -> None:
    """Latency past tolerance * baseline shrinks the limit; within it, it does not."""
    gradient = Gradient(initial=40)
    feed(gradient, 0.1, 10)
    within = Gradient(initial=40)
    feed(within, 0.1, 10)
    feed(within, 0.14, 40)
    assert within.limit >= 40
    feed(gradient, 0.3, 40)  # three times the baseline: gradient 0.5
    assert 30 <= gradient.limit < 40


def test_gradient_shrinks_by_at_most_half_per_round_trip_times_smoothing() -> None:
    """An extreme latency shrinks no faster than a gradient of 0.5 allows."""
    gradient = Gradient(initial=100, smoothing=1.0)
    feed(gradient, 0.1, 10)
    start = gradient.limit
    feed(gradient, 100.0, 10)
    assert gradient.limit >= start - 10 * 0.5 - 1


def test_gradient_never_below_minimum() -> None:
    """Sustained high latency stops at the minimum."""
    gradient = Gradient(initial=30, minimum=10, long_window=10**6)
    feed(gradient, 0.1, 10)
    latency = 1.0
    for _ in range(3000):  # latency falls as the limit does, so it is a queue: no rebase
        gradient.update(latency, gradient.limit, False)
        latency = 0.1 + 0.03 * gradient.limit
    assert gradient.limit == 10


def test_gradient_drop_cuts_at_once() -> None:
    """A drop multiplies the limit by backoff at once, never below the minimum."""
    gradient = Gradient(initial=20)
    assert gradient.update(0.1, 20, True) == 18
    assert Gradient(initial=2, minimum=2).update(0.1, 2, True) == 2
    assert Gradient(initial=30, backoff=0.7).update(0.1, 30, True) == 21


def test_gradient_dropped_call_teaches_no_latency() -> None:
    """A drop (often a quick refusal) does not pull the latency averages down."""
    gradient = Gradient()
    feed(gradient, 0.1, 20)
    gradient.update(0.001, 20, True)
    assert gradient.recent == pytest.approx(0.1)


def test_gradient_idle_limit_does_not_move() -> None:
    """Below half the limit in use, the latency is learned but the limit stays."""
    gradient = Gradient(initial=20)
    assert feed(gradient, 0.1, 100, inflight=9) == 20
    assert feed(gradient, 1.0, 100, inflight=9) == 20
    assert gradient.baseline is not None


@pytest.mark.parametrize("rtt", [0.0, -1.0, math.nan])
def test_gradient_ignores_a_call_that_took_no_time(rtt: float) -> None:
    """A duration of zero (a fake clock), negative or NaN teaches nothing and raises nothing."""
    gradient = Gradient()
    assert feed(gradient, rtt, 50) == 20
    assert gradient.baseline is None


def test_gradient_baseline_learned_under_overload_catches_up() -> None:
    """A baseline twice the recent latency decays quickly towards it."""
    gradient = Gradient(initial=20)
    feed(gradient, 1.0, 10)
    feed(gradient, 0.1, 100)
    assert gradient.baseline is not None
    assert gradient.baseline < 0.2


def test_gradient_adopts_a_latency_that_does_not_follow_the_limit() -> None:
    """When the limit halves and the latency stays, the latency is the dependency's new normal."""
    gradient = Gradient(initial=40)
    feed(gradient, 0.1, 20)
    for _ in range(20_000):
        gradient.update(0.3, gradient.limit, False)
        if gradient.baseline == pytest.approx(0.3, rel=0.05):
            break
    assert gradient.baseline == pytest.approx(0.3, rel=0.05)
    low = gradient.limit
    assert 10 <= low <= 20
    assert feed(gradient, 0.3, 500) > low  # grows again


def test_gradient_repr_shows_limit_latency_and_settings() -> None:
    """The repr says the limit, the latencies learned and every setting."""
    assert repr(Gradient(initial=10, queue_size=3)) == (
        "Gradient(limit=10, baseline=None, recent=None, minimum=1, maximum=200, "
        "smoothing=0.2, tolerance=1.5, long_window=600, queue_size=3, backoff=0.9)"
    )
    gradient = Gradient()
    feed(gradient, 0.25, 10)
    assert "limit=20, baseline=0.25, recent=0.25," in repr(gradient)


# --------------------------------------------------------------------------
# Bad configuration fails at construction, naming the parameter and the value.

NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize("cls", [AIMD, Gradient])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minimum": 0}, "minimum must be >= 1, got 0"),
        ({"maximum": 0}, "maximum must be >= 1, got 0"),
        ({"initial": 0}, "initial must be >= 1, got 0"),
        ({"initial": 300}, "initial must be between minimum (1) and maximum (200), got 300"),
        (
            {"initial": 2, "minimum": 5},
            "initial must be between minimum (5) and maximum (200), got 2",
        ),
        ({"minimum": 10, "maximum": 5, "initial": 5}, "maximum must be >= minimum (10), got 5"),
        ({"backoff": 1.0}, "backoff must be a number > 0 and < 1, got 1.0"),
        ({"backoff": 0}, "backoff must be a number > 0 and < 1, got 0"),
        ({"backoff": -0.5}, "backoff must be a number > 0 and < 1, got -0.5"),
        ({"backoff": NAN}, "backoff must be a number > 0 and < 1, got nan"),
    ],
)
def test_bad_value_names_parameter_and_value(
    cls: Callable[..., Limit], kwargs: dict[str, Any], message: str
) -> None:
    """A ValueError names the parameter and the value given."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be a finite number of seconds > 0, got 0"),
        ({"timeout": -1.0}, "timeout must be a finite number of seconds > 0, got -1.0"),
        ({"timeout": NAN}, "timeout must be a finite number of seconds > 0, got nan"),
        ({"timeout": INF}, "timeout must be a finite number of seconds > 0, got inf"),
    ],
)
def test_aimd_bad_timeout(kwargs: dict[str, Any], message: str) -> None:
    """AIMD's timeout is a finite number of seconds > 0, or None."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        AIMD(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smoothing": 0}, "smoothing must be a number > 0 and <= 1, got 0"),
        ({"smoothing": 1.5}, "smoothing must be a number > 0 and <= 1, got 1.5"),
        ({"smoothing": NAN}, "smoothing must be a number > 0 and <= 1, got nan"),
        ({"tolerance": 0.9}, "tolerance must be a finite number >= 1, got 0.9"),
        ({"tolerance": NAN}, "tolerance must be a finite number >= 1, got nan"),
        ({"tolerance": INF}, "tolerance must be a finite number >= 1, got inf"),
        ({"tolerance": 10**400}, f"tolerance must be a finite number >= 1, got {10**400}"),
        ({"long_window": 0}, "long_window must be >= 1, got 0"),
        ({"queue_size": 0}, "queue_size must be >= 1, got 0"),
    ],
)
def test_gradient_bad_value(kwargs: dict[str, Any], message: str) -> None:
    """Gradient's ratios and counts are checked, NaN and infinity included."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Gradient(**kwargs)


@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "message"),
    [
        (AIMD, (), {"initial": 2.5}, "initial must be an int >= 1, got float: 2.5"),
        (AIMD, (), {"minimum": True}, "minimum must be an int >= 1, got bool: True"),
        (AIMD, (), {"backoff": "0.9"}, "backoff must be a number > 0 and < 1, got str: '0.9'"),
        (AIMD, (), {"backoff": True}, "backoff must be a number > 0 and < 1, got bool: True"),
        (AIMD, (), {"timeout": "1"}, "timeout must be seconds"),
        (
            Gradient,
            (),
            {"smoothing": None},
            "smoothing must be a number > 0 and <= 1, got NoneType: None",
        ),
        (Gradient, (), {"long_window": 600.0}, "long_window must be an int >= 1, got float"),
        (Gradient, (), {"queue_size": "4"}, "queue_size must be an int >= 1, got str"),
        (AIMD, (10,), {}, "positional"),  # keyword-only
        (Gradient, (10,), {}, "positional"),
    ],
)
def test_bad_type(
    cls: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    """A value of the wrong type is a TypeError naming the parameter; bool is no number."""
    with pytest.raises(TypeError, match=re.escape(message)):
        cls(*args, **kwargs)


def test_valid_edges_are_accepted() -> None:
    """The closed ends of each range are accepted: smoothing 1, tolerance 1, equal bounds."""
    gradient = Gradient(initial=5, minimum=5, maximum=5, smoothing=1, tolerance=1, long_window=1)
    assert gradient.limit == 5
    assert AIMD(initial=1, minimum=1, maximum=1, backoff=0.01).limit == 1


# --------------------------------------------------------------------------
# The protocol.


@pytest.mark.parametrize("cls", [AIMD, Gradient])
def test_builtins_are_limits(cls: Callable[[], Limit]) -> None:
    """AIMD and Gradient satisfy the Limit protocol."""
    assert isinstance(cls(), Limit)


class Halving:
    """A user's own limit: halves on a drop, else stays."""

    def __init__(self) -> None:
        self.value = 16

    @property
    def limit(self) -> int:
        return self.value

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        if dropped:
            self.value = max(1, self.value // 2)
        return self.value


def test_user_written_limit_satisfies_the_protocol() -> None:
    """A plain class with `limit` and `update` is a Limit, statically and at runtime."""
    mine: Limit = Halving()
    assert isinstance(mine, Limit)
    assert mine.update(0.1, 16, True) == 8
    assert not isinstance(object(), Limit)


def test_limit_moves_a_bulkhead() -> None:
    """A Bulkhead with an AIMD limit cuts it when a call fails with an overload."""
    aimd = AIMD(initial=10)
    bulkhead = rs.Bulkhead(max_concurrent=aimd)

    class Busy(Exception):
        status_code = 503

    @bulkhead
    def call() -> None:
        raise Busy

    with pytest.raises(Busy):
        call()
    assert aimd.limit == bulkhead.limit == 9


# --------------------------------------------------------------------------
# overload.


class Status(Exception):
    """An HTTP error carrying a status, as requests/httpx/openai errors do."""

    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class Response:
    """A returned response with a status."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def httpx_read_timeout() -> Exception:
    """An instance of a class that looks like httpx.ReadTimeout, without httpx."""
    base = type("TimeoutException", (Exception,), {"__module__": "httpx"})
    cls = type("ReadTimeout", (base,), {"__module__": "httpx._exceptions"})
    error: Exception = cls("read timed out")
    return error


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (Status(429), "rate_limit"),
        (Status(503), "server"),
        (Response(429), "rate_limit"),
        (Response(503), "server"),
        (TimeoutError(), "timeout"),
        (rs.TimeoutExceededError(1.0), "timeout"),
        (httpx_read_timeout(), "timeout"),
    ],
)
def test_overload_trips_on(outcome: object, kind: str) -> None:
    """429, 503 and timeouts (builtin and third-party) are overloads: trip, with a kind."""
    verdict = overload.classify(outcome)
    assert verdict.trip
    assert verdict.kind == kind


@pytest.mark.parametrize(
    "outcome",
    [Status(500), Status(502), Status(400), ConnectionError(), ValueError(), Response(200), None],
)
def test_overload_ignores_other_outcomes(outcome: object) -> None:
    """Other failures and successes say nothing about concurrency: no trip."""
    assert not overload.classify(outcome).trip


def test_overload_is_an_error_classifier_reading_results() -> None:
    """overload is an ErrorClassifier whose status rules match returned responses too."""
    assert isinstance(overload, rs.ErrorClassifier)
    assert overload.handles_results
    assert all(rule.trip for rule in overload.rules)


# --------------------------------------------------------------------------
# Simulation: a closed loop on virtual time against a dependency of capacity N.
#
# The dependency answers in BASE seconds (+-10 % seeded jitter) while it holds
# at most N calls; past N its latency rises by SLOPE * BASE for every N extra
# calls, and it refuses a call (dropped) with probability
# min(1, DROP_SLOPE * (c - N) / N), either quickly (a 429, in a fifth of
# BASE) or slowly (a timeout, when the call's latency is over). c counts the
# calls running once every call starting at that instant has started.
#
# 4 * max(N) clients call it in a closed loop (each calls again as soon as
# its call ends) through a model of the bulkhead: a call starts while fewer
# than `limit.limit` run, else waits in a FIFO queue (the clients are alike,
# so a count of waiters stands for it); every completion feeds
# `update(rtt, inflight_at_start, dropped)`. No threads, no sleeping: a heap
# of completion events on virtual time. The limit is sampled every SAMPLE
# seconds of virtual time; a phase is judged on its last third.

BASE = 0.1
SLOPE = 4.0
DROP_SLOPE = 2.0
JITTER = 0.1
SAMPLE = 0.1
SEEDS = [1, 2, 3]
PHASE = 40.0  # seconds: 100 to 400 round trips


@dataclass(frozen=True)
class Phase:
    """A stretch of the run: the dependency's capacity, how long, its unloaded latency."""

    capacity: int
    seconds: float = PHASE
    base: float = BASE


@dataclass
class Run:
    """What a simulation saw, per phase: the limit sampled over time, calls and drops."""

    samples: list[list[int]]
    calls: int = 0
    drops: int = 0


class Dependency:
    """The modelled dependency: the latency and the refusals of calls starting together."""

    def __init__(self, *, seed: int, drop_slope: float, refusal: str) -> None:
        self.rng = random.Random(seed)
        self.drop_slope = drop_slope
        self.refused = 0.2 if refusal == "quick" else None
        self.capacity, self.base = 20, BASE

    def enter(self, phase: Phase) -> None:
        """The dependency's capacity and unloaded latency become *phase*'s."""
        self.capacity, self.base = phase.capacity, phase.base

    def start(self, running: int, started: int) -> list[tuple[float, bool]]:
        """(rtt, dropped) of *started* calls starting at one instant beside *running* ones."""
        rng, base, refused = self.rng, self.base, self.refused
        # Calls that start at one instant load the dependency together.
        excess = max(0, running + started - self.capacity) / self.capacity
        calls = []
        for _ in range(started):
            spread = 1.0 + JITTER * (2.0 * rng.random() - 1.0)
            dropped = rng.random() < self.drop_slope * excess
            slowed = 1.0 + SLOPE * excess
            rtt = base * spread * (refused if dropped and refused is not None else slowed)
            calls.append((rtt, dropped))
        return calls


def simulate(
    limit: Limit,
    phases: Sequence[Phase],
    *,
    seed: int,
    drop_slope: float = DROP_SLOPE,
    refusal: str = "quick",
) -> Run:
    """Run the closed loop of clients through *limit* against the modelled dependency."""
    dependency = Dependency(seed=seed, drop_slope=drop_slope, refusal=refusal)
    clients = 4 * max(phase.capacity for phase in phases)
    events: list[tuple[float, int, float, int, bool]] = []  # end, seq, rtt, inflight, dropped
    waiting, running, now, seq = clients, 0, 0.0, 0
    run = Run(samples=[])

    def admit() -> None:
        nonlocal waiting, running, seq
        started = min(waiting, max(0, limit.limit - running))
        if not started:
            return
        waiting -= started
        calls = dependency.start(running, started)
        for position, (rtt, dropped) in enumerate(calls, start=running + 1):
            seq += 1
            heapq.heappush(events, (now + rtt, seq, rtt, position, dropped))
        running += started

    end = 0.0
    for phase in phases:
        dependency.enter(phase)
        end += phase.seconds
        samples: list[int] = []
        next_sample = now
        admit()
        while events and events[0][0] <= end:
            finish, _, rtt, inflight, dropped = heapq.heappop(events)
            while next_sample <= finish:
                samples.append(limit.limit)
                next_sample += SAMPLE
            now = finish
            running -= 1
            limit.update(rtt, inflight, dropped)
            run.calls += 1
            run.drops += dropped
            waiting += 1
            admit()
        while next_sample < end:
            samples.append(limit.limit)
            next_sample += SAMPLE
        now = end
        run.samples.append(samples)
    return run


def settled(samples: Sequence[int]) -> list[int]:
    """The last third of a phase's samples, when the limit has had time to settle."""
    return list(samples[len(samples) * 2 // 3 :])


def assert_settles_near(samples: Sequence[int], capacity: int) -> None:
    """The median of the last third is within 30 % of *capacity*, and 90 % of it within 50 %."""
    tail = settled(samples)
    median = statistics.median(tail)
    near = sum(abs(value - capacity) <= 0.5 * capacity for value in tail) / len(tail)
    assert abs(median - capacity) <= 0.3 * capacity, (median, capacity)
    assert near >= 0.9, (near, capacity)


ALGORITHMS: dict[str, Callable[[int], Limit]] = {
    "aimd": lambda initial: AIMD(initial=initial),
    "gradient": lambda initial: Gradient(initial=initial),
}


REFUSALS = ["quick", "slow"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("initial", [1, 200], ids=["low", "high"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_limit_settles_near_capacity(algorithm: str, initial: int, refusal: str, seed: int) -> None:
    """From a limit of 1 or of 200 (the maximum), the limit settles within 30 % of N = 20."""
    run = simulate(ALGORITHMS[algorithm](initial), [Phase(20)], seed=seed, refusal=refusal)
    assert_settles_near(run.samples[0], 20)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_limit_follows_capacity_changes(algorithm: str, refusal: str, seed: int) -> None:
    """When N goes 20 -> 40 -> 10, the limit follows within 30 % after each change."""
    phases = [Phase(20), Phase(40), Phase(10)]
    run = simulate(ALGORITHMS[algorithm](20), phases, seed=seed, refusal=refusal)
    for samples, phase in zip(run.samples, phases, strict=True):
        assert_settles_near(samples, phase.capacity)


@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_few_calls_dropped(algorithm: str, refusal: str) -> None:
    """Both limits find N while the dependency refuses under 5 % of the calls."""
    run = simulate(
        ALGORITHMS[algorithm](20), [Phase(20), Phase(40), Phase(10)], seed=1, refusal=refusal
    )
    assert run.drops / run.calls < 0.05


class PerCallAIMD:
    """AIMD growing by one per success instead of one per round trip (Netflix's AIMDLimit)."""

    def __init__(self) -> None:
        self.value = 20

    @property
    def limit(self) -> int:
        return self.value

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        if dropped:
            self.value = max(1, math.floor(self.value * 0.9 + 1e-9))
        elif inflight * 2 >= self.value:
            self.value = min(200, self.value + 1)
        return self.value


def test_aimd_grows_per_round_trip_because_per_call_overshoots() -> None:
    """Why AIMD adds a slot per round trip: one per call gets a quarter of the calls refused."""
    phases = [Phase(20), Phase(40), Phase(10)]
    quick = simulate(PerCallAIMD(), phases, seed=1)
    assert quick.drops / quick.calls > 0.2
    slow = simulate(PerCallAIMD(), phases, seed=1, refusal="slow")
    assert statistics.median(settled(slow.samples[1])) < 0.5 * 40  # bursts of timeouts


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_follows_latency_alone(seed: int) -> None:
    """With no drops at all, Gradient follows N by latency alone, and a slower dependency."""
    phases = [Phase(20), Phase(40), Phase(10), Phase(10, base=2 * BASE)]
    run = simulate(Gradient(initial=1), phases, seed=seed, drop_slope=0.0)
    for samples, phase in zip(run.samples, phases, strict=True):
        assert_settles_near(samples, phase.capacity)


def test_gradient_baseline_does_not_creep_under_sustained_load() -> None:
    """Held at N by latency alone for 4000 round trips, the baseline stays the unloaded latency."""
    gradient = Gradient(initial=20)
    run = simulate(gradient, [Phase(20, seconds=400.0)], seed=1, drop_slope=0.0)
    assert gradient.baseline is not None
    assert gradient.baseline == pytest.approx(BASE, rel=0.1)
    assert_settles_near(run.samples[0], 20)


# --------------------------------------------------------------------------
# The same simulation through the real rs.Bulkhead.
#
# Above, a model stands in for the bulkhead. Here the real one decides, driven
# through its gate methods on one thread, on virtual time (a FakeClock moved
# to each event): each client calls `admit(None)`; a permit runs at once
# (its second item: the calls in flight, itself included), a `Wait` queues,
# and after each release the waiters the bulkhead woke (no longer
# `waiting`) run with the permit it handed them. A completion
# reports `on_success`, or `on_failure` with what the dependency answered, an
# overload: a 429 (a quick refusal) or a TimeoutError (a slow one). The
# bulkhead times nothing here (the engine would): the duration passed is the
# virtual time the call took. The bulkhead feeds its limit; the samples read
# `bulkhead.limit`.


@dataclass
class BulkheadRun(Run):
    """A Run through the real bulkhead, and what the bulkhead held against the simulation."""

    in_flight: int = 0  # calls the simulation still had running at the end
    queued: int = 0  # clients the simulation still had waiting at the end
    overfull: list[tuple[int, int]] = field(default_factory=list)  # permit > limit at admission
    # (time, bulkhead.running, calls running, bulkhead.waiting, clients waiting) when they differ
    drift: list[tuple[float, int, int, int, int]] = field(default_factory=list)


def simulate_bulkhead(
    limit: Limit, phases: Sequence[Phase], *, seed: int, refusal: str = "quick"
) -> tuple[rs.Bulkhead, BulkheadRun]:
    """Run the closed loop of clients through a real Bulkhead owning *limit*."""
    dependency = Dependency(seed=seed, drop_slope=DROP_SLOPE, refusal=refusal)
    clients = 4 * max(phase.capacity for phase in phases)
    clock = FakeClock()
    bulkhead = rs.Bulkhead(max_concurrent=limit, max_queue=clients, clock=clock)
    events: list[tuple[float, int, float, Any, bool]] = []  # end, seq, start, permit, dropped
    queued: deque[Waiter] = deque()  # first come, first served, as the bulkhead's queue
    starting: list[Any] = []  # permits of the calls starting at this instant
    run = BulkheadRun(samples=[])
    seq = 0

    def admitted(permit: Any) -> None:
        inflight = permit[1]  # an adaptive bulkhead's permit: (its tokens, the calls in flight)
        if inflight > bulkhead.limit:
            run.overfull.append((inflight, bulkhead.limit))
        starting.append(permit)

    def call() -> None:
        """A client calls: it runs at once, or queues."""
        permit = bulkhead.admit(None)
        if isinstance(permit, Wait):
            assert permit.waiter is not None
            queued.append(permit.waiter)
        else:
            admitted(permit)

    def woken() -> None:
        """The queued clients the bulkhead handed a slot, in order."""
        while queued and not queued[0].waiting:
            admitted(queued.popleft().permit)

    def start() -> None:
        nonlocal seq
        now = clock.now()
        calls = dependency.start(len(events), len(starting))
        for permit, (rtt, dropped) in zip(starting, calls, strict=True):
            seq += 1
            heapq.heappush(events, (now + rtt, seq, now, permit, dropped))
        starting.clear()
        if (bulkhead.running, bulkhead.waiting) != (len(events), len(queued)):
            run.drift.append((now, bulkhead.running, len(events), bulkhead.waiting, len(queued)))

    def refused() -> Exception:
        return Status(429) if refusal == "quick" else TimeoutError()

    for _ in range(clients):
        call()
    end = 0.0
    for phase in phases:
        dependency.enter(phase)
        end += phase.seconds
        samples: list[int] = []
        next_sample = clock.now()
        start()
        while events and events[0][0] <= end:
            finish, _, began, permit, dropped = heapq.heappop(events)
            while next_sample <= finish:
                samples.append(bulkhead.limit)
                next_sample += SAMPLE
            clock.advance(max(0.0, finish - clock.now()))
            duration = clock.now() - began
            if dropped:
                bulkhead.on_failure(permit, refused(), duration, None)
            else:
                bulkhead.on_success(permit, None, duration, None)
            run.calls += 1
            run.drops += dropped
            woken()
            call()
            start()
        while next_sample < end:
            samples.append(bulkhead.limit)
            next_sample += SAMPLE
        clock.advance(max(0.0, end - clock.now()))
        run.samples.append(samples)
    run.in_flight, run.queued = len(events), len(queued)
    return bulkhead, run


def assert_bulkhead_held(bulkhead: rs.Bulkhead, run: BulkheadRun) -> None:
    """No call admitted past the limit; the bulkhead's counts were the simulation's throughout."""
    assert run.overfull == []
    assert run.drift == []
    assert run.in_flight > 0
    assert (bulkhead.running, bulkhead.waiting) == (run.in_flight, run.queued)
    assert run.in_flight + run.queued == bulkhead.max_queue  # every client is somewhere


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("initial", [1, 200], ids=["low", "high"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bulkhead_limit_settles_near_capacity(
    algorithm: str, initial: int, refusal: str, seed: int
) -> None:
    """Through the real Bulkhead, from a limit of 1 or 200, the limit settles within 30 % of N."""
    bulkhead, run = simulate_bulkhead(
        ALGORITHMS[algorithm](initial), [Phase(20)], seed=seed, refusal=refusal
    )
    assert_settles_near(run.samples[0], 20)
    assert_bulkhead_held(bulkhead, run)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bulkhead_limit_follows_capacity_changes(algorithm: str, refusal: str, seed: int) -> None:
    """Through the real Bulkhead, when N goes 20 -> 40 -> 10, the limit follows within 30 %."""
    phases = [Phase(20), Phase(40), Phase(10)]
    bulkhead, run = simulate_bulkhead(ALGORITHMS[algorithm](20), phases, seed=seed, refusal=refusal)
    for samples, phase in zip(run.samples, phases, strict=True):
        assert_settles_near(samples, phase.capacity)
    assert_bulkhead_held(bulkhead, run)


@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bulkhead_is_the_model(algorithm: str, refusal: str) -> None:
    """The real Bulkhead moves its limit sample for sample as the model of it does."""
    phases = [Phase(20), Phase(40), Phase(10)]
    model = simulate(ALGORITHMS[algorithm](20), phases, seed=1, refusal=refusal)
    _, real = simulate_bulkhead(ALGORITHMS[algorithm](20), phases, seed=1, refusal=refusal)
    assert (real.samples, real.calls, real.drops) == (model.samples, model.calls, model.drops)
