"""Tests of `resilience.backoff`: curves, jitters, bounds, reproducibility, bad input."""

from __future__ import annotations

import copy
import math
import pickle
import random
import re
import sys
from datetime import timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import backoff
from resilience.backoff import (
    DEFAULT,
    Backoff,
    Jitter,
    constant,
    decorrelated,
    equal,
    exponential,
    full,
    linear,
    none,
    proportional,
    schedule,
)

if TYPE_CHECKING:
    from collections.abc import Callable

LONGEST = sys.float_info.max

# --------------------------------------------------------------------------
# Helpers and strategies.


def run(policy: Backoff, seed: int, attempts: int) -> list[float]:
    """Return the delays *policy* gives for attempts 1..*attempts*, as Retry would ask."""
    rng = random.Random(seed)
    delays: list[float] = []
    previous = 0.0
    for attempt in range(1, attempts + 1):
        previous = policy(attempt, previous, rng)
        delays.append(previous)
    return delays


def curve(policy: Any) -> Any:
    """Return *policy* without its jitter: the bare curve."""
    return attrs.evolve(policy, jitter=none)


def reach(jitter: Jitter, delay: float) -> tuple[float, float]:
    """Return the documented [low, high] range of *jitter* around the curve value *delay*."""
    if jitter is none:
        return delay, delay
    if jitter is full:
        return 0.0, delay
    if jitter is equal:
        return delay / 2.0, delay
    if jitter is decorrelated:
        return delay / 3.0, 3.0 * delay
    assert isinstance(jitter, proportional)
    return delay * (1.0 - jitter.fraction), delay * (1.0 + jitter.fraction)


def ceiling(policy: Any) -> float:
    """Return the hard cap of *policy*: its ``max`` if it has one, else the largest float."""
    cap = getattr(policy, "max", None)
    return LONGEST if cap is None else float(cap)


# Durations from subnormal to huge: the bounds must hold over the whole float range.
any_seconds = st.floats(min_value=0.0, max_value=LONGEST)
# Realistic durations, for properties that run whole sequences.
seconds = st.floats(min_value=0.0, max_value=1e6)
fractions = st.floats(min_value=0.0, max_value=1.0)
multipliers = st.floats(min_value=1.0, max_value=10.0)
seeds = st.integers(min_value=0, max_value=2**32)
attempt_numbers = st.integers(min_value=1, max_value=10_000)

jitters: st.SearchStrategy[Jitter] = st.one_of(
    st.sampled_from([none, full, equal, decorrelated]),
    st.builds(proportional, fractions),
)


@st.composite
def linears(draw: st.DrawFn, initial: st.SearchStrategy[float] = seconds) -> linear:
    """Draw a `linear`, capped or not."""
    start = draw(initial)
    cap = draw(st.none() | st.floats(min_value=start, max_value=max(start, 1e7)))
    return linear(start, step=draw(seconds), max=cap, jitter=draw(jitters))


@st.composite
def exponentials(draw: st.DrawFn, initial: st.SearchStrategy[float] = seconds) -> exponential:
    """Draw an `exponential`."""
    start = draw(initial)
    cap = draw(st.floats(min_value=start, max_value=max(start, 1e7)))
    return exponential(initial=start, max=cap, multiplier=draw(multipliers), jitter=draw(jitters))


def backoffs(durations: st.SearchStrategy[float] = seconds) -> st.SearchStrategy[Any]:
    """Draw any builtin backoff with any builtin jitter."""
    return st.one_of(
        st.builds(constant, durations, jitter=jitters),
        linears(durations),
        exponentials(durations),
        st.builds(schedule, st.lists(durations, min_size=1, max_size=8), jitter=jitters),
    )


def bare_curves() -> st.SearchStrategy[Any]:
    """Draw any builtin curve without jitter, schedules sorted."""
    return st.one_of(
        st.builds(constant, seconds),
        linears().map(curve),
        exponentials().map(curve),
        st.builds(schedule, st.lists(seconds, min_size=1, max_size=8).map(sorted)),
    )


