"""Retry(per_kind=...): a kind of failure with its own attempts and backoff."""

from __future__ import annotations

import pickle
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

import resilience as rs
from resilience import backoff
from resilience.testing import FakeClock, capture_events, set_testing

from .conftest import Runner
from .forms import run_async


class HTTPError(Exception):
    """An error carrying a status (and a Retry-After), as the HTTP clients' errors do."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        if retry_after is not None:
            self.retry_after = retry_after


class Failing:
    """Raises each given error in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def rate_limited(clock: FakeClock, **kwargs: Any) -> rs.Retry:
    """The documented example: 429s 6 attempts 5, 10, 20, 40, 60 s apart; the rest 3, 1 s apart."""
    kwargs.setdefault("backoff", backoff.constant(1.0))
    return rs.Retry(
        on=rs.transient,
        attempts=3,
        per_kind={
            "rate_limit": rs.Retry.kind(
                attempts=6, backoff=backoff.exponential(initial=5.0, max=60.0, jitter=backoff.none)
            )
        },
        clock=clock,
        **kwargs,
    )


# --- semantics ---------------------------------------------------------------


def test_rate_limits_get_their_attempts_and_backoff(mode: Runner) -> None:
    """Five 429s in a row are retried, 6 attempts in all, with the kind's backoff."""
    clock = FakeClock()
    fn = Failing(*[HTTPError(429) for _ in range(5)])
    assert mode.run(rate_limited(clock)(mode.make(fn))) == "ok"
    assert fn.calls == 6
    assert clock.sleeps == [5.0, 10.0, 20.0, 40.0, 60.0]


def test_rate_limits_give_up_after_their_attempts(mode: Runner) -> None:
    """A sixth 429 is the last: the error is raised with the usual note."""
    clock = FakeClock()
    last = HTTPError(429)
    fn = Failing(*[HTTPError(429) for _ in range(5)], last)
    with pytest.raises(HTTPError) as info:
        mode.run(rate_limited(clock)(mode.make(fn)))
    assert info.value is last
    assert fn.calls == 6
    assert info.value.__notes__ == ["resilience: gave up after 6 attempts over 135 s"]


def test_server_errors_keep_the_default_attempts_and_backoff(mode: Runner) -> None:
    """A kind without settings of its own: attempts=3 and the default backoff."""
    clock = FakeClock()
    fn = Failing(HTTPError(503), HTTPError(503), HTTPError(503))
    with pytest.raises(HTTPError):
        mode.run(rate_limited(clock)(mode.make(fn)))
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 1.0]


def test_mixed_kinds_count_all_attempts_against_the_failing_kind(mode: Runner) -> None:
    """Attempts are the call's; the kind of the failure at hand picks the limit."""
    clock = FakeClock()
    # 429, 429 (attempt 2 < 6: retried), then 503 at attempt 3: 3 >= 3, give up.
    fn = Failing(HTTPError(429), HTTPError(429), HTTPError(503), HTTPError(429))
    with pytest.raises(HTTPError) as info:
        mode.run(rate_limited(clock)(mode.make(fn)))
    assert info.value.status_code == 503
    assert fn.calls == 3
    # A 503 at attempt 2 is retried; the 429s after it go on to attempt 6.
    clock = FakeClock()
    fn = Failing(HTTPError(503), HTTPError(429), HTTPError(429), HTTPError(429), HTTPError(429))
    assert mode.run(rate_limited(clock)(mode.make(fn))) == "ok"
    assert fn.calls == 6
    # Each backoff counts its own retries: the 429s start at 5 s, not at 20 s.
    assert clock.sleeps == [1.0, 5.0, 10.0, 20.0, 40.0]


