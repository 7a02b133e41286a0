"""Events and hooks: the registry, delivery and the default logger."""

from __future__ import annotations

import copy
import inspect
import logging
import pickle
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import resilience as rs
from resilience.engine import emit, event_fields
from resilience.testing import FakeClock, capture_events

from .conftest import Runner
from .forms import run_async
from .threads import join_all


def test_default_hooks_are_the_logger() -> None:
    """Out of the box, the only global hook logs."""
    assert rs.get_hooks() == (rs.log_event,)


def test_set_hooks_returns_previous_and_validates() -> None:
    """set_hooks replaces all hooks, returns the old ones, and rejects non-callables."""
    previous = rs.set_hooks([])
    assert previous == (rs.log_event,)
    assert rs.get_hooks() == ()
    with pytest.raises(TypeError, match="hooks must be callables taking an event, got 3"):
        rs.set_hooks([3])  # type: ignore[list-item]


@pytest.mark.parametrize("value", [None, 5, rs.log_event])
def test_set_hooks_names_the_parameter_when_given_no_iterable(value: object) -> None:
    """set_hooks(None) says what it wanted and what it got, not "'NoneType' is not iterable"."""
    before = rs.get_hooks()
    with pytest.raises(
        TypeError, match=r"^hooks must be an iterable of callables taking an event, got "
    ) as caught:
        rs.set_hooks(value)  # type: ignore[arg-type]
    assert str(caught.value).endswith(f"got {value!r}")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert rs.get_hooks() == before


@pytest.mark.parametrize(
    "make",
    [
        lambda: rs.CircuitBreaker(on=ValueError, hooks=5),  # type: ignore[arg-type]
        lambda: rs.Retry(on=ValueError, hooks=5),  # type: ignore[arg-type]
        lambda: rs.Timeout(1.0, hooks=5),  # type: ignore[arg-type]
    ],
    ids=["CircuitBreaker", "Retry", "Timeout"],
)
def test_policies_name_the_hooks_parameter_when_given_no_iterable(make: Any) -> None:
    """hooks=5 on any policy: the message names ``hooks`` and the value."""
    with pytest.raises(
        TypeError, match=r"^hooks must be an iterable of callables taking an event, got 5$"
    ):
        make()


def test_docstrings_give_the_levels_events_log_at() -> None:
    """log_event's and each event's docstring state the level the event class logs at."""
    doc = rs.log_event.__doc__ or ""
    listed = re.findall(r"(WARNING|INFO|DEBUG)\b[^(;]*\(([^)]*)\)", " ".join(doc.split()))
    seen = set()
    for level, names in listed:
        for name in re.findall(r"`(\w+)`", names):
            assert getattr(rs, name).level == getattr(logging, level), (name, level)
            seen.add(name)
    events = {"RetryScheduled", "RetriesExhausted", "TimeoutExpired", "CallRejected"}
    events |= {"CircuitOpened", "CircuitHalfOpened", "CircuitClosed"}
    assert seen == events
    for name in events:
        cls = getattr(rs, name)
        stated = re.findall(r"Logged at (WARNING|INFO|DEBUG)", cls.__doc__ or "")
        assert all(getattr(logging, level) == cls.level for level in stated), name
    assert "Logged at WARNING" in (rs.CallRejected.__doc__ or "")


def test_add_and_remove_hook() -> None:
    """add_hook appends; remove_hook removes; removing a stranger is an error."""
    seen: list[rs.Event] = []
    rs.add_hook(seen.append)
    emit((), rs.CircuitHalfOpened, name="x")
    rs.remove_hook(seen.append)
    emit((), rs.CircuitHalfOpened, name="x")
    assert seen == [rs.CircuitHalfOpened(name="x")]
    with pytest.raises(ValueError, match="is not installed"):
        rs.remove_hook(seen.append)
    with pytest.raises(TypeError, match="hook must be a callable"):
        rs.add_hook("nope")  # type: ignore[arg-type]


