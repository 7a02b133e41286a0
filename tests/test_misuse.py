"""The mistakes of a first hour with the library, and what their errors say (issue #16)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

import resilience as rs
from resilience import backoff

from .forms import run_async

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
def test_acall_refuses_a_sync_function(
    make: Callable[[], rs.Policy | rs.Pipeline], backend: str
) -> None:
    """acall(sync_fn) raises a TypeError naming call, for every policy and pipelines."""
    policy = make()
    name = type(policy).__name__
    with pytest.raises(TypeError) as info:
        run_async(lambda: policy.acall(count), backend)  # type: ignore[union-attr, arg-type]
    assert str(info.value) == (
        f"{name}.acall() runs coroutine functions, and count is a function (it returned "
        f"int, not an awaitable): use {name}.call(count, ...)"
    )


def test_call_names_a_bound_coroutine_method() -> None:
    """call(obj.async_method) names the method."""
    with pytest.raises(TypeError, match=r"and Client\.get is a coroutine function"):
        rs.Retry(on=Exception).call(Client().get)  # type: ignore[unused-coroutine]


def test_acall_runs_a_sync_function_once_and_counts_nothing(backend: str) -> None:
    """acall(sync_fn) runs it once: not retried, no failure for the breaker."""
    runs: list[int] = []

    def work() -> int:
        runs.append(1)
        return 1

    breaker = rs.CircuitBreaker(on=Exception, failure_threshold=1)
    pipeline = rs.compose(rs.Retry(on=Exception, backoff=backoff.constant(0.0)), breaker)
    with pytest.raises(TypeError):
        run_async(lambda: pipeline.acall(work), backend)  # type: ignore[arg-type]
    assert runs == [1]
    assert breaker.state is rs.CircuitState.CLOSED


def test_acall_takes_a_sync_function_returning_an_awaitable(backend: str) -> None:
    """acall(lambda: coro()) still works: what counts is what the function returns."""
    assert run_async(lambda: rs.Retry(on=Exception).acall(lambda: fetch()), backend) == 1


def test_call_refuses_a_generator_function() -> None:
    """call(generator function) says to decorate it."""
    with pytest.raises(TypeError) as info:
        rs.Retry(on=Exception).call(numbers)
    assert str(info.value) == (
        "Retry.call() runs sync functions, and numbers is a generator function: "
        "decorate it, so that the policies cover its iteration"
    )


def test_acall_refuses_an_async_generator_function(backend: str) -> None:
    """acall(async generator function) says to decorate it."""
    with pytest.raises(TypeError) as info:
        run_async(lambda: rs.Retry(on=Exception).acall(anumbers), backend)  # type: ignore[arg-type]
    assert str(info.value) == (
        "Retry.acall() runs coroutine functions, and anumbers is an async generator "
        "function: decorate it, so that the policies cover its iteration"
    )


def test_call_refuses_what_is_not_callable() -> None:
    """retry.call(42) says what it got, as retry(42) does; it never runs the policy."""
    with pytest.raises(TypeError) as info:
        rs.Retry(on=Exception).call(42)  # type: ignore[arg-type]
    assert str(info.value) == "Retry.call() runs callables, got int: 42"


def test_call_does_not_echo_a_key_given_by_mistake() -> None:
    """retry.call("sk-...") says it got a str without showing the key."""
    with pytest.raises(TypeError) as info:
        rs.Retry(on=Exception).call("sk-abcdefghijklmnop")  # type: ignore[arg-type]
    assert str(info.value) == "Retry.call() runs callables, got str: 'sk-***'"


def test_acall_refuses_what_is_not_callable(backend: str) -> None:
    """await pipeline.acall(42) says what it got."""
    with pytest.raises(TypeError) as info:
        run_async(lambda: rs.compose(rs.Timeout(1.0)).acall(42), backend)  # type: ignore[arg-type]
    assert str(info.value) == "Pipeline.acall() runs callables, got int: 42"


def test_call_takes_builtins_and_bound_methods() -> None:
    """Builtins and bound sync methods pass the check."""
    retry = rs.Retry(on=Exception)
    assert retry.call(len, "ab") == 2
    assert retry.call([3].pop) == 3


# --- messages that say what to do (issue #16, item 3) -------------------------------------


def test_retry_without_parentheses_says_to_call_it() -> None:
    """@rs.Retry on a function says to make the policy first."""
    with pytest.raises(TypeError) as info:

        @rs.Retry  # type: ignore[call-arg]
        def fetch_once() -> int:
            return 1

    assert str(info.value) == (
        "resilience.Retry was given the function fetch_once: to decorate, make the policy "
        "first, as in @resilience.Retry(on=...), not @resilience.Retry"
    )


def test_timeout_without_parentheses_says_to_call_it() -> None:
    """@rs.Timeout on a function says to make the policy first, with its seconds."""
    with pytest.raises(TypeError) as info:

        @rs.Timeout  # type: ignore[arg-type]
        def fetch_once() -> int:
            return 1

    assert str(info.value) == (
        "resilience.Timeout was given the function fetch_once: to decorate, make the policy "
        "first, as in @resilience.Timeout(10.0), not @resilience.Timeout"
    )


BARE: dict[str, tuple[type, str]] = {
    "CircuitBreaker": (rs.CircuitBreaker, "on=..."),
    "Bulkhead": (rs.Bulkhead, "max_concurrent=..."),
    "Fallback": (rs.Fallback, "on=..., to=..."),
    "Hedge": (rs.Hedge, "delay=..., on=..."),
}


@pytest.mark.parametrize(("cls", "example"), BARE.values(), ids=BARE)
def test_every_policy_without_parentheses_says_to_call_it(cls: type, example: str) -> None:
    """Each keyword-only policy used bare names its required arguments."""
    name = cls.__name__
    with pytest.raises(TypeError) as info:
        cls(count)
    assert str(info.value) == (
        f"resilience.{name} was given the function count: to decorate, make the policy "
        f"first, as in @resilience.{name}({example}), not @resilience.{name}"
    )


def test_positional_arguments_to_a_keyword_only_policy() -> None:
    """rs.Retry(ValueError) says that its arguments are keywords."""
    with pytest.raises(TypeError) as info:
        rs.Retry(ValueError)  # type: ignore[call-arg]
    assert str(info.value) == (
        "resilience.Retry takes keyword arguments only, as in resilience.Retry(on=...); "
        "got 1 positional argument (ValueError)"
    )


def test_a_policy_of_your_own_keeps_its_positional_arguments() -> None:
    """A PolicyMixin subclass whose __init__ takes positional arguments is left alone."""
    from resilience.engine import PolicyMixin

    class Tagged(PolicyMixin):
        def __init__(self, tag: str) -> None:
            self.tag = tag

    assert Tagged("x").tag == "x"


ON_REQUIRED = {
    "Retry": lambda: rs.Retry(),  # type: ignore[call-arg]
    "CircuitBreaker": lambda: rs.CircuitBreaker(),  # type: ignore[call-arg]
    "Fallback": lambda: rs.Fallback(to=0),  # type: ignore[call-arg]
    "Hedge": lambda: rs.Hedge(delay=1.0),  # type: ignore[call-arg]
}


@pytest.mark.parametrize("make", ON_REQUIRED.values(), ids=ON_REQUIRED)
def test_leaving_out_on_says_what_on_takes(make: Callable[[], object]) -> None:
    """rs.Retry() gets the message of on=None, not Python's missing-argument one."""
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == (
        "on must be an ErrorClassifier, an exception type or tuple of them, a Rule, or a "
        "predicate; got nothing (there is no default: say what is worth handling, for "
        "example on=resilience.transient)"
    )


