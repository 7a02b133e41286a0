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

```python
import threading
import resilience as rs
from resilience.engine import GatePolicy


class Concurrency(GatePolicy):
    \"\"\"Refuse a call while *limit* calls run.\"\"\"

    def __init__(self, limit: int) -> None:
        self.limit, self.running, self.lock = limit, 0, threading.Lock()

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

Everything here is public and stable; the integrations and profiles shipped
with the library import only from here and from `resilience`.
"""

from __future__ import annotations

from ._gate import NO_RESULT as NO_RESULT
from ._gate import FastPath as FastPath
from ._gate import Gate as Gate
from ._gate import GatePolicy as GatePolicy
from ._gate import Wait as Wait
from ._gate import Waiter as Waiter
from ._gate import bind_gate as bind_gate
from ._streams import astep as astep
from ._streams import relay as relay
from ._streams import step as step

__all__ = [
    "NO_RESULT",
    "FastPath",
    "Gate",
    "GatePolicy",
    "Wait",
    "Waiter",
    "astep",
    "bind_gate",
    "relay",
    "step",
]

for _name in ("FastPath", "Gate", "GatePolicy", "Wait", "Waiter"):
    globals()[_name].__module__ = __name__
del _name