def test_backoffs_count_their_own_retries_and_previous_delays(mode: Runner) -> None:
    """attempt and previous passed to a backoff are that backoff's own, per call."""
    seen: dict[str, list[tuple[int, float]]] = {"default": [], "rate_limit": []}

    def recording(name: str, step: float) -> Any:
        def curve(attempt: int, previous: float, rng: random.Random) -> float:
            seen[name].append((attempt, previous))
            return step * attempt

        return curve

    clock = FakeClock()
    retry = rs.Retry(
        on=rs.transient,
        attempts=6,
        backoff=recording("default", 1.0),
        per_kind={"rate_limit": rs.Retry.kind(backoff=recording("rate_limit", 10.0))},
        clock=clock,
    )
    fn = Failing(HTTPError(503), HTTPError(429), HTTPError(503), HTTPError(429), HTTPError(429))
    assert mode.run(retry(mode.make(fn))) == "ok"
    assert seen == {
        "default": [(1, 0.0), (2, 1.0)],
        "rate_limit": [(1, 0.0), (2, 10.0), (3, 20.0)],
    }
    assert clock.sleeps == [1.0, 10.0, 2.0, 20.0, 30.0]


def test_a_kind_with_fewer_attempts_than_the_default(mode: Runner) -> None:
    """A kind can be given fewer attempts too; a kind's backoff alone keeps attempts=."""
    clock = FakeClock()
    retry = rs.Retry(
        on=rs.transient,
        attempts=5,
        backoff=backoff.constant(1.0),
        per_kind={
            "server": rs.Retry.kind(attempts=2),
            "timeout": rs.Retry.kind(backoff=backoff.constant(3.0)),
        },
        clock=clock,
    )
    fn = Failing(HTTPError(503), HTTPError(503))
    with pytest.raises(HTTPError):
        mode.run(retry(mode.make(fn)))
    assert (fn.calls, clock.sleeps) == (2, [1.0])
    clock = FakeClock()
    fn = Failing(*[TimeoutError() for _ in range(5)])
    with pytest.raises(TimeoutError):
        mode.run(attrs.evolve(retry, clock=clock)(mode.make(fn)))
    assert (fn.calls, clock.sleeps) == (5, [3.0, 3.0, 3.0, 3.0])


def test_retry_after_stays_a_floor_under_a_kinds_backoff(mode: Runner) -> None:
    """The server's Retry-After wins over a shorter delay of the kind's backoff."""
    clock = FakeClock()
    fn = Failing(HTTPError(429, retry_after=30.0), HTTPError(429, retry_after=1.0))
    assert mode.run(rate_limited(clock)(mode.make(fn))) == "ok"
    assert clock.sleeps == [30.0, 10.0]


def test_retry_after_beyond_the_cap_still_gives_up(mode: Runner) -> None:
    """max_retry_after applies to every kind."""
    clock = FakeClock()
    fn = Failing(HTTPError(429, retry_after=600.0))
    with pytest.raises(HTTPError):
        mode.run(rate_limited(clock)(mode.make(fn)))
    assert (fn.calls, clock.sleeps) == (1, [])


def test_events_carry_the_kind_and_the_calls_attempt(mode: Runner) -> None:
    """RetryScheduled says which kind it retried, numbered by the call's attempts."""
    clock = FakeClock()
    fn = Failing(HTTPError(503), HTTPError(429))
    with capture_events() as events:
        mode.run(rate_limited(clock)(mode.make(fn)))
    scheduled = [e for e in events if isinstance(e, rs.RetryScheduled)]
    assert [(e.attempt, e.kind, e.delay) for e in scheduled] == [
        (1, "server", 1.0),
        (2, "rate_limit", 5.0),
    ]


def test_testing_mode_caps_a_kinds_attempts_too(mode: Runner) -> None:
    """set_testing(attempts=) caps every kind's count."""
    clock = FakeClock()
    fn = Failing(*[HTTPError(429) for _ in range(5)])
    with set_testing(True, attempts=2), pytest.raises(HTTPError):
        mode.run(rate_limited(clock)(mode.make(fn)))
    assert (fn.calls, clock.sleeps) == (2, [])


# --- the attempts loop and streams share the decision ---------------------------


def test_attempts_loop_uses_the_kinds_settings() -> None:
    clock = FakeClock()
    fn = Failing(*[HTTPError(429) for _ in range(5)])
    for attempt in rate_limited(clock).attempts():
        with attempt:
            fn()
    assert fn.calls == 6
    assert clock.sleeps == [5.0, 10.0, 20.0, 40.0, 60.0]