def test_events_are_frozen() -> None:
    """Events are immutable facts."""
    event = rs.RetryScheduled(attempt=1, delay=0.5, elapsed=0.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.delay = 2.0


def test_fields_use_stable_prefixed_names() -> None:
    """Event.fields() gives log extras that cannot clash with LogRecord attributes."""
    event = rs.RetriesExhausted(
        name="n", target="t", attempts=3, elapsed=1.5, reason="attempts", error=KeyError("k")
    )
    assert event.fields() == {
        "resilience_event": "RetriesExhausted",
        "resilience_name": "n",
        "resilience_target": "t",
        "resilience_attempts": 3,
        "resilience_elapsed": 1.5,
        "resilience_reason": "attempts",
        "resilience_error": "KeyError: 'k'",
    }


def test_long_error_messages_are_truncated_in_logs() -> None:
    """An exception's text is cut to 200 characters in log fields."""
    event = rs.RetryScheduled(attempt=1, delay=0.0, elapsed=0.0, error=ValueError("x" * 500))
    assert len(event.fields()["resilience_error"]) == len("ValueError: ") + 200


def test_log_levels(caplog: pytest.LogCaptureFixture) -> None:
    """Give-ups, rejections and openings log at WARNING; handled failures and recoveries at INFO."""
    cases: list[tuple[type[rs.Event], dict[str, Any]]] = [
        (rs.RetryScheduled, {"attempt": 1, "delay": 1.0, "elapsed": 0.0}),
        (rs.RetriesExhausted, {"attempts": 2, "elapsed": 1.0, "reason": "attempts"}),
        (rs.TimeoutExpired, {"timeout": 1.0}),
        (rs.CallRejected, {"reason": "circuit_open"}),
        (rs.CircuitOpened, {"reason": "failures", "retry_after": 60.0}),
        (rs.CircuitHalfOpened, {}),
        (rs.CircuitClosed, {}),
    ]
    with caplog.at_level(logging.DEBUG, logger="resilience"):
        for cls, fields in cases:
            emit((), cls, name="svc", **fields)
    assert [r.levelname for r in caplog.records] == [
        "INFO",
        "WARNING",
        "INFO",
        "WARNING",
        "WARNING",
        "INFO",
        "INFO",
    ]
    assert all("'svc'" in r.getMessage() for r in caplog.records)


def test_logger_disabled_costs_no_record(caplog: pytest.LogCaptureFixture) -> None:
    """Below the logger's level, log_event emits nothing."""
    with caplog.at_level(logging.ERROR, logger="resilience"):
        rs.log_event(rs.RetryScheduled(attempt=1, delay=1.0, elapsed=0.0))
    assert caplog.records == []


def test_capture_events_from_many_threads() -> None:
    """capture_events collects events emitted concurrently by many threads."""

    def work() -> None:
        for _ in range(100):
            emit((), rs.CircuitHalfOpened, name="t")

    with capture_events() as events:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        join_all(threads)
    assert len(events) == 800


def test_registry_survives_concurrent_add_and_remove() -> None:
    """Adding and removing hooks from many threads loses none."""
    hooks = [lambda e, i=i: i for i in range(64)]

    def add_remove(h: rs.Hook) -> None:
        rs.add_hook(h)
        rs.remove_hook(h)
        rs.add_hook(h)

    threads = [threading.Thread(target=add_remove, args=(h,)) for h in hooks]
    for t in threads:
        t.start()
    join_all(threads)
    assert set(rs.get_hooks()) == {rs.log_event, *hooks}


# --- the catalogue -----------------------------------------------------------------

EVENTS = [
    cls
    for name in rs.__all__
    if isinstance(cls := getattr(rs, name), type)
    and issubclass(cls, rs.Event)
    and cls is not rs.Event
]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def documented_catalogue() -> dict[str, tuple[str, dict[str, str]]]:
    """docs/events.md's table: event name -> (level, {field: log key})."""
    text = DOCS.read_text()
    table = text.split("## The catalogue", 1)[1].split("\n## ", 1)[0]
    catalogue: dict[str, tuple[str, dict[str, str]]] = {}
    current = ""
    for line in table.splitlines():
        if not line.startswith("| ") or line.startswith(("| event", "| ---")):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        head, field, key = cells[0], cells[1].strip("`"), cells[2].strip("`")
        if head:
            match = re.match(r"`(\w+)` \((\w+)\)", head)
            current = match.group(1) if match else head
            level = match.group(2) if match else ""
            catalogue.setdefault(current, (level, {}))
        if field:
            catalogue[current][1][field] = key
    return catalogue


def test_every_event_is_in_the_one_table_with_its_fields_and_level() -> None:
    """docs/events.md lists every event, every field and its log key, and the real level."""
    catalogue = documented_catalogue()
    assert catalogue.pop("every event")[1] == {
        "name": "resilience_name",
        "target": "resilience_target",
    }
    assert set(catalogue) == {cls.__name__ for cls in EVENTS}
    for cls in EVENTS:
        level, fields = catalogue[cls.__name__]
        own = [name for name in event_fields(cls) if name not in ("name", "target")]
        assert fields == {name: f"resilience_{name}" for name in own}, cls.__name__
        assert level == logging.getLevelName(cls.level), cls.__name__


@pytest.mark.parametrize("cls", EVENTS, ids=lambda cls: cls.__name__)
def test_every_event_is_frozen_and_public(cls: type[rs.Event]) -> None:
    """Every event class is frozen, named resilience.X, documented, and has a message."""
    assert cls.__module__ == "resilience"
    assert cls.__doc__
    event = sample(cls)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]
    assert isinstance(event.message(), str)
    assert event.fields()["resilience_event"] == cls.__name__


