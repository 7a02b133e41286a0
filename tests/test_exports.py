"""The public surface: exactly these names, each documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import resilience as rs

PUBLIC = {
    "Attempt",
    "Attempts",
    "CallRejected",
    "CircuitBreaker",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpenError",
    "CircuitOpened",
    "CircuitPermit",
    "CircuitRejection",
    "CircuitState",
    "CircuitStore",
    "CircuitTransition",
    "Clock",
    "Description",
    "ErrorClassifier",
    "Event",
    "FailureRate",
    "Hook",
    "InMemoryCircuitStore",
    "LatencySummary",
    "MetricsCollector",
    "MetricsSnapshot",
    "Pipeline",
    "Policy",
    "PolicyMetrics",
    "RejectedError",
    "ResilienceError",
    "RetriesExhausted",
    "Retry",
    "RetryExhaustedError",
    "RetryScheduled",
    "Rule",
    "Runner",
    "Shape",
    "SlowCallRate",
    "StreamInterruptedError",
    "Timeout",
    "TimeoutExceededError",
    "TimeoutExpired",
    "Verdict",
    "add_hook",
    "backoff",
    "compose",
    "deadline",
    "get_hooks",
    "log_event",
    "remove_hook",
    "set_hooks",
    "transient",
}

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_all_is_exactly_the_public_surface() -> None:
    """__all__ lists the public names, sorted, and nothing else."""
    assert set(rs.__all__) == PUBLIC
    assert rs.__all__ == sorted(rs.__all__)


def test_every_public_name_has_a_docstring() -> None:
    """A public name without a docstring is unfinished."""
    missing = [name for name in rs.__all__ if not inspect.getdoc(getattr(rs, name))]
    assert missing == []


def test_every_public_name_has_a_place_in_the_docs() -> None:
    """Every public name is mentioned in docs/ (the API reference or a page)."""
    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    missing = [
        name for name in rs.__all__ if f"resilience.{name}" not in text and f"rs.{name}" not in text
    ]
    assert missing == []


def test_exported_classes_name_the_public_module() -> None:
    """Tracebacks and reprs say resilience.X, not a private module."""
    wrong = [
        name
        for name in rs.__all__
        if inspect.isclass(getattr(rs, name)) and getattr(rs, name).__module__ != "resilience"
    ]
    assert wrong == []


def test_public_modules_do_not_import_optional_dependencies() -> None:
    """import resilience imports only its three runtime dependencies."""
    import subprocess
    import sys

    code = (
        "import sys, resilience, resilience.testing\n"
        "bad = [m for m in ('requests', 'httpx', 'aiohttp', 'redis', 'opentelemetry', 'urllib3')"
        " if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
