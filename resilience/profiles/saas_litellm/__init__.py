"""
The SaaS LiteLLM profile: the API's retry table, timeout map, backoff and breaker, ready to use.

Drop it onto code that calls the API with requests::

    from resilience.profiles import saas_litellm as saas

    api = saas.session(API_URL, VIRTUAL_KEY)          # instead of bare requests.post(...)
    job = api.post("/api/jobs/create", json={"team_id": TEAM, "job_type": "chat"}).json()

or httpx (`client`, `async_client`), or onto your own calls (`pipeline`,
`raise_for_response`). Every request gets its endpoint's timeout, retries
per the table (Retry-After as a floor; an ambiguous failure of a paid call is
never repeated), a circuit breaker per route family and model alias, a
bulkhead on the paid calls, and typed exceptions.

The profile follows what the server really does where the API's docs
disagree: the table, and why, is in ``docs/profile-saas-litellm.md``;
``python -m resilience explain saas-litellm`` prints it.

`resilience.profiles.saas_litellm.emulator` is a faithful stand-in for the
server, with fault injection, for your own tests.

The profile is built from `resilience`'s public API only.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._classify import LLM_CALL_FAILED as LLM_CALL_FAILED
from ._classify import PERMANENT_CAUSES as PERMANENT_CAUSES
from ._classify import classifier as classifier
from ._classify import is_permanent as is_permanent
from ._clients import async_client as async_client
from ._clients import client as client
from ._clients import session as session
from ._endpoints import ENDPOINTS as ENDPOINTS
from ._endpoints import Endpoint as Endpoint
from ._endpoints import EndpointMap as EndpointMap
from ._endpoints import endpoint as endpoint
from ._errors import APIConnectionError as APIConnectionError
from ._errors import APIError as APIError
from ._errors import APITimeoutError as APITimeoutError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import BadRequestError as BadRequestError
from ._errors import FieldError as FieldError
from ._errors import InsufficientCreditsError as InsufficientCreditsError
from ._errors import NotFoundError as NotFoundError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import RateLimitError as RateLimitError
from ._errors import ServerError as ServerError
from ._errors import StreamError as StreamError
from ._errors import ValidationError as ValidationError
from ._errors import raise_for_response as raise_for_response
from ._explain import explain as explain
from ._jobs import JobGuard as JobGuard
from ._policy import ATTEMPTS as ATTEMPTS
from ._policy import BACKOFF as BACKOFF
from ._policy import FAILURE_THRESHOLD as FAILURE_THRESHOLD
from ._policy import HALF_OPEN_MAX_CALLS as HALF_OPEN_MAX_CALLS
from ._policy import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from ._policy import PAID_CALL_WAIT as PAID_CALL_WAIT
from ._policy import PAID_CALLS as PAID_CALLS
from ._policy import REPROBE_AFTER as REPROBE_AFTER
from ._policy import RESET_TIMEOUT as RESET_TIMEOUT
from ._policy import Options as Options
from ._policy import breaker as breaker
from ._policy import breaker_for as breaker_for
from ._policy import paid_calls as paid_calls
from ._policy import paid_calls_for as paid_calls_for
from ._policy import pipeline as pipeline
from ._sse import aiter_sse as aiter_sse
from ._sse import delta_text as delta_text
from ._sse import iter_sse as iter_sse

__all__ = [
    "ATTEMPTS",
    "BACKOFF",
    "ENDPOINTS",
    "FAILURE_THRESHOLD",
    "HALF_OPEN_MAX_CALLS",
    "LLM_CALL_FAILED",
    "MAX_RETRY_AFTER",
    "PAID_CALLS",
    "PAID_CALL_WAIT",
    "PERMANENT_CAUSES",
    "REPROBE_AFTER",
    "RESET_TIMEOUT",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Endpoint",
    "EndpointMap",
    "FieldError",
    "InsufficientCreditsError",
    "JobGuard",
    "NotFoundError",
    "Options",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "ValidationError",
    "aiter_sse",
    "async_client",
    "breaker",
    "breaker_for",
    "classifier",
    "client",
    "delta_text",
    "endpoint",
    "explain",
    "is_permanent",
    "iter_sse",
    "paid_calls",
    "paid_calls_for",
    "pipeline",
    "raise_for_response",
    "session",
]

for _name in ("Endpoint", "EndpointMap", "JobGuard", "Options"):
    globals()[_name].__module__ = __name__
del _name