# --------------------------------------------------------------------------
# Properties of every builtin.


@settings(max_examples=150, deadline=None)
@given(policy=backoffs(any_seconds), attempt=attempt_numbers, previous=any_seconds, seed=seeds)
def test_delay_is_finite_and_non_negative(
    policy: Backoff, attempt: int, previous: float, seed: int
) -> None:
    """Every builtin returns a finite delay >= 0, whatever the attempt, previous delay and scale."""
    delay = policy(attempt, previous, random.Random(seed))
    assert type(delay) is float
    assert math.isfinite(delay)
    assert delay >= 0.0


@settings(max_examples=150, deadline=None)
@given(policy=backoffs(any_seconds), attempt=attempt_numbers, previous=any_seconds, seed=seeds)
def test_delay_stays_within_the_jitters_reach_and_the_cap(
    policy: Any, attempt: int, previous: float, seed: int
) -> None:
    """A delay lies within the jitter's reach of the curve value, and never above the cap."""
    rng = random.Random(seed)
    value = curve(policy)(attempt, 0.0, rng)
    cap = ceiling(policy)
    low, high = reach(policy.jitter, value)
    delay = policy(attempt, previous, rng)
    assert min(low, cap) <= delay <= min(high, cap)


@settings(max_examples=100, deadline=None)
@given(policy=st.one_of(linears(), exponentials()), seed=seeds)
def test_capped_curves_never_exceed_max(policy: linear | exponential, seed: int) -> None:
    """`linear` and `exponential` apply their max after the jitter: no delay exceeds it."""
    cap = ceiling(policy)
    assert all(delay <= cap for delay in run(policy, seed, 40))


@settings(max_examples=100, deadline=None)
@given(policy=backoffs(), seed=seeds)
def test_same_seed_gives_the_same_sequence(policy: Backoff, seed: int) -> None:
    """Two runs from `random.Random(seed)` give the same delays."""
    assert run(policy, seed, 12) == run(policy, seed, 12)


@settings(max_examples=100, deadline=None)
@given(policy=bare_curves(), attempt=attempt_numbers)
def test_curve_is_monotone_non_decreasing(policy: Backoff, attempt: int) -> None:
    """Without jitter, a later attempt never waits less than an earlier one."""
    rng = random.Random(0)
    assert policy(attempt, 0.0, rng) <= policy(attempt + 1, 0.0, rng)


@settings(max_examples=50, deadline=None)
@given(policy=backoffs(), seed=seeds)
def test_global_random_is_never_used(policy: Backoff, seed: int) -> None:
    """Builtins draw only from the rng they are given, never from the `random` module."""
    state = random.getstate()
    run(policy, seed, 8)
    assert random.getstate() == state


@settings(max_examples=200, deadline=None)
@given(jitter=jitters, delay=any_seconds, previous=any_seconds, seed=seeds)
def test_jitter_stays_within_its_reach(
    jitter: Jitter, delay: float, previous: float, seed: int
) -> None:
    """Each jitter, called alone, stays within its documented reach of the delay."""
    low, high = reach(jitter, delay)
    assert low <= jitter(delay, previous, random.Random(seed)) <= high


@settings(max_examples=100, deadline=None)
@given(delay=seconds, previous=st.floats(min_value=1e-3, max_value=1e6), seed=seeds)
def test_decorrelated_stays_below_three_times_the_previous_delay(
    delay: float, previous: float, seed: int
) -> None:
    """Decorrelated jitter waits at most 3x the previous delay (or the curve value if larger)."""
    jittered = decorrelated(delay, previous, random.Random(seed))
    assert jittered <= max(delay, 3.0 * previous)


# --------------------------------------------------------------------------
# Exact values of the bare curves.


def test_constant_waits_the_same_delay() -> None:
    """`constant(2.0)` waits 2 s before every retry."""
    assert run(constant(2.0), 0, 5) == [2.0] * 5