def sample(cls: type[rs.Event], **fields: Any) -> rs.Event:
    """An event of type *cls*, its required fields filled in (1 for numbers, "x" otherwise)."""
    required: dict[str, Any] = {
        p.name: 1 if p.annotation in ("int", "float") else "x"
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty
    }
    return cls(**{**required, **fields})


@pytest.mark.parametrize("cls", EVENTS, ids=lambda cls: cls.__name__)
def test_every_event_pickles_copies_and_hashes_by_value(cls: type[rs.Event]) -> None:
    """An event comes back equal from pickle and copy, and equal events hash alike (issue 19)."""
    event = sample(cls, name="api", target="f")
    assert pickle.loads(pickle.dumps(event)) == event
    assert copy.deepcopy(event) == event
    assert hash(sample(cls, name="api", target="f")) == hash(event)
    assert event != sample(cls, name="other", target="f")
    assert event != rs.Event(name="api", target="f")  # another class is never equal


def test_event_reprs_read_as_the_call_that_made_them() -> None:
    """The repr lists every field, the base's first, as attrs wrote it (issue 19)."""
    error = ValueError("boom")
    event = rs.RetryScheduled(name="n", attempt=1, delay=0.5, elapsed=1.0, error=error)
    assert repr(event) == (
        "RetryScheduled(name='n', target=None, attempt=1, delay=0.5, elapsed=1.0, "
        "error=ValueError('boom'), kind=None)"
    )
    assert repr(rs.CircuitHalfOpened(name="b")) == "CircuitHalfOpened(name='b', target=None)"


def test_an_exception_field_is_left_out_of_equality_where_attrs_left_it_out() -> None:
    """RetryScheduled and RetriesExhausted compare without their error; FallbackUsed with it."""
    first, second = ValueError("a"), ValueError("b")
    assert rs.RetryScheduled(attempt=1, delay=0, elapsed=0, error=first) == rs.RetryScheduled(
        attempt=1, delay=0, elapsed=0, error=second
    )
    exhausted = {
        rs.RetriesExhausted(attempts=3, elapsed=0, reason="attempts", error=e)
        for e in (first, second)
    }
    assert len(exhausted) == 1
    assert rs.FallbackUsed(error=first) != rs.FallbackUsed(error=second)


def test_an_attrs_subclass_of_event_gets_the_base_fields_and_its_own() -> None:
    """@attrs.frozen subclasses of rs.Event (a user's, the Redis events) work as before."""

    @attrs.frozen(kw_only=True)
    class Paged(rs.Event):
        pages: int

    event = Paged(name="n", pages=2)
    assert (event.name, event.target, event.pages) == ("n", None, 2)
    assert event.fields() == {
        "resilience_event": "Paged",
        "resilience_name": "n",
        "resilience_target": None,
        "resilience_pages": 2,
    }
    assert event == Paged(name="n", pages=2) != Paged(name="n", pages=3)
    assert event_fields(Paged) == ("name", "target", "pages")
    assert repr(event).endswith("Paged(name='n', target=None, pages=2)")