def test_async_attempts_loop_uses_the_kinds_settings(backend: str) -> None:
    clock = FakeClock()
    fn = Failing(HTTPError(503), HTTPError(503), HTTPError(429))

    async def main() -> None:
        async for attempt in rate_limited(clock).attempts():
            with attempt:
                fn()

    run_async(main, backend)
    assert fn.calls == 4
    assert clock.sleeps == [1.0, 1.0, 5.0]


def test_streams_restart_with_the_kinds_settings() -> None:
    clock = FakeClock()
    fn = Failing(*[HTTPError(429) for _ in range(4)])

    @rate_limited(clock)
    def stream() -> Iterator[str]:
        yield fn()
        yield "more"

    assert list(stream()) == ["ok", "more"]
    assert clock.sleeps == [5.0, 10.0, 20.0, 40.0]


def test_async_streams_restart_with_the_kinds_settings(backend: str) -> None:
    clock = FakeClock()
    fn = Failing(HTTPError(503), HTTPError(503), HTTPError(503))

    @rate_limited(clock)
    async def stream() -> AsyncIterator[str]:
        yield fn()

    async def main() -> list[str]:
        return [item async for item in stream()]

    with pytest.raises(HTTPError):
        run_async(main, backend)
    assert clock.sleeps == [1.0, 1.0]


# --- explain and worst_case --------------------------------------------------------


def test_explain_shows_each_kinds_settings() -> None:
    text = rate_limited(FakeClock()).explain()
    assert "Retry: up to 6 attempts" in text
    assert (
        "  backoff constant(delay=1.0, jitter=none); sleeps:\n"
        "    its retry 1: 1 s\n    its retry 2: 1 s\n" in text
    )
    assert (
        "  kind 'rate_limit': up to 6 attempts; backoff "
        "exponential(initial=5.0, max=60.0, multiplier=2.0, jitter=none); "
        "sleeps:\n    its retry 1: 5 s\n    its retry 2: 10 s\n    its retry 3: 20 s\n"
        "    its retry 4: 40 s\n    its retry 5: 60 s\n"
    ) in text
    assert "  sleeps in total at most 135 s (the longest 5 above)\n" in text


def test_explain_a_kind_with_attempts_only() -> None:
    retry = rs.Retry(
        on=rs.transient,
        backoff=backoff.constant(2.0),
        per_kind={"server": rs.Retry.kind(attempts=4)},
    )
    text = retry.explain()
    assert "kind 'server': up to 4 attempts; the backoff above" in text
    # The default backoff serves the server kind's 3 retries.
    assert "    its retry 3: 2 s\n  kind 'server'" in text
    assert "  sleeps in total at most 6 s (the longest 3 above)\n" in text


def test_worst_case_is_an_upper_bound_over_all_kinds() -> None:
    """At most 5 retries, each the largest sleep any kind could take at that count."""
    retry = rate_limited(FakeClock())
    assert retry.describe().attempts == 6
    # The largest 5 sleeps among 1, 1 (default) and 5, 10, 20, 40, 60 (rate_limit).
    assert rs.compose(retry).worst_case(0.0, retry_after=False) == 135.0
    assert rs.compose(retry).worst_case(2.0, retry_after=False) == 6 * 2.0 + 135.0
    # With Retry-After, each sleep can reach max_retry_after (60 s).
    assert rs.compose(retry).worst_case(0.0, retry_after=True) == 5 * 60.0


def test_worst_case_bounds_real_mixed_calls() -> None:
    """No sequence of kinds sleeps longer than worst_case says."""
    bound = rs.compose(rate_limited(FakeClock())).worst_case(0.0, retry_after=False)
    assert bound is not None
    rng = random.Random(7)
    for _ in range(200):
        clock = FakeClock()
        fn = Failing(*[HTTPError(rng.choice([429, 503])) for _ in range(8)])
        try:
            rate_limited(clock)(fn)()
        except HTTPError:
            pass
        assert sum(clock.sleeps) <= bound


def test_worst_case_unknown_when_a_kinds_backoff_is_not_builtin() -> None:
    retry = rs.Retry(
        on=rs.transient,
        per_kind={"rate_limit": rs.Retry.kind(backoff=lambda a, p, r: 1.0)},
    )
    assert rs.compose(retry).worst_case(1.0, retry_after=False) is None
    assert "its sleeps are not known" in retry.explain()