def test_linear_adds_initial_by_default() -> None:
    """`linear(1.0)` waits 1, 2, 3... seconds: step defaults to initial."""
    assert run(linear(1.0), 0, 4) == [1.0, 2.0, 3.0, 4.0]


def test_linear_adds_step_up_to_max() -> None:
    """`linear` adds step per retry and stops growing at max."""
    assert run(linear(0.5, step=2.0, max=4.0), 0, 5) == [0.5, 2.5, 4.0, 4.0, 4.0]


def test_linear_without_max_grows_unbounded() -> None:
    """Without max, `linear` keeps growing."""
    assert linear(1.0, step=10.0)(1_000, 0.0, random.Random(0)) == 9_991.0


def test_linear_without_max_stays_finite_past_the_float_range() -> None:
    """An uncapped `linear` that would overflow returns the largest float instead."""
    assert linear(1e308, step=1e308)(10, 0.0, random.Random(0)) == LONGEST


def test_linear_returns_max_instead_of_overflowing() -> None:
    """An attempt number beyond the float range returns the cap, never an OverflowError."""
    assert linear(1.0, max=5.0)(10**400, 0.0, random.Random(0)) == 5.0


def test_exponential_doubles_up_to_max() -> None:
    """`exponential` doubles from initial and stays at max."""
    policy = exponential(initial=1.0, max=32.0, jitter=none)
    assert run(policy, 0, 8) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 32.0, 32.0]


def test_exponential_uses_multiplier() -> None:
    """`exponential` multiplies by multiplier per retry."""
    policy = exponential(initial=0.5, max=100.0, multiplier=3.0, jitter=none)
    assert run(policy, 0, 4) == [0.5, 1.5, 4.5, 13.5]


def test_exponential_caps_a_max_that_is_not_a_power() -> None:
    """A max between two steps of the curve is reached exactly."""
    assert run(exponential(initial=1.0, max=5.0, jitter=none), 0, 4) == [1.0, 2.0, 4.0, 5.0]


@pytest.mark.parametrize("attempt", [10_000, 10**20])
def test_exponential_returns_max_instead_of_overflowing(attempt: int) -> None:
    """A huge attempt number returns the cap, never an OverflowError."""
    assert exponential(initial=1.0, max=32.0, jitter=none)(attempt, 0.0, random.Random(0)) == 32.0


def test_exponential_from_zero_stays_at_zero() -> None:
    """`exponential(initial=0)` waits 0 s even when the power overflows."""
    policy = exponential(initial=0.0, max=32.0, jitter=none)
    assert policy(1, 0.0, random.Random(0)) == policy(10_000, 0.0, random.Random(0)) == 0.0


def test_schedule_repeats_its_last_delay() -> None:
    """`schedule` waits its delays in turn, then repeats the last one."""
    assert run(schedule([0, 1, 2, 4, 8]), 0, 8) == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_schedule_keeps_the_given_order() -> None:
    """`schedule` uses its delays in the order given, even a decreasing one."""
    assert run(schedule([5, 1]), 0, 3) == [5.0, 1.0, 1.0]


def test_schedule_accepts_any_iterable() -> None:
    """`schedule` accepts a generator and stores a tuple."""
    assert schedule(float(n) for n in range(3)).delays == (0.0, 1.0, 2.0)


@pytest.mark.parametrize(
    "policy",
    [constant(1.0), linear(1.0), exponential(), schedule([1.0])],
    ids=["constant", "linear", "exponential", "schedule"],
)
def test_attempt_below_one_is_rejected(policy: Backoff) -> None:
    """Attempts are 1-based: attempt 0 is a caller bug and raises."""
    with pytest.raises(ValueError, match=re.escape("attempt must be >= 1, got 0")):
        policy(0, 0.0, random.Random(0))


# --------------------------------------------------------------------------
# Jitters.


def test_none_returns_the_delay() -> None:
    """`none` returns the curve value unchanged."""
    assert none(3.5, 1.0, random.Random(0)) == 3.5


