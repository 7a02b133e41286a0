"""Events and hooks: the registry, delivery and the default logger."""

from __future__ import annotations

import logging
import threading
from typing import Any

import attrs
import pytest

import resilience as rs
from resilience._events import emit
from resilience.testing import capture_events


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
        event.delay = 2.0  # type: ignore[misc]


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
    """Retries log at INFO; exhaustion, timeouts, rejections, openings at WARNING."""
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
        "WARNING",
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
        for t in threads:
            t.join()
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
    for t in threads:
        t.join()
    assert set(rs.get_hooks()) == {rs.log_event, *hooks}
