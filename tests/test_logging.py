"""Logging: stdlib records with structured extras, sensible levels, structlog, no configuration."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
import structlog

import resilience as rs
from resilience.testing import FakeClock


@pytest.fixture
def resilience_logger() -> Iterator[logging.Logger]:
    """The resilience logger, restored after the test."""
    logger = logging.getLogger("resilience")
    level, handlers, propagate = logger.level, logger.handlers[:], logger.propagate
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


def flaky_api(failures: int) -> Callable[[], str]:
    calls = {"n": 0}

    def create_job() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError("connection refused")
        return "job-1"

    return create_job


def test_an_outage_logs_the_levels_the_design_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retries at INFO; the opening, the give-up and each rejection at WARNING (DESIGN.md)."""
    clock = FakeClock()
    retry = rs.Retry(on=rs.transient, attempts=2, backoff=rs.backoff.constant(1.0), clock=clock)
    breaker = rs.CircuitBreaker(on=rs.transient, name="api", failure_threshold=2, clock=clock)
    call: Callable[[], object] = rs.compose(retry, breaker)(flaky_api(failures=100))
    with caplog.at_level(logging.DEBUG, logger="resilience"):
        with pytest.raises(ConnectionError):
            call()  # two failures: the breaker opens on the second
        for _ in range(50):  # the outage goes on: every call is rejected
            with pytest.raises(rs.CircuitOpenError):
                call()
    levels = [(r.levelname, r.__dict__["resilience_event"]) for r in caplog.records]
    assert levels[:3] == [
        ("INFO", "RetryScheduled"),
        ("WARNING", "CircuitOpened"),
        ("WARNING", "RetriesExhausted"),
    ]
    assert levels[3:] == [("WARNING", "CallRejected")] * 50


def test_a_filter_on_the_resilience_logger_drops_rejections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The documented filter keeps an outage to its opening and give-up lines."""

    class DropRejections(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return getattr(record, "resilience_event", None) != "CallRejected"

    clock = FakeClock()
    breaker = rs.CircuitBreaker(on=rs.transient, name="api", failure_threshold=1, clock=clock)
    call: Callable[[], object] = breaker(flaky_api(failures=100))
    flt = DropRejections()
    logging.getLogger("resilience").addFilter(flt)
    try:
        with caplog.at_level(logging.DEBUG, logger="resilience"):
            with pytest.raises(ConnectionError):
                call()
            for _ in range(20):
                with pytest.raises(rs.CircuitOpenError):
                    call()
    finally:
        logging.getLogger("resilience").removeFilter(flt)
    assert [r.__dict__["resilience_event"] for r in caplog.records] == ["CircuitOpened"]


def test_records_carry_structured_extras_under_stable_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every resilience_* field is an attribute of the record, for structured formatters."""
    clock = FakeClock()
    retry = rs.Retry(on=ConnectionError, attempts=2, name="jobs", clock=clock)
    with caplog.at_level(logging.INFO, logger="resilience"), pytest.raises(ConnectionError):
        retry.call(flaky_api(failures=5))
    scheduled, exhausted = caplog.records
    assert scheduled.__dict__["resilience_event"] == "RetryScheduled"
    assert scheduled.__dict__["resilience_name"] == "jobs"
    assert scheduled.__dict__["resilience_target"] == "flaky_api.<locals>.create_job"
    assert scheduled.__dict__["resilience_error"] == "ConnectionError: connection refused"
    assert exhausted.__dict__["resilience_reason"] == "attempts"
    assert exhausted.name == "resilience"


def test_structlog_processor_formatter_receives_the_fields(
    resilience_logger: logging.Logger,
) -> None:
    """Through structlog's stdlib integration, the extras arrive as keys of the JSON event."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        )
    )
    resilience_logger.addHandler(handler)
    resilience_logger.setLevel(logging.INFO)
    resilience_logger.propagate = False
    clock = FakeClock()
    breaker = rs.CircuitBreaker(on=ConnectionError, name="api", failure_threshold=1, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(flaky_api(failures=1))
    [line] = out.getvalue().splitlines()
    assert json.loads(line) == {
        "event": "'api' 'flaky_api.<locals>.create_job': circuit opened (failure "
        "threshold reached); rejecting calls for 60 s",
        "level": "warning",
        "logger": "resilience",
        "resilience_event": "CircuitOpened",
        "resilience_name": "api",
        "resilience_target": "flaky_api.<locals>.create_job",
        "resilience_reason": "failures",
        "resilience_retry_after": 60.0,
    }


# --- a hook that raises: its own failure is logged, never the caller's ---------------------


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ERROR records, formatted as a handler would: message, then traceback."""
    formatter = logging.Formatter("%(levelname)s %(message)s")
    return [formatter.format(r) for r in caplog.records if r.levelno == logging.ERROR]


