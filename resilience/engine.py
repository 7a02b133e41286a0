"""
The engine, for writing policies: everything the library's own policies are built on.

A policy is an object with ``bind(inner, shape) -> Runner`` (`resilience.Policy`).
Most policies are a **gate** around the call: they decide before it (admit,
wait, or refuse with a `resilience.RejectedError`) and learn after it (a
success, a failure, or a cancellation). Write the decisions as a `Gate`,
subclass `GatePolicy`, and the engine supplies the rest: the drivers for
functions, coroutine functions and (async) generator functions, ``with`` and
``async with``, waiting (`Wait`, `Waiter`) in sync and async code without
passing the deadline, and the rule that cancellation is never a failure.
A gate whose decisions need I/O is an `AwaitingGate`: the async drivers
await them.

```python
import resilience as rs
from resilience.engine import GatePolicy, fork_safe_lock


class Concurrency(GatePolicy):
    \"\"\"Refuse a call while *limit* calls run.\"\"\"

    def __init__(self, limit: int) -> None:
        self.limit, self.running, self.lock = limit, 0, fork_safe_lock()

    def admit(self, target: object, /) -> None:
        with self.lock:
            if self.running >= self.limit:
                raise rs.RejectedError(f"{self.limit} calls running already")
            self.running += 1

    def release(self, *outcome: object) -> None:
        with self.lock:
            self.running -= 1

    on_success = on_failure = on_cancel = release
```

The circuit breaker, `resilience.integrations.redis.RetryAfterPause` and the
metrics observer are gates written this way; docs/writing-policies.md walks
through it. Policies that re-run or race the call (Retry, Timeout) write their
own runners and share the stream helpers `step`, `astep` and `relay`.

Besides gates, the kit holds what the library's own add-ons use, so that
``resilience.integrations`` and ``resilience.profiles`` import only from here
and from `resilience` (a test holds them to it):

- policies: `PolicyMixin` (decorator, `call`, `acall`, `explain` from
  ``bind``), `pipeline_field` (its attrs field), `CALL` (the innermost
  runner), `target_name` (an event's label for a function);
- events: `emit` (builds an event only when someone listens), `refuse` (a
  `CallRejected` event, then the gate's `RejectedError`), `event_fields` (an
  event class's field names, for exporters);
- validation, at construction: `to_seconds`, `to_count`, `to_hooks`,
  `to_classifier`, `check_clock`, `check_name`, `check_rng`;
- time: `SYSTEM_CLOCK`, `testing_enabled`, `cancel_after` (a deadline for
  an async block under the running library: asyncio, or trio's cancel scope);
- locks: `fork_safe_lock` (a `threading.Lock` that a forked child gets back
  released: use it for every lock a policy keeps);
- explaining: `rule_lines`, `describe_seconds`, `seconds_text`;
- circuit stores: `TripWindow`, `trip_window`;
- metrics back ends: `Observer`, `Sink`, `Recorder`, `Watchable`, `WatchableLimiter`,
  `MAX_KINDS`, `OTHER`.
"""

from __future__ import annotations

from ._aio import timeout as cancel_after
from ._circuit import TripWindow as TripWindow
from ._circuit import trip_window as trip_window
from ._classify import to_classifier as to_classifier
from ._clock import SYSTEM_CLOCK as SYSTEM_CLOCK
from ._clock import testing_enabled as testing_enabled
from ._events import emit as emit
from ._events import field_names as event_fields
from ._exceptions import seconds_text as seconds_text
from ._explain import rule_lines as rule_lines
from ._explain import seconds as describe_seconds
from ._fork import fork_safe_lock as fork_safe_lock
from ._gate import NO_RESULT as NO_RESULT
from ._gate import AwaitingGate as AwaitingGate
from ._gate import FastPath as FastPath
from ._gate import Gate as Gate
from ._gate import GatePolicy as GatePolicy
from ._gate import Wait as Wait
from ._gate import Waiter as Waiter
from ._gate import bind_gate as bind_gate
from ._gate import refuse as refuse
from ._metrics import MAX_KINDS as MAX_KINDS
from ._metrics import OTHER as OTHER
from ._metrics import Observer as Observer
from ._metrics import Recorder as Recorder
from ._metrics import Sink as Sink
from ._metrics import Watchable as Watchable
from ._metrics import WatchableLimiter as WatchableLimiter
from ._pipeline import CALL as CALL
from ._pipeline import PolicyMixin as PolicyMixin
from ._pipeline import pipeline_field as pipeline_field
from ._pipeline import target_name as target_name
from ._streams import astep as astep
from ._streams import relay as relay
from ._streams import step as step
from ._validate import check_clock as check_clock
from ._validate import check_name as check_name
from ._validate import check_rng as check_rng
from ._validate import to_count as to_count
from ._validate import to_hooks as to_hooks
from ._validate import to_seconds as to_seconds

__all__ = [
    "CALL",
    "MAX_KINDS",
    "NO_RESULT",
    "OTHER",
    "SYSTEM_CLOCK",
    "AwaitingGate",
    "FastPath",
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
]

for _name in __all__:
    if isinstance(globals()[_name], type):
        globals()[_name].__module__ = __name__
del _name
