"""The public surface: exactly these names, each documented."""

from __future__ import annotations

import inspect
from pathlib import Path

import resilience as rs

PUBLIC = {
    "AsyncCircuitStore",
    "Attempt",
    "Attempts",
    "Budget",
    "Bulkhead",
    "BulkheadFullError",
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
    "Fallback",
    "FallbackUsed",
    "Hedge",
    "HedgeDelay",
    "HedgeStarted",
    "Hook",
    "InMemoryCircuitStore",
    "LimitChanged",
    "LatencySummary",
    "MetricsCollector",
    "MetricsSnapshot",
    "Pipeline",
    "Policy",
    "PercentileDelay",
    "PolicyMetrics",
    "RateChanged",
    "RateLimitPermit",
    "RateLimitWaited",
    "RateLimitedError",
    "RateLimiter",
    "RejectedError",
    "ResilienceError",
    "RetriesExhausted",
    "Retry",
    "RetryBudget",
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
    "TokenBudget",
    "Verdict",
    "add_hook",
    "backoff",
    "compose",
    "deadline",
    "get_hooks",
    "limits",
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


# --- resilience.engine: the kit for writing policies --------------------------

ENGINE = {
    "CALL",
    "MAX_KINDS",
    "NO_RESULT",
    "OTHER",
    "SYSTEM_CLOCK",
    "FastPath",
    "AwaitingGate",
    "Gate",
    "GatePolicy",
    "Observer",
    "PolicyMixin",
    "Recorder",
    "Sink",
    "TripWindow",
    "Wait",
    "Waiter",
    "Watchable",
    "WatchableLimiter",
    "astep",
    "bind_gate",
    "cancel_after",
    "check_clock",
    "check_name",
    "check_rng",
    "describe_seconds",
    "emit",
    "event_fields",
    "fork_safe_lock",
    "pipeline_field",
    "refuse",
    "relay",
    "rule_lines",
    "seconds_text",
    "step",
    "target_name",
    "testing_enabled",
    "to_classifier",
    "to_count",
    "to_hooks",
    "to_seconds",
    "trip_window",
}

ROOT = Path(__file__).resolve().parent.parent / "resilience"


def test_engine_all_is_exactly_its_surface() -> None:
    """resilience.engine.__all__ lists the kit, sorted as ruff sorts it."""
    import resilience.engine as engine

    assert set(engine.__all__) == ENGINE
    assert all(hasattr(engine, name) for name in engine.__all__)


def test_engine_names_are_documented() -> None:
    """Every name of the kit has a docstring and a place in docs/."""
    import resilience.engine as engine

    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    constants = {"MAX_KINDS", "OTHER", "SYSTEM_CLOCK"}  # documented in the module's docstring
    missing_doc = [
        name
        for name in engine.__all__
        if name not in constants and not inspect.getdoc(getattr(engine, name))
    ]
    assert missing_doc == []
    module_doc = inspect.getdoc(engine) or ""
    missing_page = [
        name
        for name in engine.__all__
        if f"resilience.engine.{name}" not in text and f"`{name}`" not in module_doc
    ]
    assert missing_page == []


def test_engine_classes_name_their_public_module() -> None:
    """Tracebacks and reprs say resilience.engine.X for the kit's own classes."""
    import resilience.engine as engine

    wrong = [
        name
        for name in engine.__all__
        if inspect.isclass(getattr(engine, name))
        and getattr(engine, name).__module__ not in ("resilience.engine", "resilience")
    ]
    assert wrong == []


def _private_imports(path: Path, package: tuple[str, ...] | None = None) -> list[str]:
    """The imports of *path* (a module of *package*) that reach a private core module."""
    import ast

    if package is None:  # e.g. ("resilience", "integrations")
        package = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join((*base, *(node.module.split(".") if node.module else ())))
            else:
                module = node.module or ""
            names = [module] if node.module or not node.level else []
            names += [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            # resilience._x, or resilience.<add-on>._x outside its own package
            if parts[0] != "resilience" or len(parts) < 2:
                continue
            if parts[1].startswith("_"):
                found.append(f"{path.name}:{node.lineno}: {name}")
    return found


def test_add_ons_import_no_private_name() -> None:
    """integrations/ and profiles/ are built on resilience and resilience.engine only."""
    paths = sorted((ROOT / "integrations").rglob("*.py")) + sorted(
        (ROOT / "profiles").rglob("*.py")
    )
    assert paths
    private = [line for path in paths for line in _private_imports(path)]
    assert private == []


def test_the_private_import_check_catches_one(tmp_path: Path) -> None:
    """The check above fails on an add-on that reaches into the core, relatively or not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from resilience._gate import Wait\n"
        "from .. import _events\n"
        "from ._common import lowest\n"
        "from resilience import engine\n"
    )
    assert _private_imports(sample, ("resilience", "integrations")) == [
        "sample.py:1: resilience._gate",
        "sample.py:1: resilience._gate.Wait",
        "sample.py:2: resilience._events",
    ]