def test_circuit_opened_says_how_long_calls_are_rejected() -> None:
    """The opening's message says how long calls will be rejected."""
    assert rs.CircuitOpened(name="api", reason="failures", retry_after=60.0).message() == (
        "'api': circuit opened (failure threshold reached); rejecting calls for 60 s"
    )
    assert (
        rs.CircuitOpened(name="api", reason="isolated")
        .message()
        .endswith("rejecting calls until closed or reset")
    )


def test_error_text_in_log_fields_is_redacted_and_a_broken_str_is_survived() -> None:
    """Credentials quoted by an exception are masked; an exception whose str raises is named."""
    event = rs.RetryScheduled(
        attempt=1,
        delay=0.0,
        elapsed=0.0,
        error=ValueError("GET /x?api_key=abc123 failed: Authorization: Bearer tok_0123456789"),
    )
    text = event.fields()["resilience_error"]
    assert "abc123" not in text
    assert "tok_0123456789" not in text
    assert text.startswith("ValueError: GET /x?api_key=*** failed")

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert (
        rs.RetryScheduled(attempt=1, delay=0.0, elapsed=0.0, error=Broken()).fields()[
            "resilience_error"
        ]
        == "Broken"
    )


# --- streams: Retry reports the restart it could not make ----------------------------


def test_interrupted_sync_stream_reports_retries_exhausted() -> None:
    """A retryable failure after the first item: RetriesExhausted(reason="stream_interrupted")."""
    clock = FakeClock()
    retry = rs.Retry(on=ConnectionError, attempts=3, name="feed", clock=clock)

    @retry
    def feed() -> Iterator[int]:
        yield 1
        raise ConnectionError("dropped")

    with capture_events() as events, pytest.raises(rs.StreamInterruptedError) as caught:
        list(feed())
    assert caught.value.partial == [1]
    [event] = events
    assert isinstance(event, rs.RetriesExhausted)
    assert (event.name, event.attempts, event.reason) == ("feed", 1, "stream_interrupted")
    assert event.error is caught.value.__cause__


def test_interrupted_async_stream_counts_the_attempts_before_it(backend: str) -> None:
    """An async stream restarted once, then interrupted: the event says attempt 2."""
    clock = FakeClock()
    retry = rs.Retry(on=ConnectionError, attempts=3, clock=clock, backoff=rs.backoff.constant(1.0))
    starts = []

    @retry
    async def feed() -> AsyncIterator[int]:
        starts.append(1)
        if len(starts) == 1:
            raise ConnectionError("refused")
        yield 1
        raise ConnectionError("dropped")

    async def consume() -> list[int]:
        return [item async for item in feed()]

    with capture_events() as events, pytest.raises(rs.StreamInterruptedError):
        run_async(consume, backend)
    scheduled, exhausted = events
    assert isinstance(scheduled, rs.RetryScheduled)
    assert isinstance(exhausted, rs.RetriesExhausted)
    assert (exhausted.attempts, exhausted.reason, exhausted.elapsed) == (
        2,
        "stream_interrupted",
        1.0,
    )


def test_a_stream_failure_that_is_not_retryable_reports_nothing() -> None:
    """After the first item, an error the classifier would not retry passes without an event."""
    retry = rs.Retry(on=ConnectionError, clock=FakeClock())

    @retry
    def feed() -> Iterator[int]:
        yield 1
        raise KeyError("bad")

    with capture_events() as events, pytest.raises(KeyError):
        list(feed())
    assert events == []


# --- the success path builds nothing ---------------------------------------------------


class Boom:
    """Stands for an event class: building one fails the test."""

    level = logging.WARNING  # as heard as the loudest events

    def __init__(self, **fields: Any) -> None:
        raise AssertionError(f"an event was built: {fields}")


