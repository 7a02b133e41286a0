"""Logging: stdlib records with structured extras, sensible levels, structlog, no configuration."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
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
        "event": "'api' 'flaky_api.<locals>.create_job': circuit opened (failures); "
        "rejecting calls for 60 s",
        "level": "warning",
        "logger": "resilience",
        "resilience_event": "CircuitOpened",
        "resilience_name": "api",
        "resilience_target": "flaky_api.<locals>.create_job",
        "resilience_reason": "failures",
        "resilience_retry_after": 60.0,
    }


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
assert all(v == (logging.NOTSET, [], True, False) for v in ours.values()), ours
print("ok", sorted(ours))
"""


def test_importing_the_library_configures_no_logging() -> None:
    """In a fresh interpreter, importing resilience, its integrations and the profile adds no
    handler, sets no level and touches no logger but creating its own, untouched."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