def test_without_per_kind_explain_is_unchanged() -> None:
    text = rs.Retry(on=rs.transient, backoff=backoff.constant(1.0)).explain()
    assert "before attempt 2: 1 s\n    before attempt 3: 1 s\n" in text
    assert "kind '" not in text


# --- the configuration --------------------------------------------------------------


def test_per_kind_reads_back_sorted_and_survives_evolve() -> None:
    kinds = {
        "server": rs.Retry.kind(attempts=2),
        "rate_limit": rs.Retry.kind(attempts=6),
    }
    retry = rs.Retry(on=rs.transient, per_kind=kinds)
    assert retry.per_kind == (("rate_limit", kinds["rate_limit"]), ("server", kinds["server"]))
    assert attrs.evolve(retry, name="x").per_kind == retry.per_kind
    assert retry == rs.Retry(on=rs.transient, per_kind=dict(reversed(list(kinds.items()))))
    assert hash(retry) == hash(attrs.evolve(retry))
    assert rs.Retry(on=rs.transient).per_kind == ()
    assert repr(retry).endswith(
        "per_kind={'rate_limit': Retry.kind(attempts=6), 'server': Retry.kind(attempts=2)})"
    )
    assert repr(rs.Retry.kind(attempts=6, backoff=backoff.constant(5.0))) == (
        "Retry.kind(attempts=6, backoff=constant(delay=5.0, jitter=none))"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"attempts": 0}, ValueError, "attempts must be >= 1, got 0"),
        ({"attempts": 1.5}, TypeError, "attempts"),
        ({"attempts": True}, TypeError, "attempts"),
        ({"backoff": 1.0}, TypeError, "backoff must be a Backoff"),
        ({"backoff": backoff.constant}, TypeError, "backoff must be a Backoff"),
        ({}, ValueError, "needs attempts= or backoff="),
    ],
)
def test_bad_kind(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        rs.Retry.kind(**kwargs)


@pytest.mark.parametrize(
    ("per_kind", "error", "message"),
    [
        ([("rate_limit", 6)], TypeError, "per_kind must be a mapping of kinds"),
        (None, TypeError, "per_kind must be a mapping of kinds"),
        ({"rate_limit": 6}, TypeError, r"per_kind\['rate_limit'\] must be a Retry.kind"),
        ({429: rs.Retry.kind(attempts=6)}, TypeError, "per_kind keys must be kinds"),
        ({None: rs.Retry.kind(attempts=6)}, TypeError, "per_kind keys must be kinds"),
        ({"": rs.Retry.kind(attempts=6)}, TypeError, "per_kind keys must be kinds"),
        (
            {"rate-limit": rs.Retry.kind(attempts=6)},
            ValueError,
            "per_kind names kind 'rate-limit', which no retrying rule of on= gives "
            r"\(its kinds: 'network', 'rate_limit', 'server', 'timeout'\)",
        ),
    ],
)
def test_bad_per_kind(per_kind: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        rs.Retry(on=rs.transient, per_kind=per_kind)


def test_per_kind_needs_a_retrying_rule_of_that_kind() -> None:
    """A kind only a non-retrying rule gives would never be retried: refused."""
    on = rs.ErrorClassifier([rs.Rule(status=400, retry=False, kind="client")])
    with pytest.raises(ValueError, match=r"its kinds: none\)"):
        rs.Retry(on=on, per_kind={"client": rs.Retry.kind(attempts=2)})


def test_a_kind_is_frozen_compares_hashes_and_pickles_by_value() -> None:
    """Retry.kind is a value, as when it was an attrs class (issue 19: a plain class now)."""
    kind = rs.Retry.kind(attempts=6, backoff=backoff.constant(5.0))
    same = rs.Retry.kind(attempts=6, backoff=backoff.constant(5.0))
    assert kind == same != rs.Retry.kind(attempts=5, backoff=backoff.constant(5.0))
    assert hash(kind) == hash(same)
    assert pickle.loads(pickle.dumps(kind)) == kind
    retry = rs.Retry(on=rs.transient, per_kind={"server": kind})
    assert pickle.loads(pickle.dumps(retry)) == retry
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        kind.attempts = 2
