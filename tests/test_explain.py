"""explain(): what a policy or pipeline does, in order, and the worst case of a call."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import resilience as rs
from resilience._explain import backoff_bounds
from resilience.profiles import saas_litellm as saas
from resilience.testing import FakeClock


def retry(**kwargs: Any) -> rs.Retry:
    kwargs.setdefault("on", rs.transient)
    kwargs.setdefault("backoff", rs.backoff.constant(1.0))
    return rs.Retry(**kwargs)


# --- text --------------------------------------------------------------------------


def test_pipeline_lists_policies_outermost_first() -> None:
    """Each policy's title appears once, numbered in the order of compose()."""
    text = rs.compose(
        rs.Timeout(60.0, name="call"),
        retry(name="jobs"),
        rs.CircuitBreaker(on=rs.transient, name="api"),
        rs.Timeout(10.0, name="attempt"),
    ).explain()
    assert text.startswith("compose() of 4 policies, outermost first:\n1. Timeout 'call': 60 s\n")
    positions = [
        text.index(f"{n}. {title}")
        for n, title in enumerate(
            ["Timeout 'call'", "Retry 'jobs'", "CircuitBreaker 'api'", "Timeout 'attempt'"], 1
        )
    ]
    assert positions == sorted(positions)


def test_retry_says_what_it_retries_rule_by_rule() -> None:
    """The classifier's rules, in order, with retry or not and the kind; then anything else."""
    classifier = rs.ErrorClassifier(
        [
            rs.Rule(exception=TimeoutError, kind="timeout"),
            rs.Rule(status=range(500, 600), kind="server"),
            rs.Rule(status=(429, 503), message="slow down", retry=False),
        ]
    )
    lines = retry(on=classifier).explain().splitlines()
    start = lines.index("  retries (first matching rule decides):")
    assert lines[start + 1 : start + 6] == [
        "    TimeoutError                                  retry     timeout",
        "    status 500-599                                retry     server",
        "    status 429, 503 message contains 'slow down'  no retry",
        "    anything else                                 no retry",
        "    (rules without exception= also match returned results, such as a 503 response)",
    ]


def test_breaker_says_what_trips_it_and_its_state() -> None:
    """Trip conditions, the open period, the probes, the rules as trips or not, the state."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(
        on=rs.ErrorClassifier([rs.Rule(status=503), rs.Rule(status=404, trip=False)]),
        name="api",
        trip=[rs.FailureRate(0.5, calls=20), rs.SlowCallRate(0.25, slower_than=2.0, seconds=60)],
        failure_threshold=5,
        reset_timeout=rs.backoff.exponential(initial=10.0, max=600.0),
        half_open_max_calls=3,
        success_threshold=2,
        clock=clock,
    )
    breaker.open()
    text = breaker.explain()
    assert text.startswith(
        "CircuitBreaker 'api': opens on 5 consecutive failures or a failure rate of 50% or "
        "more over the last 20 calls (once it holds 10) or 25% or more of calls slower than "
        "2 s over the last 60 s (once it holds 10)\n"
    )
    assert "a period growing with each reopening: exponential(initial=10.0" in text
    assert "admits 3 probe calls; 2 successes close it, a failure opens it again" in text
    assert "    status 503     trips\n    status 404     does not trip\n" in text
    assert "state now: open" in text


def test_timeout_describes_sync_and_async_and_streams() -> None:
    """A Timeout's limit, its idle limit, and how sync and async calls meet it."""
    text = rs.Timeout(120.0, idle=15.0, name="stream").explain()
    assert text.startswith("Timeout 'stream': 120 s for a whole stream, 15 s for each item\n")
    assert "async: cancelled at the deadline" in text
    assert "sync: cooperative" in text


def test_metrics_collector_explains_itself() -> None:
    """A collector is a policy that adds neither runs nor time."""
    text = rs.MetricsCollector(name="create_job").explain()
    assert text.startswith("MetricsCollector 'create_job': times every call")
    assert "runs of the function: at most 1" in text