def test_giving_up_says_why_in_words_with_a_plural() -> None:
    """RetriesExhausted's message: "3 attempts", a reason in words, no exponent."""
    event = rs.RetriesExhausted(
        name="api", attempts=3, elapsed=1.34e-05, reason="attempts", error=ConnectionError("x")
    )
    assert event.message() == (
        "'api': gave up after 3 attempts over 0.0000134 s (no attempts left); "
        "last failure: ConnectionError: x"
    )
    one = rs.RetriesExhausted(attempts=1, elapsed=0.5, reason="not_retryable")
    assert one.message() == (
        "call: gave up after 1 attempt over 0.5 s (the last failure is not one to retry); "
        "last failure: a refused result"
    )


REASONS = {
    rs.CallRejected: ("circuit_open", "circuit_half_open", "circuit_isolated", "bulkhead_full"),
    rs.CircuitOpened: (
        "failures",
        "failure_rate",
        "slow_calls",
        "half_open_failure",
        "manual",
        "isolated",
    ),
    rs.CircuitClosed: ("probes_succeeded", "manual", "reset"),
    rs.LimitChanged: ("overload", "sample"),
}


@pytest.mark.parametrize(
    ("cls", "reason"),
    [(cls, reason) for cls, reasons in REASONS.items() for reason in reasons],
)
def test_messages_say_reasons_in_words(cls: type[rs.Event], reason: str) -> None:
    """No reason code (``circuit_open``) in a message; the field keeps it."""
    extra = {"limit": 2, "previous": 4} if cls is rs.LimitChanged else {}
    event = cls(name="api", reason=reason, **extra)  # type: ignore[call-arg, arg-type]
    assert "_" not in event.message()
    assert event.fields()["resilience_reason"] == reason


def test_a_gate_of_your_own_has_its_reason_shown_in_words() -> None:
    """An unknown reason code is shown with spaces for its underscores."""
    assert rs.CallRejected(name="api", reason="rate_limited").message() == (
        "'api': call rejected (rate limited)"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.34e-05, "0.0000134"), (0.25, "0.25"), (1400.0, "1400"), (2.0, "2"), (1e-12, "0")],
)
def test_seconds_in_messages_have_no_exponent(value: float, text: str) -> None:
    """Durations in sentences are written out: 0.0000134, not 1.34e-05."""
    from resilience.engine import seconds_text

    assert seconds_text(value) == text


def test_timeout_messages_have_no_exponent() -> None:
    """A tiny timeout is written out in its error and in explain()."""
    assert str(rs.TimeoutExceededError(0.00001)) == "timed out after 0.00001 s"
    assert "1e-05" not in rs.Timeout(0.00001).explain()
    assert "0.00001 s" in rs.Timeout(0.00001).explain()


def test_pipeline_repr_shows_a_shared_classifier_once() -> None:
    """compose(retry, breaker) on one classifier prints it once."""
    retry = rs.Retry(on=rs.transient)
    breaker = rs.CircuitBreaker(on=rs.transient, name="b")
    text = repr(rs.compose(retry, breaker))
    assert text.count(repr(rs.transient)) == 1
    assert text == (
        f"compose({retry!r}, <CircuitBreaker name='b', on=<the same as Retry's>, "
        "failure_threshold=5, reset_timeout=60.0: CLOSED>)"
    )
