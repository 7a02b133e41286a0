"""
A faithful stand-in for the SaaS LiteLLM server, with fault injection, for tests and demos.

It reproduces what the real server does on the wire (see the server-behaviour
notes in ``docs/profile-saas-litellm.md``), as a live run against it showed:
compact JSON ``{"detail": ...}`` errors from ``server: uvicorn``, the 422 list
(validation before any job lookup), plain-text 500s after which the server
closes the connection, provider failures that answer after the server's own
3-9 s of retries, ``complete`` that charges again when called a third time,
the team and credit routes, SSE streams with ``: keepalive``, ``[DONE]``
(OpenAI-style) or none (other providers), in-band ``{"error": ...}`` events,
and today's broken ``llm-call-stream`` (``stream_bug``). It adds the faults of
what stands in front of a server: 429 with ``Retry-After``, 502/503/504 with
HTML bodies, slow answers, dropped and reset connections, failures mid-stream::

    from resilience.profiles.saas_litellm.emulator import Emulator

    with Emulator() as emu:
        emu.script("llm-call", "transient_500", "ok")     # the next two llm-calls
        api = saas.session(emu.url, emu.virtual_key)
        ...
        assert emu.stats().paid_calls == 1

Faults come from a script (`Emulator.script`: the next requests of a route,
in order) or from seeded rates (``rates={"rate_limit": 0.05,
"llm-call:slow": 0.02}``), decided per workflow rather than per arrival, so
that a seed gives the same faults to the same steps whatever the threads do:
a request's dice depend on the seed, its route, the job's ``user_id`` (or
its id) and how many times that route was called for it.

It is a stdlib `http.server.ThreadingHTTPServer` on 127.0.0.1, an ephemeral
port by default, HTTP/1.1 with keep-alive. Every delay (LLM latency, provider
failures, slow answers, Retry-After values) is multiplied by *time_scale*, so
that a demo can run production timings 50 times faster.

Routes: ``health``, ``create``, ``get``, ``llm-call``, ``llm-call-stream``,
``complete``, ``create-and-call``, ``create-and-call-stream``, ``metadata``,
``costs``, ``team-jobs``, ``team-usage``, ``credits-balance``,
``credits-transactions``, ``credits-check``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import http.server
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, final

import attrs

__all__ = ["FAULTS", "ROUTES", "Emulator", "Stats"]

ROUTES: Final = (
    "health",
    "create",
    "get",
    "llm-call",
    "llm-call-stream",
    "complete",
    "create-and-call",
    "create-and-call-stream",
    "metadata",
    "costs",
    "team-jobs",
    "team-usage",
    "credits-balance",
    "credits-transactions",
    "credits-check",
)

FAULTS: Final = {
    "ok": "no fault: the server's own behaviour",
    "rate_limit": "429 from a proxy, JSON body, with Retry-After; nothing processed",
    "bad_request": "400 from a proxy, HTML body; nothing processed",
    "insufficient_credits": "403 'Insufficient credits' (the docs' promise; today's server never)",
    "transient_500": "LLM routes: 500 'LLM call failed: ... Connection error.' after the "
    "server's 3-9 s of retries; others: plain 500",
    "provider_outage": "LLM routes: as transient_500, and so is every later request of the "
    "same workflow to the route (a provider down for a while); others: plain 500",
    "permanent_500": "LLM routes: 500 'No provider credentials configured'; others: plain 500",
    "plain_500": "plain-text 500 'Internal Server Error' (database down); connection then closed",
    "bad_gateway": "the app does the work, a gateway answers 502 with an HTML page",
    "unavailable": "a gateway answers 503 with an HTML page; nothing processed",
    "gateway_timeout": "the app does the work, a gateway answers 504 with an HTML page",
    "slow": "the app does the work, then answers after `slow` seconds",
    "drop": "the app does the work, then the connection closes without an answer",
    "reset": "the connection is reset before anything is processed",
    "stream_error": "stream routes: a few events, then an in-band {'error': '500: ...'}",
    "stream_drop": "stream routes: a few events, then the connection drops",
    "stream_stall": "stream routes: a few events, then nothing for `slow` seconds",
    "stream_bug": "stream routes: today's server bug, a 200 then one in-band TypeError event",
}
"""Every fault name, with what it does."""

_STREAM_FAULTS: Final = frozenset({"stream_error", "stream_drop", "stream_stall", "stream_bug"})
_LLM_ROUTES: Final = frozenset(
    {"llm-call", "llm-call-stream", "create-and-call", "create-and-call-stream"}
)
_STREAM_ROUTES: Final = frozenset({"llm-call-stream", "create-and-call-stream"})
_JOB_ROUTES: Final = frozenset(
    {"get", "llm-call", "llm-call-stream", "complete", "metadata", "costs"}
)
_TEAM_ROUTES: Final = {
    # route: the 403 detail when the path's team is not the key's
    "team-jobs": "Cannot access jobs for a different team",
    "team-usage": "Cannot access usage data for a different team",
    "credits-balance": "Cannot access credit balance for a different team",
    "credits-transactions": "Cannot access credit transactions for a different team",
    "credits-check": "Cannot check credits for a different team",
}
_STATUSES: Final = ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED")

# The server's OpenAI provider answers its failures in these words (E17).
_TRANSIENT_CAUSES: Final = (
    "OpenAI error: Connection error.",
    "OpenAI error: Request timed out.",
    "OpenAI rate limit: Error code: 429 - {'error': {'message': 'Rate limit reached for "
    "gpt-4o-mini on requests per min (RPM): Limit 500, Used 500, Requested 1.', "
    "'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}}",
    "OpenAI error: Error code: 500 - {'error': {'message': 'The server had an error while "
    "processing your request. Sorry about that!', 'type': 'server_error', 'param': None, "
    "'code': None}}",
)
_CREDENTIALS: Final = (
    "500: No provider credentials configured for openai. "
    "Please add credentials in the admin dashboard."
)
_PROVIDER_TRIES: Final = 9  # a provider failure: the server's 3 attempts x the SDK's 3
_STREAM_BUG: Final = "'Response' object does not support the asynchronous context manager protocol"
_HTML: Final = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_MODELS: Final = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "claude-3-5-haiku", "claude-3-5-sonnet")
_FORMAT_HINT: Final = "Expected: 'Authorization: Bearer sk-xxx...'"
# gpt-4o-mini's price per token, input and output, in USD
_PRICE_IN: Final = 0.15 / 1_000_000
_PRICE_OUT: Final = 0.60 / 1_000_000

# Request models, as the server declares them: (field, kind, required).
_LLM_OPTIONS: Final = (
    ("purpose", "str", False),
    ("temperature", "float", False),
    ("max_tokens", "int", False),
    ("response_format", "dict", False),
    ("tools", "list_dict", False),
    ("tool_choice", "any", False),
    ("top_p", "float", False),
    ("frequency_penalty", "float", False),
    ("presence_penalty", "float", False),
    ("stop", "list_str", False),
)
_LLM_BODY: Final = (
    ("model", "str", True),
    ("messages", "list_dict", True),
    *_LLM_OPTIONS,
    ("call_metadata", "dict", False),
)
_SINGLE_CALL_BODY: Final = (
    ("team_id", "str", True),
    ("job_type", "str", True),
    ("model", "str", True),
    ("messages", "list_dict", True),
    ("user_id", "str", False),
    ("job_metadata", "dict", False),
    *_LLM_OPTIONS,
)
_BODIES: Final[dict[str, tuple[tuple[str, str, bool], ...]]] = {
    "create": (
        ("team_id", "str", True),
        ("user_id", "str", False),
        ("job_type", "str", True),
        ("metadata", "dict", False),
    ),
    "llm-call": _LLM_BODY,
    "llm-call-stream": _LLM_BODY,
    "complete": (
        ("status", "status", True),
        ("metadata", "dict", False),
        ("error_message", "str", False),
    ),
    "create-and-call": _SINGLE_CALL_BODY,
    "create-and-call-stream": _SINGLE_CALL_BODY,
    "metadata": (("metadata", "dict", True),),
}
# Query parameters: (name, kind, default); no default means required.
_QUERIES: Final[dict[str, tuple[tuple[str, str, Any], ...]]] = {
    "team-jobs": (("limit", "int", 100), ("offset", "int", 0), ("status", "str", None)),
    "team-usage": (("period", "str", ...),),
    "credits-transactions": (("limit", "int", 50),),
    "credits-check": (("credits_needed", "int", 1),),
}


def _now() -> datetime.datetime:
    """The server's clock: naive UTC (``datetime.utcnow()``)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _iso(moment: datetime.datetime | None) -> str | None:
    """The server's plain ``isoformat()``: naive, microseconds (create, complete, costs)."""
    return None if moment is None else moment.isoformat()


