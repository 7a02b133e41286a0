"""
resilience: composable resilience policies.

Retry, Timeout, CircuitBreaker and ErrorClassifier stack as decorators, work as
context managers, and compose into pipelines, on functions, methods, coroutines
and (async) generators, at a cost close to a bare function call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import backoff as backoff
from ._classify import ErrorClassifier as ErrorClassifier
from ._classify import Rule as Rule
from ._classify import Verdict as Verdict
from ._classify import transient as transient
from ._clock import Clock as Clock
from ._events import CallRejected as CallRejected
from ._events import CircuitClosed as CircuitClosed
from ._events import CircuitHalfOpened as CircuitHalfOpened
from ._events import CircuitOpened as CircuitOpened
from ._events import Event as Event
from ._events import FallbackUsed as FallbackUsed
from ._events import HedgeStarted as HedgeStarted
from ._events import Hook as Hook
from ._events import LimitChanged as LimitChanged
from ._events import RateChanged as RateChanged
from ._events import RateLimitWaited as RateLimitWaited
from ._events import RetriesExhausted as RetriesExhausted
from ._events import RetryScheduled as RetryScheduled
from ._events import TimeoutExpired as TimeoutExpired
from ._events import add_hook as add_hook
from ._events import get_hooks as get_hooks
from ._events import log_event as log_event
from ._events import remove_hook as remove_hook
from ._events import set_hooks as set_hooks
from ._exceptions import BulkheadFullError as BulkheadFullError
from ._exceptions import CircuitOpenError as CircuitOpenError
from ._exceptions import RateLimitedError as RateLimitedError
from ._exceptions import RejectedError as RejectedError
from ._exceptions import ResilienceError as ResilienceError
from ._exceptions import RetryExhaustedError as RetryExhaustedError
from ._exceptions import StreamInterruptedError as StreamInterruptedError
from ._exceptions import TimeoutExceededError as TimeoutExceededError
from ._pipeline import Pipeline as Pipeline
from ._pipeline import Policy as Policy
from ._pipeline import Runner as Runner
from ._pipeline import Shape as Shape
from ._pipeline import compose as compose
from ._retry import Attempt as Attempt
from ._retry import Attempts as Attempts
from ._retry import Retry as Retry

if TYPE_CHECKING:
    from . import deadline as deadline
    from . import limits as limits
    from ._breaker import CircuitBreaker as CircuitBreaker
    from ._budget import Budget as Budget
    from ._budget import RetryBudget as RetryBudget
    from ._budget import TokenBudget as TokenBudget
    from ._bulkhead import Bulkhead as Bulkhead
    from ._circuit import AsyncCircuitStore as AsyncCircuitStore
    from ._circuit import CircuitPermit as CircuitPermit
    from ._circuit import CircuitRejection as CircuitRejection
    from ._circuit import CircuitState as CircuitState
    from ._circuit import CircuitStore as CircuitStore
    from ._circuit import CircuitTransition as CircuitTransition
    from ._circuit import FailureRate as FailureRate
    from ._circuit import InMemoryCircuitStore as InMemoryCircuitStore
    from ._circuit import SlowCallRate as SlowCallRate
    from ._explain import Description as Description
    from ._fallback import Fallback as Fallback
    from ._hedge import Hedge as Hedge
    from ._hedge import HedgeDelay as HedgeDelay
    from ._hedge import PercentileDelay as PercentileDelay
    from ._metrics import LatencySummary as LatencySummary
    from ._metrics import MetricsCollector as MetricsCollector
    from ._metrics import MetricsSnapshot as MetricsSnapshot
    from ._metrics import PolicyMetrics as PolicyMetrics
    from ._ratelimit import RateLimiter as RateLimiter
    from ._ratelimit import RateLimitPermit as RateLimitPermit
    from ._timeout import Timeout as Timeout

# `import resilience` loads what `@rs.Retry(...)` needs on its success path (the
# classifier, the backoffs, the events, the exceptions, compose). The rest is
# imported when first named, here (module __getattr__) or by `from resilience
# import X`, and is then an ordinary global: no cost on any call path.
_LAZY: dict[str, str] = {
    "CircuitBreaker": "._breaker",
    "AsyncCircuitStore": "._circuit",
    "CircuitPermit": "._circuit",
    "CircuitRejection": "._circuit",
    "CircuitState": "._circuit",
    "CircuitStore": "._circuit",
    "CircuitTransition": "._circuit",
    "FailureRate": "._circuit",
    "InMemoryCircuitStore": "._circuit",
    "SlowCallRate": "._circuit",
    "Timeout": "._timeout",
    "Budget": "._budget",
    "RetryBudget": "._budget",
    "TokenBudget": "._budget",
    "Description": "._explain",
    "RateLimiter": "._ratelimit",
    "RateLimitPermit": "._ratelimit",
    "Bulkhead": "._bulkhead",
    "Fallback": "._fallback",
    "Hedge": "._hedge",
    "HedgeDelay": "._hedge",
    "PercentileDelay": "._hedge",
    "LatencySummary": "._metrics",
    "MetricsCollector": "._metrics",
    "MetricsSnapshot": "._metrics",
    "PolicyMetrics": "._metrics",
    "deadline": "",
    "limits": "",
}


if not TYPE_CHECKING:  # type checkers see the imports above, and flag unknown names

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'resilience' has no attribute {name!r}")
        import importlib

        if not module:  # a submodule
            value: Any = importlib.import_module(f"{__name__}.{name}")
        else:
            value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0.dev0"

__all__ = [
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
    "LatencySummary",
    "LimitChanged",
    "MetricsCollector",
    "MetricsSnapshot",
    "PercentileDelay",
    "Pipeline",
    "Policy",
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
]

for _name in (
    "Clock",
    "Policy",
    "Runner",
    "Shape",
    "Hook",
    "Attempt",
    "Attempts",
    "Retry",
):
    globals()[_name].__module__ = "resilience"
del _name