def test_a_raising_hook_logs_its_own_failure_not_the_callers_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The record carries the hook's error (type, redacted message, traceback), and neither
    the caller's exception, whose message quotes a key, nor the key."""
    key = "sk-proj-" + uuid.uuid4().hex

    def bad_hook(event: rs.Event) -> None:
        raise ZeroDivisionError("division by zero near " + key)

    rs.add_hook(bad_hook)
    breaker = rs.CircuitBreaker(on=ConnectionError, failure_threshold=1, clock=FakeClock())

    def call() -> None:
        raise ConnectionError("POST failed with key " + key)

    with (
        caplog.at_level(logging.ERROR, logger="resilience"),
        pytest.raises(ConnectionError) as caught,
    ):
        breaker.call(call)
    assert key in str(caught.value)  # the caller's exception is the caller's, untouched
    [text] = _errors(caplog)
    assert key not in text
    assert key.removeprefix("sk-proj-") not in text
    assert "ConnectionError" not in text
    assert "During handling" not in text
    assert text.startswith("ERROR resilience: hook <function ")
    assert "raised on CircuitOpened; ignored: ZeroDivisionError: division by zero near sk-***" in (
        text
    )
    assert "in bad_hook" in text  # its traceback, for debugging
    assert text.endswith("\nZeroDivisionError: division by zero near sk-***")


def test_a_hook_failure_keeps_its_own_chain_but_not_the_event_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a hook raised while handling its own errors stays chained (redacted); an error
    chained to the event's exception (the caller's) is cut there."""
    key = "sk-" + uuid.uuid4().hex

    def chained(event: rs.Event) -> None:
        try:
            _ = {"known": 1}["missing " + key]
        except KeyError as exc:
            error = RuntimeError("hook bug")
            error.add_note("while counting " + key)
            raise error from exc

    def from_error(event: rs.Event) -> None:
        raise RuntimeError("re-raised") from getattr(event, "error", None)

    retry = rs.Retry(on=ConnectionError, attempts=2, clock=FakeClock(), hooks=[chained, from_error])

    def call() -> None:
        raise ConnectionError("refused for " + key)

    with caplog.at_level(logging.ERROR, logger="resilience"), pytest.raises(ConnectionError):
        retry.call(call)
    texts = _errors(caplog)
    assert len(texts) == 4  # two hooks, RetryScheduled then RetriesExhausted
    assert all(key not in t and "ConnectionError" not in t for t in texts)
    own = [t for t in texts if "hook bug" in t]
    assert len(own) == 2
    assert all("KeyError: 'missing sk-***'" in t and "direct cause" in t for t in own)
    assert all(t.endswith("RuntimeError: hook bug\nwhile counting sk-***") for t in own)
    cut = [t for t in texts if "re-raised" in t]
    assert len(cut) == 2
    assert all("direct cause" not in t and "During handling" not in t for t in cut)


def test_a_hook_with_a_broken_repr_that_raises_is_still_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook whose repr raises too is named by its type; the call is unaffected."""

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        def __call__(self, event: rs.Event) -> None:
            raise ValueError("no hook")

    retry = rs.Retry(on=ConnectionError, attempts=2, clock=FakeClock(), hooks=[Broken()])
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert retry.call(flaky_api(failures=1)) == "job-1"
    [text] = _errors(caplog)
    assert "hook <Broken object> raised on RetryScheduled; ignored: ValueError: no hook" in text


IMPORT_CHECK = """
import logging, sys
import requests, httpx, opentelemetry.metrics  # third parties configure their own loggers

def state():
    loggers = {name: logger for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    return (
        logging.root.level, list(logging.root.handlers), logging.root.manager.disable,
        {name: (l.level, list(l.handlers), l.propagate, l.disabled) for name, l in loggers.items()},
        logging.getLoggerClass(), logging.getLogRecordFactory(), logging.lastResort,
    )

before = state()
import resilience, resilience.testing, resilience.profiles.saas_litellm
import resilience.profiles.saas_litellm.emulator, resilience.profiles.saas_litellm.demo
import resilience.integrations.requests, resilience.integrations.httpx
import resilience.integrations.otel
after = state()
level, handlers, disable, loggers, cls, factory, last = after
ours = {n: v for n, v in loggers.items() if n == "resilience" or n.startswith("resilience.")}
assert (level, handlers, disable, cls, factory, last) == before[:3] + before[4:], "root changed"
for name, value in loggers.items():
    if name in before[3]:
        assert value == before[3][name], name
top = ours.pop("resilience")
assert top[0] == logging.NOTSET and top[2:] == (True, False), top
assert [type(h) for h in top[1]] == [logging.NullHandler], top  # issue 16: no last resort
assert all(v == (logging.NOTSET, [], True, False) for v in ours.values()), ours
print("ok", sorted(ours))
"""


def test_importing_the_library_configures_no_logging() -> None:
    """In a fresh interpreter, importing resilience, its integrations and the profile sets no
    level and touches no logger but its own, which gets one NullHandler (issue 16)."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
