"""What the requests and httpx integrations share: resolving policies, capping timeouts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import resilience as rs
from resilience.engine import to_seconds

__all__ = [
    "Policies",
    "PolicyFactory",
    "PolicySource",
    "TimeoutSource",
    "labelled",
    "lowest",
]

F = TypeVar("F", bound=Callable[..., Any])

PolicyFactory: TypeAlias = Callable[[str, str], "rs.Pipeline | rs.Policy | None"]
"""``factory(method, url) -> pipeline``: the pipeline for one request (`None`: none)."""

PolicySource: TypeAlias = "rs.Pipeline | rs.Policy | PolicyFactory | None"

TimeoutSource: TypeAlias = "float | Callable[[str, str], float | None] | None"
"""Seconds, or ``timeout(method, url) -> seconds``; `None`: no limit of the integration's own."""

_TIMEOUT = (
    "seconds (a number or a datetime.timedelta), a callable (method, url) -> seconds, or None"
)


class Policies:
    """Turns a `PolicySource` into the pipeline of each request, resolving fixed ones once."""

    __slots__ = ("_factory", "_fixed", "_timeout")

    def __init__(self, policy: PolicySource, timeout: TimeoutSource) -> None:
        self._fixed: rs.Pipeline | None = None
        self._factory: PolicyFactory | None = None
        if isinstance(policy, rs.Pipeline | rs.Policy):
            self._fixed = rs.compose(policy)
        elif callable(policy):
            self._factory = policy
        elif policy is not None:
            raise TypeError(
                "policy must be a resilience.Pipeline, a policy, a callable "
                f"(method, url) -> pipeline, or None; got {type(policy).__name__}: {policy!r}"
            )
        if timeout is not None and not callable(timeout):
            timeout = to_seconds("timeout", timeout, expected=_TIMEOUT)
        self._timeout = timeout

    def pipeline(self, method: str, url: str) -> rs.Pipeline | None:
        """Return the pipeline for a request, or `None` to send it as is."""
        if self._factory is None:
            return self._fixed
        policy = self._factory(method, url)
        if policy is None or isinstance(policy, rs.Pipeline):
            return policy
        if isinstance(policy, rs.Policy):
            return rs.compose(policy)
        raise TypeError(
            f"the policy factory must return a resilience.Pipeline, a policy or None, "
            f"got {type(policy).__name__}: {policy!r}"
        )

    def timeout(self, method: str, url: str) -> float | None:
        """Return the integration's own limit for a request, in seconds, or `None`."""
        timeout = self._timeout
        if timeout is None or not callable(timeout):
            return timeout
        return timeout(method, url)


def lowest(*values: float | None) -> float | None:
    """Return the smallest of the values that are not `None`, or `None` if all are."""
    found: float | None = None
    for value in values:
        if value is not None and (found is None or value < found):
            found = value
    return found


def labelled(attempt: F, method: str, url: str) -> F:
    """
    Return *attempt* under the name ``"METHOD /path"``, which events and notes show as the target.

    The path has no host and no query string (which may carry secrets).
    """
    name = f"{method} {urlsplit(url).path or '/'}"

    def run(*args: Any, **kwargs: Any) -> Any:
        return attempt(*args, **kwargs)

    run.__name__ = run.__qualname__ = name
    return run  # type: ignore[return-value]