def test_a_policy_explains_as_its_one_policy_pipeline() -> None:
    """policy.explain() is compose(policy).explain()."""
    policy = retry(attempts=4)
    assert policy.explain() == rs.compose(policy).explain()


def test_sleeps_are_listed_with_their_reach() -> None:
    """The builtin backoff's shortest and longest sleep before each retry, and the total."""
    text = retry(
        attempts=3,
        backoff=rs.backoff.exponential(initial=1.0, max=32.0, jitter=rs.backoff.proportional(0.25)),
    ).explain()
    assert "    before attempt 2: 0.75-1.25 s\n    before attempt 3: 1.5-2.5 s\n" in text
    assert "    in total at most 3.75 s\n" in text


def test_many_attempts_are_elided() -> None:
    """Past six retries, the first four and the last are shown."""
    text = retry(attempts=20, backoff=rs.backoff.exponential(initial=1.0, max=8.0)).explain()
    assert "before attempt 5: 0-8 s\n    ...\n    before attempt 20: 0-8 s" in text


def test_a_policy_without_describe_is_shown_by_its_repr() -> None:
    """A third-party policy is listed by repr, assumed neutral, and named in the worst case."""

    @attrs.frozen
    class Bulkhead:
        size: int

        def bind(self, inner: Any, shape: rs.Shape, /) -> Any:
            return inner

    pipeline = rs.compose(retry(attempts=2), Bulkhead(4), rs.Timeout(1.0))
    text = pipeline.explain()
    assert "\n2. Bulkhead(size=4)\n" in text
    assert "(no describe(): assumed to add neither runs of the call nor time)" in text
    assert "policies without describe() are assumed to add neither runs nor time" in text
    assert pipeline.worst_case(retry_after=False) == 3.0


def test_a_policy_of_your_own_takes_part_through_describe() -> None:
    """A third-party describe() is rendered and composed like the library's own."""

    @attrs.frozen
    class Hedge:
        def bind(self, inner: Any, shape: rs.Shape, /) -> Any:
            return inner

        def describe(self) -> rs.Description:
            return rs.Description(
                title="Hedge: a second request after 0.5 s",
                details=["the first answer wins"],
                attempts=2,
                sleeps=0.5,
            )

    pipeline = rs.compose(Hedge(), rs.Timeout(2.0))
    text = pipeline.explain()
    assert "1. Hedge: a second request after 0.5 s\n     the first answer wins\n" in text
    assert pipeline.worst_case() == 4.5
    assert "without describe()" not in text


def test_explain_names_no_bound_when_nothing_limits_a_run() -> None:
    """Without a Timeout, the total has no bound, and the text says what to add."""
    text = retry().explain()
    assert "total time: no bound: nothing limits how long a run of the function takes" in text


# --- the worst case ----------------------------------------------------------------


def test_worst_case_of_attempt_timeouts_and_sleeps() -> None:
    """Retry over a Timeout: attempts x timeout + sleeps; Retry-After sleeps up to its cap."""
    pipeline = rs.compose(retry(attempts=3, max_retry_after=30.0), rs.Timeout(10.0))
    assert pipeline.worst_case(retry_after=False) == 3 * 10.0 + 2 * 1.0
    assert pipeline.worst_case() == 3 * 10.0 + 2 * 30.0
    assert pipeline.worst_case(0.0, retry_after=False) == 2.0  # the sleeps alone
    text = pipeline.explain()
    assert "runs of the function: at most 3" in text
    assert "sleeps: at most 2 s; at most 60 s if the server asks for waits (Retry-After)" in text
    assert "total time: at most 32 s; at most 90 s with Retry-After waits" in text


def test_an_outer_timeout_bounds_everything_inside() -> None:
    """A Timeout outside Retry caps attempts and sleeps together."""
    pipeline = rs.compose(rs.Timeout(20.0), retry(attempts=3), rs.Timeout(10.0))
    assert pipeline.worst_case(retry_after=False) == 20.0
    assert pipeline.worst_case() == 20.0
    assert rs.compose(rs.Timeout(20.0), retry(attempts=5)).worst_case() == 20.0


