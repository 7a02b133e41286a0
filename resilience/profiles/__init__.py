"""
Profiles: ready-made resilience settings for a particular API, built from the public API only.

- `resilience.profiles.saas_litellm`: the SaaS LiteLLM API (its retry table,
  timeout map, backoff and breaker, typed exceptions, requests/httpx clients,
  an SSE reader, a job guard, and an emulator of the server for tests).

Profiles are imported on demand: ``import resilience`` imports none of them.
"""

from __future__ import annotations

__all__: list[str] = []
