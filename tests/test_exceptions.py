"""The exception tree: hierarchy, fields, messages and pickling."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

import resilience as rs


def test_tree() -> None:
    """The tree is the one drawn in _exceptions.py."""
    assert issubclass(rs.RejectedError, rs.ResilienceError)
    assert issubclass(rs.CircuitOpenError, rs.RejectedError)
    assert issubclass(rs.TimeoutExceededError, rs.ResilienceError)
    assert issubclass(rs.TimeoutExceededError, TimeoutError)
    assert issubclass(rs.StreamInterruptedError, rs.ResilienceError)
    assert issubclass(rs.RetryExhaustedError, rs.ResilienceError)


def test_tracebacks_name_the_public_module() -> None:
    """Exported exceptions say resilience.X, not resilience._exceptions.X."""
    assert rs.CircuitOpenError.__module__ == "resilience"
    assert rs.TimeoutExceededError.__module__ == "resilience"


@pytest.mark.parametrize(
    "exc",
    [
        rs.CircuitOpenError("api", 12.5),
        rs.CircuitOpenError("api", None),
        rs.TimeoutExceededError(2.5),
        rs.TimeoutExceededError(2.5, "custom message"),
        rs.StreamInterruptedError("cut", ["a", "b"]),
        rs.RetryExhaustedError("busy", 3),
    ],
    ids=repr,
)
def test_exceptions_with_fields_pickle(exc: Exception) -> None:
    """Exceptions with fields survive pickling, fields and message included."""
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert vars(clone) == vars(exc)


def test_messages() -> None:
    """Messages state the facts."""
    assert str(rs.CircuitOpenError("api", 12.5)) == "circuit 'api' is open; retry after 12.5 s"
    assert str(rs.CircuitOpenError("api", None)) == "circuit 'api' is open"
    assert str(rs.TimeoutExceededError(2.5)) == "timed out after 2.5 s"
    assert (
        str(rs.RetryExhaustedError("busy", 1)) == "gave up after 1 attempt: the last result was str"
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: rs.CircuitOpenError("api", 12.5),
        lambda: rs.TimeoutExceededError(2.5, "custom message"),
        lambda: rs.StreamInterruptedError("cut", ["a", "b"]),
        lambda: rs.RetryExhaustedError("busy", 3),
    ],
    ids=["circuit-open", "timeout-exceeded", "stream-interrupted", "retry-exhausted"],
)
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickling_keeps_notes_and_extra_attributes(make: Callable[[], Exception], how: str) -> None:
    """PEP 678 notes (and any attribute set later) survive pickling, with the fields."""
    exc = make()
    exc.add_note("gave up after 3 attempts over 1.5 s")
    exc.add_note("second note")
    exc.extra = "kept"  # type: ignore[attr-defined]
    clone = pickle.loads(pickle.dumps(exc)) if how == "pickle" else copy.deepcopy(exc)
    assert type(clone) is type(exc)
    assert clone.__notes__ == ["gave up after 3 attempts over 1.5 s", "second note"]
    assert clone.extra == "kept"  # type: ignore[attr-defined]
    assert str(clone) == str(exc)
    assert vars(clone) == vars(exc)
    assert clone.args == exc.args