def test_a_known_call_time_bounds_a_pipeline_without_timeout() -> None:
    """Given how long one run takes, Retry alone has a bound."""
    pipeline = rs.compose(retry(attempts=3, max_retry_after=None))
    assert pipeline.worst_case() is None
    assert pipeline.worst_case(2.0) is None  # Retry-After waits of any length
    assert pipeline.worst_case(2.0, retry_after=False) == 3 * 2.0 + 2 * 1.0
    assert "no bound if the server asks for waits" in pipeline.explain()


def test_a_custom_backoff_has_unknown_sleeps() -> None:
    """A backoff of your own is not guessed at: its sleeps have no bound."""

    def polite(attempt: int, previous: float, rng: random.Random, /) -> float:
        return 1.0

    policy = retry(attempts=3, backoff=polite)
    assert policy.describe().sleeps is None
    assert rs.compose(policy, rs.Timeout(1.0)).worst_case() is None
    assert rs.compose(rs.Timeout(5.0), policy).worst_case() == 5.0
    assert "its sleeps are not known (not a builtin)" in policy.explain()


def test_one_attempt_never_sleeps() -> None:
    """attempts=1: no sleep, no Retry-After."""
    description = retry(attempts=1).describe()
    assert (description.attempts, description.sleeps, description.sleeps_retry_after) == (
        1,
        0.0,
        0.0,
    )
    assert rs.compose(retry(attempts=1), rs.Timeout(3.0)).worst_case() == 3.0


def test_profile_bounds_come_from_the_engine() -> None:
    """The profile's table and its request pipeline agree with Pipeline.worst_case."""
    pipeline = saas.pipeline(
        "POST",
        "https://api.example.com/api/jobs/00000000-0000-4000-8000-000000000000/llm-call",
        breaker=None,
    )
    # 3 attempts of 60 s, each after up to 60 s waiting for a paid-call slot, and the sleeps.
    assert pipeline.worst_case(retry_after=False) == 363.75
    assert pipeline.worst_case() == 480.0
    text = saas.explain()
    assert "The pipeline of one request, as resilience explains it" in text
    assert "  1. Retry 'saas-litellm': up to 3 attempts" in text
    assert "    total time: at most 363.75 s; at most 480 s with Retry-After waits" in text


# --- Description --------------------------------------------------------------------


def test_description_bound_is_min_of_limit_and_attempts_times_inner_plus_sleeps() -> None:
    """bound(t) = min(limit, attempts * t + sleeps), None meaning unbounded."""
    d = rs.Description(title="x", attempts=3, sleeps=2.0, sleeps_retry_after=None, limit=50.0)
    assert d.bound(10.0, retry_after=False) == 32.0
    assert d.bound(20.0, retry_after=False) == 50.0
    assert d.bound(None, retry_after=False) == 50.0
    assert d.bound(10.0) == 50.0
    assert rs.Description(title="x", sleeps=None).bound(1.0) is None
    assert rs.Description(title="x").sleeps_retry_after == 0.0


@pytest.mark.parametrize(
    "fields",
    [{"attempts": 0}, {"attempts": True}, {"sleeps": -1.0}, {"limit": float("nan")}],
)
def test_description_refuses_bad_figures(fields: dict[str, Any]) -> None:
    """Figures are checked at construction, naming the field."""
    with pytest.raises(ValueError, match=next(iter(fields))):
        rs.Description(title="x", **fields)


# --- backoff bounds: exact for every builtin -------------------------------------------

JITTERS: list[Callable[[], rs.backoff.Jitter]] = [
    lambda: rs.backoff.none,
    lambda: rs.backoff.full,
    lambda: rs.backoff.equal,
    lambda: rs.backoff.decorrelated,
    lambda: rs.backoff.proportional(0.25),
]


