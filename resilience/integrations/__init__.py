"""
Optional integrations with third-party libraries, each imported only when used.

- `resilience.integrations.requests`: `ResilientAdapter`, a transport adapter
  that runs every request of a `requests.Session` through a pipeline, and
  `Session`, a session with one mounted (needs the ``requests`` extra).
- `resilience.integrations.httpx`: `ResilientTransport` and
  `AsyncResilientTransport`, the same for `httpx.Client` and
  `httpx.AsyncClient` (needs the ``httpx`` extra).
- `resilience.integrations.otel`: policy metrics on an OpenTelemetry meter.

Importing `resilience` never imports these modules, nor the libraries they
integrate.
"""

from __future__ import annotations

__all__: list[str] = []