EVENT_NAMES = {
    "resilience._retry": ("RetryScheduled", "RetriesExhausted"),
    "resilience._timeout": ("TimeoutExpired",),
    "resilience._breaker": ("CircuitOpened", "CircuitHalfOpened", "CircuitClosed"),
    "resilience._gate": ("CallRejected",),  # every gate refuses through engine.refuse
    "resilience._bulkhead": ("LimitChanged",),
    "resilience._ratelimit": ("RateLimitWaited", "RateChanged"),
}


@pytest.fixture
def no_event_may_be_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every policy module builds its events from Boom."""
    for module, names in EVENT_NAMES.items():
        for name in names:
            monkeypatch.setattr(f"{module}.{name}", Boom)


def policies(clock: FakeClock) -> dict[str, Any]:
    retry = rs.Retry(on=ValueError, clock=clock)
    breaker = rs.CircuitBreaker(on=ValueError, clock=clock)
    timeout = rs.Timeout(10.0, clock=clock)
    return {
        "retry": retry,
        "timeout": timeout,
        "breaker": breaker,
        "rate breaker": rs.CircuitBreaker(
            on=ValueError, trip=rs.SlowCallRate(0.5, slower_than=1.0, calls=10), clock=clock
        ),
        "pipeline": rs.compose(retry, breaker, timeout),
        "bulkhead": rs.Bulkhead(max_concurrent=2, clock=clock),
        "rate limiter": rs.RateLimiter(rate=100, per=1.0, adapt=rs.transient, clock=clock),
    }


@pytest.mark.usefixtures("no_event_may_be_built")
@pytest.mark.parametrize(
    "which", ["retry", "timeout", "breaker", "rate breaker", "pipeline", "bulkhead", "rate limiter"]
)
def test_success_path_builds_no_event_and_logs_nothing_with_logging_installed(
    which: str, mode: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default log hook and every logger at DEBUG, a success builds and logs nothing."""
    assert rs.get_hooks() == (rs.log_event,)
    policy = policies(FakeClock())[which]
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            assert mode.run(policy(mode.make(lambda: "ok"))) == "ok"
    assert [r for r in caplog.records if r.name.startswith("resilience")] == []


@pytest.mark.usefixtures("no_event_may_be_built")
def test_timeout_builds_no_event_when_nobody_listens(mode: Runner) -> None:
    """A Timeout that expires, with no hook anywhere, raises without building TimeoutExpired."""
    rs.set_hooks([])
    clock = FakeClock()
    outer, inner = rs.Timeout(1.0, clock=clock), rs.Timeout(5.0, clock=clock)

    @outer
    def expired() -> str:
        clock.advance(2.0)
        return mode.run(inner(mode.make(lambda: "never")))  # type: ignore[no-any-return]

    with pytest.raises(rs.TimeoutExceededError):
        expired()


@pytest.mark.usefixtures("no_event_may_be_built")
def test_breaker_builds_no_event_when_nobody_listens(mode: Runner) -> None:
    """Opening, rejecting, half-opening and closing, with no hook anywhere, build no event."""
    rs.set_hooks([])
    clock = FakeClock()
    breaker = rs.CircuitBreaker(on=ValueError, failure_threshold=2, reset_timeout=10.0, clock=clock)

    def fail() -> None:
        raise ValueError("x")

    for _ in range(2):
        with pytest.raises(ValueError, match="x"):
            mode.run(breaker(mode.make(fail)))
    with pytest.raises(rs.CircuitOpenError):
        mode.run(breaker(mode.make(lambda: "ok")))
    clock.advance(10.0)
    assert mode.run(breaker(mode.make(lambda: "ok"))) == "ok"
    assert breaker.state is rs.CircuitState.CLOSED


@pytest.mark.usefixtures("no_event_may_be_built")
def test_the_fixture_catches_an_event_built_on_a_failure_path() -> None:
    """With a hook listening, a failure does build its event: the fixture above would see it."""
    breaker = rs.CircuitBreaker(on=ValueError, failure_threshold=1, clock=FakeClock())
    with pytest.raises(AssertionError, match="an event was built"):
        breaker.open()