@st.composite
def builtin_backoffs(draw: st.DrawFn) -> rs.backoff.Backoff:
    jitter = draw(st.sampled_from(JITTERS))()
    seconds = st.floats(0.0, 100.0)
    kind = draw(st.sampled_from(["constant", "linear", "exponential", "schedule"]))
    if kind == "constant":
        return rs.backoff.constant(draw(seconds), jitter=jitter)
    if kind == "linear":
        initial = draw(seconds)
        cap = draw(st.none() | st.floats(initial, 200.0))
        return rs.backoff.linear(initial, step=draw(seconds), max=cap, jitter=jitter)
    if kind == "exponential":
        initial = draw(seconds)
        return rs.backoff.exponential(
            initial=initial, max=draw(st.floats(initial, 200.0)), jitter=jitter
        )
    return rs.backoff.schedule(draw(st.lists(seconds, min_size=1, max_size=5)), jitter=jitter)


@given(builtin_backoffs(), st.integers(1, 8), st.randoms(use_true_random=False))
def test_every_sampled_sleep_lies_within_the_explained_bounds(
    backoff: rs.backoff.Backoff, retries: int, rng: random.Random
) -> None:
    """Whatever the random draws, each sleep lies within the (shortest, longest) explained."""
    bounds = backoff_bounds(backoff, retries)
    assert bounds is not None
    previous = 0.0
    assert bounds.retries == retries
    for attempt, (low, high) in enumerate(bounds.pairs, 1):
        previous = backoff(attempt, previous, rng)
        assert low * (1 - 1e-9) <= previous <= high * (1 + 1e-9)


class Draws(random.Random):
    """A Random whose draws are given in advance."""

    def __init__(self, *draws: float) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


def test_a_sleep_of_zero_before_decorrelated_jitter_is_within_the_bounds() -> None:
    """Found by hypothesis on 3.12: a delay of 5e-324 can sleep 0, and decorrelated reads a
    previous 0 as none (up to 3x the curve next): the explained bounds include it."""
    backoff = rs.backoff.schedule([0.0, 5e-324, 1.0], jitter=rs.backoff.decorrelated)
    rng = Draws(0.5, 0.0, 1.0)  # the second sleep is 0 (5e-324 / 3 rounds to 0)
    sleeps = [backoff(1, 0.0, rng)]
    sleeps += [backoff(2, sleeps[-1], rng)]
    sleeps += [backoff(3, sleeps[-1], rng)]
    assert sleeps == [0.0, 0.0, 3.0]
    bounds = backoff_bounds(backoff, 3)
    assert bounds is not None
    assert bounds.pairs[2] == (1 / 3, 3.0)


@pytest.mark.parametrize("attempts", [10**8, 2**63])
def test_explaining_costs_the_same_for_any_attempt_count(attempts: int) -> None:
    """#18.4: the sleeps of 10**8 or 2**63 attempts are computed for a bounded number of them."""
    bounds = backoff_bounds(rs.backoff.exponential(), attempts - 1)
    assert bounds is not None
    assert (len(bounds.pairs), bounds.retries) == (10_000, attempts - 1)
    text = rs.Retry(on=ValueError, attempts=attempts).explain()
    assert f"runs of the function: at most {attempts}" in text


def test_the_explain_page_shows_the_real_output() -> None:
    """docs/explain.md's explain() example is this pipeline's output, verbatim."""
    pipeline = rs.compose(
        rs.Retry(
            on=rs.transient,
            attempts=3,
            backoff=rs.backoff.exponential(
                initial=1.0, max=32.0, jitter=rs.backoff.proportional(0.25)
            ),
            name="jobs",
        ),
        rs.CircuitBreaker(on=rs.transient, name="api", failure_threshold=5),
        rs.Timeout(10.0, name="attempt"),
    )
    docs = Path(__file__).resolve().parent.parent / "docs" / "explain.md"
    assert f"```text\n{pipeline.explain()}\n```" in docs.read_text()