def test_full_spreads_from_zero_to_the_delay() -> None:
    """`full` covers most of [0, delay]."""
    rng = random.Random(1)
    values = [full(10.0, 0.0, rng) for _ in range(200)]
    assert min(values) < 1.0
    assert max(values) > 9.0


def test_equal_spreads_over_the_upper_half() -> None:
    """`equal` covers most of [delay / 2, delay]."""
    rng = random.Random(1)
    values = [equal(10.0, 0.0, rng) for _ in range(200)]
    assert 5.0 <= min(values) < 5.5
    assert max(values) > 9.5


class HighRandom(random.Random):
    """A random source whose every draw is the largest value below 1."""

    def random(self) -> float:
        return 1.0 - 2.0**-53


def test_equal_never_exceeds_a_subnormal_delay() -> None:
    """Rounding half of a tiny (subnormal) delay up never lets `equal` exceed it."""
    delay = 3 * 5e-324
    assert equal(delay, 0.0, HighRandom()) <= delay


def test_proportional_spreads_both_ways() -> None:
    """`proportional(0.25)` covers most of [0.75, 1.25] x delay."""
    rng = random.Random(1)
    values = [proportional(0.25)(8.0, 0.0, rng) for _ in range(200)]
    assert 6.0 <= min(values) < 6.2
    assert 9.8 < max(values) <= 10.0


def test_proportional_zero_is_no_jitter() -> None:
    """`proportional(0)` returns the delay itself."""
    assert proportional(0)(4.0, 0.0, random.Random(1)) == 4.0


def test_decorrelated_first_retry_spreads_a_third_to_three_times() -> None:
    """With no previous delay, `decorrelated` covers most of [delay / 3, 3 x delay]."""
    rng = random.Random(1)
    values = [decorrelated(3.0, 0.0, rng) for _ in range(200)]
    assert 1.0 <= min(values) < 1.2
    assert 8.8 < max(values) <= 9.0


def test_decorrelated_follows_a_short_previous_delay() -> None:
    """After a short delay, `decorrelated` stays at or below the curve value."""
    rng = random.Random(1)
    assert all(1.0 <= decorrelated(3.0, 0.1, rng) <= 3.0 for _ in range(100))


def test_cap_applies_after_the_jitter() -> None:
    """At the cap, a jitter reaching above it is clipped to max."""
    policy = exponential(initial=32.0, max=32.0, jitter=proportional(0.5))
    values = run(policy, 3, 50)
    assert max(values) == 32.0
    assert min(values) < 20.0


def test_constant_has_no_cap_on_the_jitter() -> None:
    """`constant` lets a jitter reach above its delay."""
    assert max(run(constant(10.0, jitter=proportional(0.5)), 3, 50)) > 14.0


def test_custom_jitter_is_used() -> None:
    """A plain function works as a jitter."""

    def plus_one(delay: float, previous: float, rng: random.Random, /) -> float:
        return delay + 1.0

    assert constant(2.0, jitter=plus_one)(1, 0.0, random.Random(0)) == 3.0


def test_negative_jitter_result_becomes_zero() -> None:
    """A jitter that returns a negative delay waits 0 s."""
    assert constant(1.0, jitter=lambda delay, previous, rng: -5.0)(1, 0.0, random.Random(0)) == 0.0


def test_jitter_result_above_max_is_capped() -> None:
    """A jitter that returns more than max waits max."""
    policy = linear(1.0, max=2.0, jitter=lambda delay, previous, rng: 1e9)
    assert policy(1, 0.0, random.Random(0)) == 2.0


def test_nan_jitter_result_raises() -> None:
    """A jitter that returns NaN is a bug, reported with the jitter's name."""

    def broken(delay: float, previous: float, rng: random.Random, /) -> float:
        return math.nan

    with pytest.raises(ValueError, match=r"jitter <function .*broken.*> returned nan"):
        constant(1.0, jitter=broken)(1, 0.0, random.Random(0))


