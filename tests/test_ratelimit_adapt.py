"""
An adaptive RateLimiter (issue #12, item 5): 429s lower the rate, successes raise it back.

All on a `FakeClock`. The simulation models a server that accepts R requests
in any 60 s and answers 429 beyond them (with or without ``Retry-After``),
and a caller that keeps asking through a limiter started at 3R.
"""

from __future__ import annotations

import collections

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events


class Status(Exception):
    """An HTTP status error: read by the classifiers through ``status_code`` and ``headers``."""

    def __init__(self, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = {} if retry_after is None else {"Retry-After": f"{retry_after:.3f}"}


class Response:
    """A response that did not raise."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def adaptive(rate: float = 100, name: str | None = None) -> rs.RateLimiter:
    return rs.RateLimiter(
        rate=rate, per=60.0, burst=1, adapt=rs.transient, clock=FakeClock(), name=name
    )


def test_a_429_lowers_the_rate_to_four_fifths_and_says_so() -> None:
    """A raised 429: the rate goes 100 -> 80, RateChanged(reason="rate_limit")."""
    limiter = adaptive(name="llm")
    with capture_events() as events, pytest.raises(Status):
        limiter.call(lambda: (_ for _ in ()).throw(Status(429)))
    assert limiter.current_rate == pytest.approx(80)
    changed = [e for e in events if isinstance(e, rs.RateChanged)]
    assert [(e.name, e.previous, e.reason) for e in changed] == [("llm", 100, "rate_limit")]
    assert changed[0].rate == pytest.approx(80)


def test_a_returned_429_response_lowers_the_rate_too() -> None:
    """The classifier judges results: a 429 response that did not raise counts."""
    limiter = adaptive()
    assert limiter.call(lambda: Response(429)).status_code == 429
    assert limiter.current_rate == pytest.approx(80)


def test_other_failures_leave_the_rate_alone() -> None:
    """A 500 or a ValueError is no rate-limit answer."""
    limiter = adaptive()
    for error in (Status(500), ValueError("x")):
        with pytest.raises(type(error)):
            limiter.call(lambda e=error: (_ for _ in ()).throw(e))  # type: ignore[misc]
    assert limiter.current_rate == 100


def test_429s_of_calls_admitted_before_a_decrease_lower_it_once() -> None:
    """Three calls admitted at one rate, all answered 429: one decrease, not three."""
    limiter = rs.RateLimiter(rate=100, per=60.0, adapt=rs.transient, clock=FakeClock())
    permits = [limiter.acquire(1) for _ in range(3)]
    entered = [p.__enter__() for p in permits]
    assert len(entered) == 3
    for permit in permits:
        permit.__exit__(Status, Status(429), None)
    assert limiter.current_rate == pytest.approx(80)


def test_retry_after_holds_every_call_until_it_has_passed() -> None:
    """A 429 with Retry-After: 30 s: the next call waits 30 s (and then some, at the new rate)."""
    limiter = adaptive(rate=60)
    clock = limiter.clock
    assert isinstance(clock, FakeClock)
    with pytest.raises(Status):
        limiter.call(lambda: (_ for _ in ()).throw(Status(429, retry_after=30.0)))
    limiter.call(lambda: "ok")
    assert clock.sleeps == pytest.approx([30.0])


def test_successes_raise_the_rate_back_to_rate_and_say_so_once_there() -> None:
    """After a 429, successes climb back additively; RateChanged(reason="recovered") at the top."""
    limiter = rs.RateLimiter(
        rate=100, per=60.0, adapt=rs.transient, clock=FakeClock(), max_wait=None
    )
    with pytest.raises(Status):
        limiter.call(lambda: (_ for _ in ()).throw(Status(429)))
    rates = []
    with capture_events() as events:
        for _ in range(1000):  # about 20 / (2 / 90) successes to climb back
            limiter.call(lambda: "ok")
            rates.append(limiter.current_rate)
    assert rates == sorted(rates)  # never down
    assert rates[0] == pytest.approx(80 + 0.02 * 100 / 80)  # 2 % of rate per 80 successes
    assert rates[-1] == 100
    assert [e.reason for e in events if isinstance(e, rs.RateChanged)] == ["recovered"]


def test_the_rate_never_goes_below_one_percent() -> None:
    """Fifty 429s in a row, each from a call admitted after the last decrease: 1 % of rate."""
    limiter = adaptive()
    for _ in range(50):
        with pytest.raises(Status):
            limiter.call(lambda: (_ for _ in ()).throw(Status(429)))
    assert limiter.current_rate == pytest.approx(1)


def test_explain_lists_what_lowers_the_rate() -> None:
    """explain() says the limiter adapts, its rate now, and the rules of kind rate_limit."""
    text = adaptive(name="llm").explain()
    assert "adaptive: a rate-limit answer lowers the rate (now 100)" in text
    assert "status 429" in text


# --- the simulation --------------------------------------------------------------------------


def simulate(r: int, minutes: int, *, retry_after: bool) -> tuple[list[tuple[float, bool]], float]:
    """A caller that keeps asking, through a limiter at 3R, of a server that allows R per 60 s."""
    clock = FakeClock()
    rs.set_hooks([])
    limiter = rs.RateLimiter(rate=3 * r, per=60.0, burst=1, adapt=rs.transient, clock=clock)
    accepted: collections.deque[float] = collections.deque()
    answers: list[tuple[float, bool]] = []

    def server() -> str:
        now = clock.now()
        while accepted and accepted[0] <= now - 60.0:
            accepted.popleft()
        if len(accepted) >= r:
            answers.append((now, False))
            raise Status(429, accepted[0] + 60.0 - now if retry_after else None)
        accepted.append(now)
        answers.append((now, True))
        return "ok"

    while clock.now() < minutes * 60.0:
        try:
            limiter.call(server)
        except Status:
            pass
    return answers, limiter.current_rate


@pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "no header"])
def test_from_three_times_the_limit_it_converges_within_15_percent_with_few_429s(
    retry_after: bool,
) -> None:
    """R=60/min, started at 180: after 10 minutes, successes within 15 % of R, 429s under 5 %."""
    r = 60
    answers, rate = simulate(r, minutes=60, retry_after=retry_after)
    settled = [ok for when, ok in answers if when >= 10 * 60.0]
    per_minute = sum(settled) / 50
    assert 0.85 * r <= per_minute <= 1.15 * r, per_minute
    assert 1 - sum(settled) / len(settled) < 0.05
    assert 0.7 * r <= rate <= 1.15 * r, rate  # the rate it settled at, now