def _iso_z(moment: datetime.datetime | None) -> str | None:
    """The server's ``to_utc_isoformat``: whole seconds and ``Z`` (a job's ``to_dict``)."""
    return None if moment is None else moment.replace(microsecond=0).isoformat() + "Z"


def _dumps(data: Any) -> bytes:
    """FastAPI's JSON: compact, UTF-8."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@final
@attrs.frozen
class Stats:
    """
    What the emulator saw and did.

    Attributes:
        requests: Requests received (each attempt counts).
        by_route: Requests per route name.
        paid_calls: Provider calls that generated an answer: each one is
            billed by the provider.
        duplicate_paid_calls: Paid calls beyond the first, summed over jobs:
            what retrying a paid call costs.
        jobs: Jobs created.
        open_jobs: Jobs still pending or in progress (never completed).
        credits_charged: Credits deducted, summed over every ``complete``
            (the server charges a job again on its third ``complete``).
        faults: Faults injected, by name.
        provider_requests: Requests the server sent its provider: one per
            call the provider answered, nine per provider failure (the
            server's 3 attempts, each with the provider SDK's 3), none when
            the server has no credentials for it.
    """

    requests: int
    by_route: dict[str, int]
    paid_calls: int
    duplicate_paid_calls: int
    jobs: int
    open_jobs: int
    credits_charged: int
    faults: dict[str, int]
    provider_requests: int = 0


class _Job:
    __slots__ = (
        "calls",
        "completed_at",
        "created_at",
        "credit_applied",
        "error_message",
        "id",
        "job_type",
        "metadata",
        "model_groups_used",
        "started_at",
        "status",
        "summary",
        "team",
        "user_id",
    )

    def __init__(
        self, team: str, job_type: str, user_id: str | None, metadata: Any, status: str
    ) -> None:
        self.id = str(uuid.uuid4())
        self.team = team
        self.job_type = job_type
        self.user_id = user_id
        self.metadata: dict[str, Any] = dict(metadata) if isinstance(metadata, dict) else {}
        self.status = status
        self.created_at = _now()
        self.started_at = self.created_at if status == "IN_PROGRESS" else None
        self.completed_at: datetime.datetime | None = None
        self.error_message: str | None = None
        self.credit_applied = False
        self.model_groups_used: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None  # the cost summary stored by complete

    def to_dict(self) -> dict[str, Any]:
        """The server's ``Job.to_dict``: 14 keys, times in whole seconds with ``Z``."""
        return {
            "job_id": self.id,
            "team_id": self.team,
            "user_id": self.user_id,
            "job_type": self.job_type,
            "status": self.status,
            "created_at": _iso_z(self.created_at),
            "started_at": _iso_z(self.started_at),
            "completed_at": _iso_z(self.completed_at),
            "metadata": self.metadata,
            "error_message": self.error_message,
            "organization_id": None,
            "external_task_id": None,
            "credit_applied": self.credit_applied,
            "model_groups_used": list(self.model_groups_used),
        }


class _Team:
    __slots__ = ("allocated", "created_at", "key", "name", "status", "updated_at", "used")

    def __init__(self, name: str, status: str = "active", credits: int = 1000) -> None:
        self.name = name
        self.key = "sk-" + uuid.uuid4().hex
        self.status = status
        self.allocated = credits
        self.used = 0
        self.created_at = self.updated_at = _now()

    @property
    def remaining(self) -> int:
        return self.allocated - self.used

    def to_dict(self) -> dict[str, Any]:
        """The server's ``TeamCredits.to_dict``, a job-based budget."""
        return {
            "team_id": self.name,
            "organization_id": "org-emulated",
            "credits_allocated": self.allocated,
            "credits_used": self.used,
            "credits_remaining": self.remaining,
            "credit_limit": None,
            "auto_refill": False,
            "refill_amount": None,
            "refill_period": None,
            "last_refill_at": None,
            "budget_mode": "job_based",
            "credits_per_dollar": 10.0,
            "tokens_per_credit": 10000,
            "cost_markup_percentage": 0.0,
            "status": self.status,
            "created_at": _iso_z(self.created_at),
            "updated_at": _iso_z(self.updated_at),
        }


class _Abort(Exception):
    """Raised inside a handler to stop it: the connection has been dealt with."""