def test_jitter_receives_the_capped_curve_value_and_previous() -> None:
    """A jitter gets the capped curve value and the previous delay."""
    seen: list[tuple[float, float]] = []

    def spy(delay: float, previous: float, rng: random.Random, /) -> float:
        seen.append((delay, previous))
        return delay

    run(exponential(initial=1.0, max=3.0, jitter=spy), 0, 3)
    assert seen == [(1.0, 0.0), (2.0, 1.0), (3.0, 2.0)]


# --------------------------------------------------------------------------
# Values: repr, equality, hashing, immutability, pickling, the protocols.


def test_repr_reads_as_the_call() -> None:
    """The repr spells the lowercase factory and every parameter."""
    policy = exponential(initial=1.0, max=32.0, jitter=proportional(0.25))
    assert repr(policy) == (
        "exponential(initial=1.0, max=32.0, multiplier=2.0, jitter=proportional(0.25))"
    )


@pytest.mark.parametrize(
    ("policy", "text"),
    [
        (constant(1), "constant(delay=1.0, jitter=none)"),
        (linear(1, max=5), "linear(initial=1.0, step=1.0, max=5.0, jitter=none)"),
        (schedule([0, 1], jitter=full), "schedule(delays=(0.0, 1.0), jitter=full)"),
        (
            exponential(jitter=decorrelated),
            "exponential(initial=0.1, max=10.0, multiplier=2.0, jitter=decorrelated)",
        ),
    ],
    ids=["constant", "linear", "schedule", "exponential"],
)
def test_repr_of_each_builtin(policy: Backoff, text: str) -> None:
    """Every builtin's repr is valid Python that rebuilds it."""
    assert repr(policy) == text
    assert eval(text, vars(backoff)) == policy


def test_default_is_exponential_with_full_jitter() -> None:
    """DEFAULT is exponential from 0.1 s, capped at 10 s, full jitter; equal to `exponential()`."""
    assert exponential(initial=0.1, max=10.0, multiplier=2.0, jitter=full) == DEFAULT
    assert exponential() == DEFAULT


def test_equal_values_hash_equal() -> None:
    """Equal configurations are equal and hash the same, ints and floats alike."""
    assert exponential(initial=1, max=32) == exponential(initial=1.0, max=32.0)
    assert hash(exponential(initial=1, max=32)) == hash(exponential(initial=1.0, max=32.0))
    assert len({proportional(0.25), proportional(0.25), proportional(0.5)}) == 2


def test_values_are_immutable() -> None:
    """Builtins are frozen: variants come from `attrs.evolve`."""
    policy = exponential()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.initial = 5.0  # type: ignore[misc]
    assert attrs.evolve(policy, initial=0.5).initial == 0.5


@pytest.mark.parametrize("jitter", [none, full, equal, decorrelated])
def test_ready_jitters_pickle_and_copy_to_themselves(jitter: Jitter) -> None:
    """The ready jitters survive pickling and copying as the same object."""
    assert pickle.loads(pickle.dumps(jitter)) is jitter
    assert copy.deepcopy(jitter) is jitter


def test_backoffs_pickle() -> None:
    """Builtin backoffs pickle to an equal value."""
    policy = schedule([1, 2], jitter=proportional(0.1))
    assert pickle.loads(pickle.dumps(policy)) == policy


def test_plain_function_is_a_backoff() -> None:
    """A user's function satisfies the Backoff protocol."""

    def polite(attempt: int, previous: float, rng: random.Random, /) -> float:
        return min(2.0 * attempt, 30.0) + rng.uniform(0.0, 0.5)

    policy: Backoff = polite
    assert isinstance(policy, Backoff)
    assert run(policy, 7, 3) == run(polite, 7, 3)


def test_builtins_satisfy_the_protocols() -> None:
    """Builtin backoffs and jitters are instances of the runtime-checkable protocols."""
    assert isinstance(DEFAULT, Backoff)
    assert all(isinstance(j, Jitter) for j in (none, full, equal, decorrelated, proportional(1)))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: constant(d), 90.0),
        (lambda d: linear(d, step=d, max=d), 90.0),
        (lambda d: exponential(initial=d, max=d), 90.0),
        (lambda d: schedule([d]), 90.0),
    ],
    ids=["constant", "linear", "exponential", "schedule"],
)
def test_timedelta_is_accepted(make: Callable[[timedelta], Any], expected: float) -> None:
    """Durations may be `datetime.timedelta`, stored as float seconds."""
    policy = make(timedelta(minutes=1, seconds=30))
    assert attrs.evolve(policy, jitter=none)(1, 0.0, random.Random(0)) == expected


def test_fraction_numbers_are_accepted() -> None:
    """Any real number (a `Fraction` here) is converted to float."""
    quarter: Any = Fraction(1, 4)
    assert exponential(initial=quarter, max=1.0).initial == 0.25


# --------------------------------------------------------------------------
# Bad configuration: one test per parameter, the message names it and the value.


def check(error: type[Exception], message: str, make: Callable[[], object]) -> None:
    """Assert that *make* raises *error* with exactly *message*."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make()


BAD_SECONDS = [
    (-1.0, ValueError, "{} must be a finite number >= 0, got -1.0"),
    (math.nan, ValueError, "{} must be a finite number >= 0, got nan"),
    (math.inf, ValueError, "{} must be a finite number >= 0, got inf"),
    (timedelta(seconds=-2), ValueError, "{} must be a finite number >= 0, got -2.0"),
    (10**400, ValueError, "{} must be a finite number >= 0, got " + str(10**400)),
    (True, TypeError, "{} must be a number of seconds or a timedelta, got bool: True"),
    ("1", TypeError, "{} must be a number of seconds or a timedelta, got str: '1'"),
]
BAD_SECONDS_IDS = ["negative", "nan", "inf", "negative-timedelta", "huge-int", "bool", "str"]


@pytest.mark.parametrize(("value", "error", "message"), BAD_SECONDS, ids=BAD_SECONDS_IDS)
def test_constant_rejects_bad_delay(value: Any, error: type[Exception], message: str) -> None:
    """`constant(delay)` must be a finite number of seconds >= 0."""
    check(error, message.format("delay"), lambda: constant(value))


@pytest.mark.parametrize(("value", "error", "message"), BAD_SECONDS, ids=BAD_SECONDS_IDS)
def test_linear_rejects_bad_initial(value: Any, error: type[Exception], message: str) -> None:
    """`linear(initial)` must be a finite number of seconds >= 0."""
    check(error, message.format("initial"), lambda: linear(value, step=1.0))


@pytest.mark.parametrize(("value", "error", "message"), BAD_SECONDS, ids=BAD_SECONDS_IDS)
def test_linear_rejects_bad_step(value: Any, error: type[Exception], message: str) -> None:
    """`linear(step=)` must be a finite number of seconds >= 0."""
    check(error, message.format("step"), lambda: linear(1.0, step=value))


@pytest.mark.parametrize(("value", "error", "message"), BAD_SECONDS, ids=BAD_SECONDS_IDS)
def test_linear_rejects_bad_max(value: Any, error: type[Exception], message: str) -> None:
    """`linear(max=)` must be a finite number of seconds >= 0."""
    check(error, message.format("max"), lambda: linear(0.0, max=value))


def test_linear_rejects_max_below_initial() -> None:
    """`linear(max=)` must be at least initial."""
    check(ValueError, "max must be >= initial (2.0), got 1.0", lambda: linear(2.0, max=1.0))


@pytest.mark.parametrize(("value", "error", "message"), BAD_SECONDS, ids=BAD_SECONDS_IDS)
def test_exponential_rejects_bad_initial(value: Any, error: type[Exception], message: str) -> None:
    """`exponential(initial=)` must be a finite number of seconds >= 0."""
    check(error, message.format("initial"), lambda: exponential(initial=value, max=1.0))


@pytest.mark.parametrize(("value", "error", "message"), BAD_SECONDS, ids=BAD_SECONDS_IDS)
def test_exponential_rejects_bad_max(value: Any, error: type[Exception], message: str) -> None:
    """`exponential(max=)` must be a finite number of seconds >= 0."""
    check(error, message.format("max"), lambda: exponential(initial=0.0, max=value))


def test_exponential_rejects_max_below_initial() -> None:
    """`exponential(max=)` must be at least initial."""
    check(
        ValueError,
        "max must be >= initial (1.0), got 0.5",
        lambda: exponential(initial=1.0, max=0.5),
    )


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0.5, ValueError, "multiplier must be a finite number >= 1, got 0.5"),
        (math.nan, ValueError, "multiplier must be a finite number >= 1, got nan"),
        (math.inf, ValueError, "multiplier must be a finite number >= 1, got inf"),
        (True, TypeError, "multiplier must be a number, got bool: True"),
        ("2", TypeError, "multiplier must be a number, got str: '2'"),
        (
            timedelta(1),
            TypeError,
            "multiplier must be a number, got timedelta: datetime.timedelta(days=1)",
        ),
    ],
    ids=["below-one", "nan", "inf", "bool", "str", "timedelta"],
)
def test_exponential_rejects_bad_multiplier(
    value: Any, error: type[Exception], message: str
) -> None:
    """`exponential(multiplier=)` must be a finite number >= 1."""
    check(error, message, lambda: exponential(multiplier=value))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ([], ValueError, "delays must not be empty, got []"),
        ([1.0, -1.0], ValueError, "delays[1] must be a finite number >= 0, got -1.0"),
        ([math.nan], ValueError, "delays[0] must be a finite number >= 0, got nan"),
        (
            [1, True],
            TypeError,
            "delays[1] must be a number of seconds or a timedelta, got bool: True",
        ),
        (5, TypeError, "delays must be an iterable of seconds, got int: 5"),
        ("12", TypeError, "delays must be an iterable of seconds, got str: '12'"),
    ],
    ids=["empty", "negative", "nan", "bool", "number", "str"],
)
def test_schedule_rejects_bad_delays(value: Any, error: type[Exception], message: str) -> None:
    """`schedule(delays)` must hold at least one finite number of seconds >= 0."""
    check(error, message, lambda: schedule(value))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (1.5, ValueError, "fraction must be a number between 0 and 1, got 1.5"),
        (-0.1, ValueError, "fraction must be a number between 0 and 1, got -0.1"),
        (math.nan, ValueError, "fraction must be a number between 0 and 1, got nan"),
        (True, TypeError, "fraction must be a number, got bool: True"),
        ("0.25", TypeError, "fraction must be a number, got str: '0.25'"),
    ],
    ids=["above-one", "negative", "nan", "bool", "str"],
)
def test_proportional_rejects_bad_fraction(
    value: Any, error: type[Exception], message: str
) -> None:
    """`proportional(fraction)` must be a number in [0, 1]."""
    check(error, message, lambda: proportional(value))


@pytest.mark.parametrize(
    "make",
    [
        lambda jitter: constant(1.0, jitter=jitter),
        lambda jitter: linear(1.0, jitter=jitter),
        lambda jitter: exponential(jitter=jitter),
        lambda jitter: schedule([1.0], jitter=jitter),
    ],
    ids=["constant", "linear", "exponential", "schedule"],
)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.25, "jitter must be a callable Jitter, got float: 0.25"),
        (None, "jitter must be a callable Jitter, got NoneType: None"),
        (proportional, "jitter must be a Jitter value, got the class 'proportional' itself"),
    ],
    ids=["number", "None", "uncalled-factory"],
)
def test_curves_reject_bad_jitter(make: Callable[[Any], object], value: Any, message: str) -> None:
    """`jitter=` must be a callable Jitter value, not a number or a factory left uncalled."""
    check(TypeError, message, lambda: make(value))