@final
class Emulator:
    """
    A SaaS LiteLLM server on 127.0.0.1, with scripted or seeded faults.

    Args:
        seed: Seeds the fault dice and the LLM latencies. Default: 0.
        rates: Probability of each fault per request, by fault name
            (``"rate_limit"``) or route and fault (``"llm-call:slow"``); stream
            faults apply to stream routes only. Default: none.
        time_scale: Multiplies every delay: LLM latency, provider failures,
            cold start, slow answers, stalls and Retry-After values. Default: 1.0.
        llm_latency: Seconds an LLM call takes: drawn uniformly from
            ``(low, high)``, or returned by a callable given a seeded
            `random.Random`. Default: ``(0.0, 0.0)``.
        failure_latency: Seconds a provider failure (``transient_500``) takes
            before the server answers, drawn uniformly from ``(low, high)``:
            the server's own retries of the provider. Default: ``(3.0, 9.0)``,
            as measured; ``(0.0, 0.0)`` answers at once.
        stream_bug: Reproduce today's ``llm-call-stream``: every call answers
            200, then one in-band ``'Response' object does not support the
            asynchronous context manager protocol`` event, no ``[DONE]``, the
            job left ``IN_PROGRESS``. `False` streams as a fixed server would
            (the ``stream_bug`` fault still scripts it). Default: `True`.
        cold_start: Extra seconds for the first LLM call after start.
            Default: 0.0.
        slow: Seconds a ``slow`` answer or a ``stream_stall`` waits. Default: 90.0.
        retry_after: Seconds a 429 asks for. Default: 2.0.
        port: The port; 0 picks a free one. Default: 0.

    Attributes:
        url: The base URL, ``http://127.0.0.1:<port>`` (once started).
        team_id: The team of `virtual_key`: ``"acme-corp"``.
        virtual_key: A valid key of ``acme-corp``.
        keys: Keys of every team: ``acme-corp``, ``globex`` (another team),
            ``suspended-co``, ``paused-co``, ``broke-co`` (no credits left).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        rates: Mapping[str, float] | None = None,
        time_scale: float = 1.0,
        llm_latency: tuple[float, float] | Callable[[random.Random], float] = (0.0, 0.0),
        failure_latency: tuple[float, float] = (3.0, 9.0),
        stream_bug: bool = True,
        cold_start: float = 0.0,
        slow: float = 90.0,
        retry_after: float = 2.0,
        port: int = 0,
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        low, high = failure_latency
        if not 0 <= low <= high:
            raise ValueError(
                f"failure_latency must be (low, high), 0 <= low <= high, got {failure_latency!r}"
            )
        self.seed = seed
        self.rates = _check_rates(rates or {})
        self.time_scale = float(time_scale)
        self.llm_latency = llm_latency
        self.failure_latency = (float(low), float(high))
        self.stream_bug = bool(stream_bug)
        self.cold_start = cold_start
        self.slow = slow
        self.retry_after = retry_after
        self._port = port
        self._lock = threading.Lock()
        self._teams = {
            name: _Team(name, status, credits)
            for name, status, credits in (
                ("acme-corp", "active", 1000),
                ("globex", "active", 1000),
                ("suspended-co", "suspended", 1000),
                ("paused-co", "paused", 1000),
                ("broke-co", "active", 0),
            )
        }
        self._by_key = {team.key: team for team in self._teams.values()}
        self.team_id = "acme-corp"
        self.virtual_key = self._teams["acme-corp"].key
        self.keys = {name: team.key for name, team in self._teams.items()}
        self._jobs: dict[str, _Job] = {}
        self._transactions: list[dict[str, Any]] = []
        self._scripts: dict[str, collections.deque[str]] = collections.defaultdict(
            collections.deque
        )
        self._counters: collections.Counter[tuple[str, str]] = collections.Counter()
        self._outages: set[tuple[str, str]] = set()
        self._requests = 0
        self._by_route: collections.Counter[str] = collections.Counter()
        self._faults: collections.Counter[str] = collections.Counter()
        self._in_flight = 0
        self._provider_requests = 0
        self._idle = threading.Condition(self._lock)
        self._database_down = False
        self._recovering = False
        self._llm_calls_since_start = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving in a background thread; return self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        with self._lock:  # the first LLM call after every start is the slow one
            self._llm_calls_since_start = 0
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.emulator = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="saas-litellm-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake sleeping handlers and close every connection."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- control -------------------------------------------------------------------------

    def script(self, route: str, *faults: str) -> None:
        """
        Queue faults for the next requests of *route* (``"*"``: any route), in order.

        ``"ok"`` lets one request through untouched. Scripted faults are used
        before any rate applies.

        Raises:
            ValueError: On an unknown route or fault.
        """
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; routes: {', '.join(ROUTES)}")
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; faults: {', '.join(FAULTS)}")
        with self._lock:
            self._scripts[route].extend(faults)

    @property
    def database_down(self) -> bool:
        """While `True`, every authenticated request gets a plain-text 500 (even a bad key).

        Setting it back to `False` makes the next authenticated request fail
        once more, as the real server's first query after a database restart
        does (its pool's connections are stale); `/health` asks no database.
        """
        return self._database_down

    @database_down.setter
    def database_down(self, down: bool) -> None:
        with self._lock:
            if self._database_down and not down:
                self._recovering = True
            self._database_down = bool(down)

    def settle(self, timeout: float = 10.0) -> bool:
        """
        Wait until no provider call is in flight, so that `stats` counts them all.

        A client that gave up on a call (a timeout) does not stop the server:
        the call is recorded, and paid, when the provider answers.

        Args:
            timeout: Seconds to wait at most. Default: 10.0.

        Returns:
            Whether every call had ended within *timeout*.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def stats(self) -> Stats:
        """Return what happened so far."""
        with self._lock:
            paid = [sum(1 for c in job.calls if c["paid"]) for job in self._jobs.values()]
            return Stats(
                requests=self._requests,
                by_route=dict(self._by_route),
                paid_calls=sum(paid),
                duplicate_paid_calls=sum(max(0, n - 1) for n in paid),
                jobs=len(self._jobs),
                open_jobs=sum(
                    1 for job in self._jobs.values() if job.status in ("PENDING", "IN_PROGRESS")
                ),
                credits_charged=sum(t["credits_amount"] for t in self._transactions),
                faults=dict(self._faults),
                provider_requests=self._provider_requests,
            )

    def job(self, job_id: str) -> dict[str, Any]:
        """Return a snapshot of a job: status, calls (with ``paid``), error message, charge."""
        with self._lock:
            job = self._jobs[job_id]
            return {
                "job_id": job.id,
                "team_id": job.team,
                "status": job.status,
                "user_id": job.user_id,
                "metadata": dict(job.metadata),
                "error_message": job.error_message,
                "calls": [dict(call) for call in job.calls],
                "charged": job.credit_applied,
                "credits_charged": sum(
                    t["credits_amount"] for t in self._transactions if t["job_id"] == job.id
                ),
            }

    # --- decisions (under the lock) ----------------------------------------------------

    def _fault(self, route: str, key: str) -> tuple[str, str]:
        """Return the fault of a request, and the key of its other dice (latencies, causes).

        Both depend on the route, *key* (the workflow) and the request's rank
        among that workflow's requests of the route: never on what other
        requests are doing, nor on whether an earlier one is still running.
        """
        with self._lock:
            self._requests += 1
            self._by_route[route] += 1
            self._counters[(route, key)] += 1
            n = self._counters[(route, key)]
            draw = f"{route}|{key}|{n}"
            if (route, key) in self._outages:
                self._faults["provider_outage"] += 1
                return "provider_outage", draw
            for name in (route, "*"):
                queue = self._scripts.get(name)
                if queue:
                    fault = queue.popleft()
                    if fault != "ok":
                        self._faults[fault] += 1
                    if fault == "provider_outage":
                        self._outages.add((route, key))
                    return fault, draw
        if not self.rates:
            return "ok", draw
        dice = random.Random(f"{self.seed}|{draw}").random()
        for fault in FAULTS:
            if fault == "ok" or (fault in _STREAM_FAULTS and route not in _STREAM_ROUTES):
                continue
            for name in (fault, f"{route}:{fault}"):
                rate = self.rates.get(name, 0.0)
                if dice < rate:
                    with self._lock:
                        self._faults[fault] += 1
                        if fault == "provider_outage":
                            self._outages.add((route, key))
                    return fault, draw
                dice -= rate
        return "ok", draw

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """Mark a provider call in flight, for `settle`."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def _latency(self, key: str) -> float:
        rng = random.Random(f"{self.seed}|latency|{key}")
        if callable(self.llm_latency):
            seconds = float(self.llm_latency(rng))
        else:
            low, high = self.llm_latency
            seconds = rng.uniform(low, high)
        with self._lock:
            self._llm_calls_since_start += 1
            if self._llm_calls_since_start == 1:
                seconds += self.cold_start
        return seconds * self.time_scale

    def _failure(self, key: str) -> tuple[float, str]:
        """The seconds a provider failure takes (scaled), and its cause."""
        rng = random.Random(f"{self.seed}|failure|{key}")
        low, high = self.failure_latency
        return rng.uniform(low, high) * self.time_scale, rng.choice(_TRANSIENT_CAUSES)

    def _charge(self, team: _Team, job: _Job, reason: str) -> bool:
        """Deduct one credit for *job* (under the lock); return whether there was one."""
        if team.remaining < 1:
            return False  # the server logs it and completes the job all the same
        before = team.remaining
        team.used += 1
        team.updated_at = _now()
        self._transactions.append(
            {
                "transaction_id": str(uuid.uuid4()),
                "team_id": team.name,
                "organization_id": "org-emulated",
                "job_id": job.id,
                "transaction_type": "deduction",
                "credits_amount": 1,
                "credits_before": before,
                "credits_after": team.remaining,
                "reason": f"{reason} (job_based mode: 1 credits)",
                "created_at": _now(),
            }
        )
        return True


def _check_rates(rates: Mapping[str, float]) -> dict[str, float]:
    checked: dict[str, float] = {}
    for name, rate in rates.items():
        route, _, fault = name.rpartition(":")
        if fault not in FAULTS or (route and route not in ROUTES):
            raise ValueError(f"unknown rate {name!r}: use a fault name, or 'route:fault'")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {name!r} must be within [0, 1], got {rate!r}")
        checked[name] = float(rate)
    if sum(checked.values()) > 1.0:
        raise ValueError("the rates add up to more than 1")
    return checked


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # many clients connect at once in demos
    emulator: Emulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up are part of the game


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# --- validation, as pydantic v2 words it ---------------------------------------------------


def _type_error(kind: str, loc: list[Any], value: Any) -> dict[str, Any] | None:
    """Return pydantic's error for *value* in a field of *kind*, or None if it is valid."""
    if kind == "any":
        return None
    if kind == "str":
        if isinstance(value, str):
            return None
        return {
            "type": "string_type",
            "loc": loc,
            "msg": "Input should be a valid string",
            "input": value,
        }
    if kind == "dict":
        if isinstance(value, dict):
            return None
        return {
            "type": "dict_type",
            "loc": loc,
            "msg": "Input should be a valid dictionary",
            "input": value,
        }
    if kind == "float":
        if isinstance(value, int | float):
            return None
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                msg = "Input should be a valid number, unable to parse string as a number"
                return {"type": "float_parsing", "loc": loc, "msg": msg, "input": value}
            return None
        return {
            "type": "float_type",
            "loc": loc,
            "msg": "Input should be a valid number",
            "input": value,
        }
    if kind == "int":
        if isinstance(value, int):
            return None
        if isinstance(value, float):
            if value.is_integer():
                return None
            msg = "Input should be a valid integer, got a number with a fractional part"
            return {"type": "int_from_float", "loc": loc, "msg": msg, "input": value}
        if isinstance(value, str):
            try:
                int(value.strip())
            except ValueError:
                msg = "Input should be a valid integer, unable to parse string as an integer"
                return {"type": "int_parsing", "loc": loc, "msg": msg, "input": value}
            return None
        return {
            "type": "int_type",
            "loc": loc,
            "msg": "Input should be a valid integer",
            "input": value,
        }
    if kind == "status":
        if value in ("completed", "failed"):
            return None
        return {
            "type": "literal_error",
            "loc": loc,
            "msg": "Input should be 'completed' or 'failed'",
            "input": value,
            "ctx": {"expected": "'completed' or 'failed'"},
        }
    # a list of dicts or of strings
    if not isinstance(value, list):
        return {
            "type": "list_type",
            "loc": loc,
            "msg": "Input should be a valid list",
            "input": value,
        }
    for n, item in enumerate(value):
        error = _type_error("dict" if kind == "list_dict" else "str", [*loc, n], item)
        if error is not None:
            return error
    return None


def _validate_body(route: str, data: Any) -> list[dict[str, Any]]:
    fields = _BODIES.get(route)
    if fields is None:
        return []
    if data is None:
        return [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    if not isinstance(data, dict):
        return [
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": data,
            }
        ]
    errors: list[dict[str, Any]] = []
    for name, kind, required in fields:
        if name not in data:
            if required:
                errors.append(
                    {
                        "type": "missing",
                        "loc": ["body", name],
                        "msg": "Field required",
                        "input": data,
                    }
                )
            continue
        value = data[name]
        if value is None and not required:
            continue
        error = _type_error(kind, ["body", name], value)
        if error is not None:
            errors.append(error)
    return errors


def _validate_query(route: str, query: Mapping[str, str]) -> tuple[dict[str, Any], list[Any]]:
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, kind, default in _QUERIES.get(route, ()):
        if name not in query:
            if default is ...:
                errors.append(
                    {
                        "type": "missing",
                        "loc": ["query", name],
                        "msg": "Field required",
                        "input": None,
                    }
                )
            values[name] = None if default is ... else default
            continue
        error = _type_error(kind, ["query", name], query[name])
        if error is not None:
            errors.append(error)
            continue
        values[name] = int(query[name].strip()) if kind == "int" else query[name]
    return values, errors


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and
    # delayed ACKs would add 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return "uvicorn"

    # --- connection-level behaviour -----------------------------------------------------

    def _reset(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- writing ---------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        if content_type is not None:
            self.send_header("content-type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._send(status, _dumps(data), "application/json", headers)

    def _detail(self, status: int, detail: Any) -> None:
        self._json(status, {"detail": detail})

    def _plain_500(self) -> None:
        # Uvicorn closes the connection after an unhandled error, without a
        # `connection: close` header: a request sent at once on the kept-alive
        # connection meets a reset, one sent a little later a closed socket
        # that the client's pool notices.
        self._send(500, b"Internal Server Error", "text/plain; charset=utf-8")
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _html(self, status: int) -> None:
        phrase = http.HTTPStatus(status).phrase
        page = _HTML.format(status=status, phrase=phrase).encode()
        self._send(status, page, "text/html")

    def _chunk(self, *events: bytes) -> None:
        """Write events, one HTTP chunk each (as uvicorn frames them), in one write."""
        self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(data), data) for data in events))
        self.wfile.flush()

    # --- reading ---------------------------------------------------------------------------

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # --- routing ---------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str]) -> tuple[str | None, str | None, str]:
        """Return (route, path parameter, the route's method) for a path's segments."""
        if parts == ["health"]:
            return "health", None, "GET"
        if len(parts) == 4 and parts[:2] == ["api", "teams"] and parts[3] in ("jobs", "usage"):
            return f"team-{parts[3]}", parts[2], "GET"
        if len(parts) == 5 and parts[:3] == ["api", "credits", "teams"]:
            found = {
                "balance": ("credits-balance", "GET"),
                "transactions": ("credits-transactions", "GET"),
                "check": ("credits-check", "POST"),
            }.get(parts[4])
            if found is not None:
                return found[0], parts[3], found[1]
            return None, None, ""
        if len(parts) < 3 or parts[:2] != ["api", "jobs"]:
            return None, None, ""
        rest = parts[2:]
        if rest == ["create"] and method == "POST":
            return "create", None, "POST"
        # As on the server, only POST reaches these: a GET is "get job
        # `create-and-call`" (a plain-text 500, not a UUID), like GET create.
        if rest == ["create-and-call"] and method == "POST":
            return "create-and-call", None, "POST"
        if rest == ["create-and-call-stream"] and method == "POST":
            return "create-and-call-stream", None, "POST"
        if len(rest) == 1:
            return "get", rest[0], "GET"
        if len(rest) == 2:
            table = {
                "llm-call": ("llm-call", "POST"),
                "llm-call-stream": ("llm-call-stream", "POST"),
                "complete": ("complete", "POST"),
                "metadata": ("metadata", "PATCH"),
                "costs": ("costs", "GET"),
            }
            found = table.get(rest[1])
            if found is not None:
                return found[0], rest[0], found[1]
        return None, None, ""

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        path, _, query = self.path.partition("?")
        stripped = path.strip("/")
        parts = stripped.split("/") if stripped else []
        route, param, route_method = self._route(method, parts)
        body = self._body()
        if route is None:
            self._detail(404, "Not Found")
            return
        if path.endswith("/") and path != "/":
            # Starlette's redirect_slashes: an absolute URL, an empty body, no content type.
            host = self.headers.get("Host") or emulator.url.removeprefix("http://")
            target = f"http://{host}{path.rstrip('/')}" + (f"?{query}" if query else "")
            self._send(307, b"", None, [("location", target)])
            return
        if method != route_method:
            self._json(405, {"detail": "Method Not Allowed"}, [("allow", route_method)])
            return
        key = self._fault_key(route, param, body)
        fault, draw = emulator._fault(route, key)
        if fault == "provider_outage":
            fault = "transient_500"  # that lasts: see Emulator._fault
        values = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        try:
            self._serve(emulator, route, param, body, values, fault, draw)
        except _Abort:
            pass

    def _fault_key(self, route: str, param: str | None, body: bytes) -> str:
        emulator = self.server.emulator
        if param is not None:
            with emulator._lock:
                job = emulator._jobs.get(param)
            if job is None:
                return param
            return job.user_id or job.id
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {}
        user = data.get("user_id") if isinstance(data, dict) else None
        return str(user) if user is not None else "-"

    # --- the app behind the proxy -------------------------------------------------------

    def _serve(
        self,
        emulator: Emulator,
        route: str,
        param: str | None,
        raw: bytes,
        query: dict[str, str],
        fault: str,
        key: str,
    ) -> None:
        scale = emulator.time_scale
        # In front of the app: a proxy answers, nothing is processed.
        if fault == "rate_limit":
            self._json(
                429,
                {"detail": "Rate limit exceeded"},
                [("Retry-After", f"{emulator.retry_after * scale:.6g}")],
            )
            return
        if fault == "unavailable":
            self._html(503)
            return
        if fault == "bad_request":
            self._html(400)
            return
        if fault == "reset":
            self._reset()
            return
        answer = (
            (200, {"status": "healthy", "service": "saas-llm-api"})
            if route == "health"
            else self._app(emulator, route, param, raw, query, fault, key)
        )
        if answer is None:
            return  # the app answered itself (errors, streams)
        status, payload = answer
        # Behind the app: its answer is done, side effects included.
        if fault == "bad_gateway":
            self._html(502)
        elif fault == "gateway_timeout":
            self._html(504)
        elif fault == "drop":
            self.close_connection = True
        elif fault == "slow":
            if emulator._server is None or self.server.stopping.wait(emulator.slow * scale):
                self.close_connection = True
                return
            self._json(status, payload)
        else:
            self._json(status, payload)

    def _app(
        self,
        emulator: Emulator,
        route: str,
        param: str | None,
        raw: bytes,
        query: dict[str, str],
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        """The application: parse, authenticate, validate, look the job up, run the route.

        FastAPI's order: the JSON body is parsed first (a 422 before anything
        else), then the auth dependency runs (401/403, or a 500 when the
        database is down), then the body and query are validated (422), and
        only then does the route look the job up (non-UUID 500, 404, 403).
        """
        data: Any = None
        if route in _BODIES and raw:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                self._detail(
                    422,
                    [
                        {
                            "type": "json_invalid",
                            "loc": ["body", getattr(exc, "pos", 0)],
                            "msg": "JSON decode error",
                            "input": {},
                            "ctx": {"error": str(exc).split(":")[0]},
                        }
                    ],
                )
                return None
        team = self._auth(emulator, fault, route)
        if team is None:
            return None
        values, errors = _validate_query(route, query)
        errors += _validate_body(route, data)
        if errors:
            self._detail(422, errors)
            return None
        if fault == "insufficient_credits":
            self._detail(403, "Insufficient credits: the team has no credits left")
            return None
        job: _Job | None = None
        if route in _JOB_ROUTES:
            assert param is not None
            if not _uuid(param):
                self._plain_500()
                return None
            with emulator._lock:
                job = emulator._jobs.get(param)
            if job is None:
                self._detail(404, "Job not found")
                return None
            if job.team != team.name:
                self._detail(403, "Job does not belong to your team")
                return None
        elif route in _TEAM_ROUTES and param != team.name:
            self._detail(403, _TEAM_ROUTES[route])
            return None
        handler = getattr(self, "_app_" + route.replace("-", "_"))
        result: tuple[int, Any] | None = handler(emulator, team, job, data, values, fault, key)
        return result

    def _auth(self, emulator: Emulator, fault: str, route: str) -> _Team | None:
        # The header is checked before the database is asked for the key: a
        # missing or malformed header is a 401 even while the database is down.
        header = self.headers.get("Authorization")
        if not header:
            self._detail(401, f"Missing Authorization header. {_FORMAT_HINT}")
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            self._detail(401, f"Invalid Authorization header format. {_FORMAT_HINT}")
            return None
        with emulator._lock:
            down = emulator._database_down
            recovering = emulator._recovering
            if recovering and not down:
                emulator._recovering = False  # the stale pool fails this one query
        if down or recovering or fault == "plain_500":
            self._plain_500()
            return None
        if fault in ("transient_500", "permanent_500") and route not in _LLM_ROUTES:
            self._plain_500()
            return None
        team = emulator._by_key.get(parts[1])
        if team is None:
            self._detail(401, "Invalid API key")
            return None
        if team.status != "active":
            self._detail(403, f"Team access is {team.status}. Please contact support.")
            return None
        return team

    # --- job routes -----------------------------------------------------------------------

    def _app_create(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        if data["team_id"] != team.name:
            self._detail(403, f"API key does not belong to team '{data['team_id']}'")
            return None
        new = _Job(
            team.name, data["job_type"], data.get("user_id"), data.get("metadata"), "PENDING"
        )
        with emulator._lock:
            emulator._jobs[new.id] = new
        return 200, {"job_id": new.id, "status": new.status, "created_at": _iso(new.created_at)}

    def _app_get(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        assert job is not None
        with emulator._lock:
            return 200, job.to_dict()

    def _app_metadata(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        assert job is not None
        with emulator._lock:
            job.metadata.update(data["metadata"])
            return 200, {
                "job_id": job.id,
                "metadata": dict(job.metadata),
                "updated_at": _iso(_now()),
            }

    def _app_costs(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        assert job is not None
        with emulator._lock:
            breakdown = [
                {
                    "call_id": call["call_id"],
                    "model": call["model_used"],
                    "purpose": call["purpose"],
                    "prompt_tokens": call["prompt_tokens"],
                    "completion_tokens": call["completion_tokens"],
                    "cost_usd": call["cost_usd"],
                    "created_at": _iso(call["created_at"]),
                }
                for call in job.calls
            ]
            return 200, {
                "job_id": job.id,
                "team_id": job.team,
                "job_type": job.job_type,
                "status": job.status,
                "costs": {
                    "total_cost_usd": round(sum(call["cost_usd"] for call in job.calls), 6),
                    "breakdown": breakdown,
                },
            }

    def _start(self, emulator: Emulator, team: _Team, job: _Job, model: str) -> bool:
        """Move a pending job to IN_PROGRESS, then check the model (403); record its use."""
        with emulator._lock:
            if job.status == "PENDING":  # the server moves the job before the model check
                job.status = "IN_PROGRESS"
                job.started_at = _now()
        if model not in _MODELS:
            self._detail(403, f"Team '{team.name}' does not have access to model group '{model}'")
            return False
        with emulator._lock:
            if model not in job.model_groups_used:
                job.model_groups_used.append(model)
        return True

    def _provider(
        self,
        emulator: Emulator,
        job: _Job,
        data: dict[str, Any],
        fault: str,
        key: str,
        *,
        priced: bool,
    ) -> dict[str, Any] | str:
        """Make the provider call and record it; return the answer, or the failure (``str(e)``).

        *priced*: the call's cost is recorded (llm-call); create-and-call records 0.0.
        *key*: the request's dice.
        """
        with emulator._working():
            return self._provider_call(emulator, job, data, fault, key, priced=priced)

    def _provider_call(
        self,
        emulator: Emulator,
        job: _Job,
        data: dict[str, Any],
        fault: str,
        key: str,
        *,
        priced: bool,
    ) -> dict[str, Any] | str:
        if fault == "transient_500":
            # The server retried the provider (3 attempts, each with the SDK's own) first.
            seconds, cause = emulator._failure(key)
            if seconds > 0 and self.server.stopping.wait(seconds):
                raise _Abort
            error = f"500: Failed to call provider API: {cause}"
            with emulator._lock:
                emulator._provider_requests += _PROVIDER_TRIES
        elif fault == "permanent_500":
            error = _CREDENTIALS
        else:
            latency = emulator._latency(key)
            if latency > 0 and self.server.stopping.wait(latency):
                raise _Abort
            content = _reply(data)
            call = _call(data, content, int(latency * 1000), priced=priced)
            with emulator._lock:
                job.calls.append(call)
                emulator._provider_requests += 1
            return {
                "call_id": call["call_id"],
                "response": {"content": content, "finish_reason": "stop"},
                "metadata": {
                    "tokens_used": call["tokens"],
                    "latency_ms": call["latency_ms"],
                    "model": data["model"],
                },
            }
        with emulator._lock:
            job.calls.append(_failed_call(data, error))
        return error

    def _app_llm_call(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        assert job is not None
        if not self._start(emulator, team, job, data["model"]):
            return None
        answer = self._provider(emulator, job, data, fault, key, priced=True)
        if isinstance(answer, str):
            self._detail(500, f"LLM call failed: {answer}")
            return None
        if data.get("call_metadata"):
            with emulator._lock:
                job.metadata.update(data["call_metadata"])
        return 200, answer

    def _complete(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job,
        status: str,
        *,
        reason: str,
        error_message: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The server's complete, under the lock: every call re-runs it (E11-E14).

        It charges whenever the status is ``completed`` and ``credit_applied``
        is false, and sets ``credit_applied`` false on any other call: a second
        ``complete`` answers false, a third charges again; ``failed`` after
        ``completed`` flips the status and refunds nothing; a job with no calls
        is charged like any other.
        """
        with emulator._lock:
            job.status = status.upper()
            job.completed_at = _now()
            if error_message:
                job.error_message = error_message
            if metadata:
                job.metadata.update(metadata)
            costs = _costs(job)
            if status == "completed" and not job.credit_applied:
                if emulator._charge(team, job, reason):
                    job.credit_applied = True
            else:
                job.credit_applied = False
            job.summary = dict(costs)
            costs["credit_applied"] = job.credit_applied
            costs["credits_remaining"] = team.remaining
            return {
                "job_id": job.id,
                "status": job.status,
                "completed_at": _iso(job.completed_at),
                "costs": costs,
                "calls": [
                    {
                        "call_id": call["call_id"],
                        "purpose": call["purpose"],
                        "model_group": call["model"],
                        "tokens": call["tokens"],
                        "latency_ms": call["latency_ms"],
                        "error": call["error"],
                    }
                    for call in job.calls
                ],
            }

    def _app_complete(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        assert job is not None
        summary = self._complete(
            emulator,
            team,
            job,
            data["status"],
            reason=f"Job {job.job_type} completed",
            error_message=data.get("error_message"),
            metadata=data.get("metadata"),
        )
        return 200, summary

    def _new_job(self, emulator: Emulator, team: _Team, data: Any) -> _Job | None:
        """create-and-call(-stream): a job IN_PROGRESS; an unknown model fails it (403)."""
        if data["team_id"] != team.name:
            self._detail(403, f"API key does not belong to team '{data['team_id']}'")
            return None
        job = _Job(
            team.name,
            data["job_type"],
            data.get("user_id"),
            data.get("job_metadata"),
            "IN_PROGRESS",
        )
        with emulator._lock:
            emulator._jobs[job.id] = job
        model = data["model"]
        if model not in _MODELS:
            detail = f"Team '{team.name}' does not have access to model group '{model}'"
            self._fail(emulator, job, detail)
            self._detail(403, detail)
            return None
        job.model_groups_used = [model]
        return job

    def _fail(self, emulator: Emulator, job: _Job, error: str) -> None:
        with emulator._lock:
            job.status = "FAILED"
            job.completed_at = _now()
            job.error_message = error

    def _app_create_and_call(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        job = self._new_job(emulator, team, data)
        if job is None:
            return None
        answer = self._provider(emulator, job, data, fault, key, priced=False)
        if isinstance(answer, str):
            self._fail(emulator, job, answer)
            self._detail(500, f"LLM call failed: {answer}")
            return None
        summary = self._complete(
            emulator, team, job, "completed", reason=f"Single-call job {job.job_type} completed"
        )
        return 200, {
            "job_id": job.id,
            "status": summary["status"],
            "response": answer["response"],
            "metadata": answer["metadata"],
            "costs": summary["costs"],
            "completed_at": summary["completed_at"],
        }

    def _app_llm_call_stream(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        assert job is not None
        if not self._start(emulator, team, job, data["model"]):
            return None
        if emulator.stream_bug and fault == "ok":
            fault = "stream_bug"
        self._stream(emulator, team, job, data, fault, key, single=False)
        return None

    def _app_create_and_call_stream(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        job = self._new_job(emulator, team, data)
        if job is not None:
            self._stream(emulator, team, job, data, fault, key, single=True)
        return None

    def _event(self, payload: dict[str, Any], *, provider: bool) -> bytes:
        # The provider's chunks are forwarded as they come (compact); the
        # server writes its own error events with json.dumps (spaced).
        text = _dumps(payload) if provider else json.dumps(payload).encode()
        return b"data: " + text + b"\n\n"

    def _stream(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job,
        data: dict[str, Any],
        fault: str,
        key: str,
        *,
        single: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "keep-alive")
        self.send_header("x-accel-buffering", "no")
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if single:  # create-and-call-stream's first line, at once
            self._chunk(b": keepalive\n\n")
        if fault == "stream_bug":
            # Today's server: the provider answers in full, then the server
            # fails to read it and says so in-band; the call is stored failed.
            with emulator._working():
                latency = emulator._latency(key)
                if latency > 0 and self.server.stopping.wait(latency):
                    raise _Abort
                with emulator._lock:
                    job.calls.append(_failed_call(data, _STREAM_BUG, paid=True))
                    emulator._provider_requests += 1
            if single:
                self._fail(emulator, job, _STREAM_BUG)
            self._chunk(self._event({"error": _STREAM_BUG}, provider=False))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        # The server buffers the provider's answer: events come after the whole generation.
        answer = self._provider(emulator, job, data, fault, key, priced=False)
        if isinstance(answer, str):  # after the 200, a failure is an in-band event
            if single:
                self._fail(emulator, job, answer)
            self._chunk(self._event({"error": answer}, provider=False))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        model = str(data["model"])
        words = answer["response"]["content"].split(" ")
        pieces = [" ".join(words[i : i + 3]) + " " for i in range(0, len(words), 3)]
        openai = not model.startswith("claude")
        chunk_id = "chatcmpl-" + uuid.uuid4().hex[:29]
        created = int(time.time())
        events: list[bytes] = []
        cut = max(1, len(pieces) // 2)
        for n, piece in enumerate(pieces):
            if n == cut and fault in _STREAM_FAULTS:
                self._chunk(*events)  # what came before the fault, together
                if fault == "stream_error":
                    cause = "500: Failed to call provider API: OpenAI error: Connection error."
                    self._chunk(self._event({"error": cause}, provider=False))
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
                if fault == "stream_drop":
                    self.close_connection = True
                    raise _Abort
                if self.server.stopping.wait(emulator.slow * emulator.time_scale):
                    self.close_connection = True
                    raise _Abort
                events = []
            if openai:
                event = _openai_chunk(chunk_id, created, model, piece)
            else:
                event = _other_chunk(piece)
            events.append(self._event(event, provider=True))
        if single:  # create-and-call-stream completes its job as the stream ends
            self._complete(
                emulator,
                team,
                job,
                "completed",
                reason=f"Streaming single-call job {job.job_type} completed",
            )
        if openai:
            events.append(self._event(_openai_chunk(chunk_id, created, model, None), provider=True))
            events.append(b"data: [DONE]\n\n")
        # Every chunk together, once the provider has finished (E23).
        self._chunk(*events)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- team and credit routes ---------------------------------------------------------

    def _app_team_jobs(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        status = query["status"]
        if status and status not in _STATUSES:
            # JobStatus(status) raises ValueError: the lowercase filter is a plain 500.
            self._plain_500()
            return None
        with emulator._lock:
            jobs = [
                j
                for j in emulator._jobs.values()
                if j.team == team.name and (not status or j.status == status)
            ]
            jobs.reverse()  # newest first
            jobs.sort(key=lambda j: j.created_at, reverse=True)
            page = jobs[query["offset"] :][: query["limit"]]
            return 200, {
                "team_id": team.name,
                "total": len(page),
                "jobs": [j.to_dict() for j in page],
            }

    def _app_team_usage(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        period = query["period"]
        with emulator._lock:
            jobs = [
                j
                for j in emulator._jobs.values()
                if j.team == team.name and j.created_at.strftime("%Y-%m").startswith(period)
            ]
            cost = sum(j.summary["total_cost_usd"] for j in jobs if j.summary)
            tokens = sum(j.summary["total_tokens"] for j in jobs if j.summary)
            types: dict[str, dict[str, Any]] = {}
            for j in jobs:
                entry = types.setdefault(j.job_type, {"count": 0, "cost_usd": 0.0})
                entry["count"] += 1
                if j.summary:
                    entry["cost_usd"] += j.summary["total_cost_usd"]
            return 200, {
                "team_id": team.name,
                "period": period,
                "summary": {
                    "total_jobs": len(jobs),
                    "successful_jobs": sum(1 for j in jobs if j.status == "COMPLETED"),
                    "failed_jobs": sum(1 for j in jobs if j.status == "FAILED"),
                    "total_cost_usd": round(cost, 2),
                    "total_tokens": tokens,
                    "avg_cost_per_job": round(cost / len(jobs), 4) if jobs else 0.0,
                },
                "job_types": types,
            }

    def _app_credits_balance(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        with emulator._lock:
            return 200, team.to_dict()

    def _app_credits_transactions(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        with emulator._lock:
            found = [t for t in emulator._transactions if t["team_id"] == team.name]
            found.reverse()  # newest first
            page = [{**t, "created_at": _iso_z(t["created_at"])} for t in found[: query["limit"]]]
        return 200, {"team_id": team.name, "total": len(page), "transactions": page}

    def _app_credits_check(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job | None,
        data: Any,
        query: Any,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        needed = query["credits_needed"]
        with emulator._lock:
            remaining, allocated, used = team.remaining, team.allocated, team.used
        if remaining >= needed:
            return 200, {
                "team_id": team.name,
                "has_credits": True,
                "credits_remaining": remaining,
                "credits_needed": needed,
            }
        return 200, {
            "team_id": team.name,
            "has_credits": False,
            "error": f"Insufficient credits. Team has {remaining} credits remaining, but {needed} "
            f"required. Allocated: {allocated}, Used: {used}",
            "credits_needed": needed,
        }


def _reply(data: dict[str, Any]) -> str:
    prompt = ""
    for message in reversed(data.get("messages") or []):
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            prompt = message["content"]
            break
    return f"You said: {prompt[:200]}. Here is a short and helpful answer to that."


def _call(data: dict[str, Any], content: str, latency_ms: int, *, priced: bool) -> dict[str, Any]:
    """A successful call's row: tokens, cost (0.0 when not *priced*), latency."""
    prompt_tokens, completion_tokens = 12, len(content.split())
    cost = prompt_tokens * _PRICE_IN + completion_tokens * _PRICE_OUT if priced else 0.0
    return {
        "call_id": str(uuid.uuid4()),
        "purpose": data.get("purpose"),
        "model": data.get("model"),
        "model_used": data.get("model"),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens": prompt_tokens + completion_tokens,
        "cost_usd": round(cost, 6),
        "latency_ms": latency_ms,
        "created_at": _now(),
        "paid": True,
        "error": None,
    }


def _failed_call(data: dict[str, Any], error: str, *, paid: bool = False) -> dict[str, Any]:
    """A failed call's row: no model, tokens or latency, the error as the server words it."""
    return {
        "call_id": str(uuid.uuid4()),
        "purpose": data.get("purpose"),
        "model": data.get("model"),
        "model_used": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "tokens": 0,
        "cost_usd": 0.0,
        "latency_ms": None,
        "created_at": _now(),
        "paid": paid,
        "error": error,
    }


def _costs(job: _Job) -> dict[str, Any]:
    """The server's calculate_job_costs (complete's ``costs``, before the credit keys)."""
    calls = job.calls
    ok = [call for call in calls if not call["error"]]
    latencies = [call["latency_ms"] for call in calls if call["latency_ms"]]
    return {
        "total_calls": len(calls),
        "successful_calls": len(ok),
        "failed_calls": len(calls) - len(ok),
        "total_tokens": sum(call["tokens"] for call in calls),
        "total_cost_usd": round(sum(call["cost_usd"] for call in calls), 6),
        "avg_latency_ms": int(sum(latencies) / len(latencies)) if latencies else 0,
    }


def _openai_chunk(chunk_id: str, created: int, model: str, piece: str | None) -> dict[str, Any]:
    """OpenAI's chunk as the provider sends it: content, or the finish (*piece* None)."""
    delta: dict[str, Any] = {} if piece is None else {"content": piece}
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_emulated",
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": "stop" if piece is None else None,
            }
        ],
    }


def _other_chunk(piece: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": piece},
    }


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground: ``python -m resilience.profiles.saas_litellm.emulator``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument(
        "--no-stream-bug",
        action="store_true",
        help="stream llm-call-stream as a fixed server would (default: today's server bug)",
    )
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="FAULT=P",
        help="a fault rate, such as rate_limit=0.05 or llm-call:slow=0.02 (repeatable)",
    )
    args = parser.parse_args(argv)
    rates = {}
    for item in args.rate:
        name, _, value = item.partition("=")
        rates[name] = float(value)
    emulator = Emulator(
        seed=args.seed,
        rates=rates,
        time_scale=args.time_scale,
        stream_bug=not args.no_stream_bug,
        port=args.port,
    )
    emulator.start()
    print(f"SaaS LiteLLM emulator on {emulator.url}")
    for team, key in emulator.keys.items():
        print(f"  {team:<13} {key}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
