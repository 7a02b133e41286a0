"""
The SaaS LiteLLM demo: the same job workflows, run plainly and through the profile, side by side.

``python -m resilience demo`` (or ``examples/demo.py``) starts the emulator on
127.0.0.1 with a mix of the faults a real deployment meets, then runs a few
hundred job workflows (create, LLM call or stream, complete) twice:

- **plain**: as the API's error-handling page writes them, with its helpers
  (``make_api_request``, its substring timeout lookup, its circuit breaker,
  its streaming loop), reproduced here;
- **profile**: `resilience.profiles.saas_litellm` (`session`, `iter_sse`,
  `JobGuard`).

Every delay of the emulator and of both clients (timeouts, backoff, breaker,
Retry-After) is multiplied by ``--time-scale`` so that the run takes seconds;
latencies are reported scaled back to production time.

The counts depend on ``--seed`` only, not on the machine's speed or load:
each request's fault is drawn from the seed, the workflow and the request's
rank in it; every delay is far (5 s or more, in production time) from the
timeout that would change its outcome; and the fault mix is light enough that
the breaker's five consecutive failures never happen by accident (it opens
when ``--outage`` takes the database down, which depends on timing). Only the
latencies and the run time vary from run to run. One limit: the smallest
margin is about 0.24 s of real time at the default scale (1/25); a machine
loaded several times over its cores can stall a thread that long and change a
count. ``--time-scale 0.1`` widens every margin 2.5 times (the run takes 2.5
times longer, the counts are the same); the suite's test of this runs so.

``--url``, ``--key``, ``--team`` and ``--model`` (or ``SAAS_LITELLM_URL``,
``SAAS_LITELLM_KEY``, ``SAAS_LITELLM_TEAM``, ``SAAS_LITELLM_MODEL``) run the
same workflows against a real server instead, at production timings, with
the faults it has of its own; the jobs, paid calls and charges are then read
back from the server. If its ``llm-call-stream`` is broken (today's server
answers every stream with an in-band TypeError), the streaming share is
skipped and the demo says so. Needs requests (the ``requests`` extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator, Stats

__all__ = ["FAULT_MIX", "Target", "main", "run"]

FAULT_MIX: dict[str, float] = {
    "rate_limit": 0.02,
    "unavailable": 0.01,
    "plain_500": 0.01,
    "bad_gateway": 0.005,
    "gateway_timeout": 0.005,
    "drop": 0.005,
    "llm-call:transient_500": 0.01,
    "llm-call:provider_outage": 0.02,
    "llm-call:permanent_500": 0.01,
    "llm-call:slow": 0.01,
    "llm-call-stream:stream_error": 0.04,
    "llm-call-stream:stream_drop": 0.01,
    "llm-call-stream:stream_stall": 0.01,
}
"""Per-request fault rates ("route:fault" limits a fault to one route).

Light enough that five consecutive failures, which open the breaker, have
well under one chance in a hundred to line up by accident in a default run.
"""

SLOW = 150.0
"""Production seconds a slow answer or a stalled stream waits: 90 s past the
profile's 60 s LLM-call timeout, 30 s past its 120 s stream limits."""

FAILURE_LATENCY = (3.0, 4.0)
"""Production seconds a provider failure takes (the server's own retries): at
least 6 s short of the 10 s the docs' helpers give an LLM call."""

ENV = {
    "url": "SAAS_LITELLM_URL",
    "key": "SAAS_LITELLM_KEY",
    "team": "SAAS_LITELLM_TEAM",
    "model": "SAAS_LITELLM_MODEL",
}
"""The environment variables behind ``--url``, ``--key``, ``--team``, ``--model``."""


def llm_latency(rng: random.Random) -> float:
    """Seconds an LLM call takes: mostly 0.5-1.5 s; one in ten is a long generation of 20-30 s.

    A call that must end in time ends 8.5 s or more before the 10 s the docs'
    helpers allow (30 s before the profile's 60 s); a long generation, which
    the docs' helpers time out, takes 10 s more than their 10 s. Scaled down,
    those margins are a third of a second or more: a slow or loaded machine
    does not change which calls time out.
    """
    return rng.uniform(20.0, 30.0) if rng.random() < 0.1 else rng.uniform(0.5, 1.5)


TEAM = "acme-corp"
MODEL = "gpt-4o-mini"
PROMPT = "Summarise our Q3 incident report."
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}


@attrs.frozen
class Target:
    """
    The server the workflows run against.

    Attributes:
        url: Its base URL.
        key: A virtual key of *team*.
        team: The team id the jobs are created for.
        model: The model (alias or group) the LLM calls name.
        emulated: Whether it is the demo's own emulator (faults, statistics).
    """

    url: str
    key: str = attrs.field(repr=False)
    team: str = TEAM
    model: str = MODEL
    emulated: bool = True

    def chat(self) -> dict[str, Any]:
        """The body of an LLM call."""
        return {"model": self.model, "messages": [{"role": "user", "content": PROMPT}]}


@attrs.define
class Result:
    """The tally of one run."""

    name: str
    succeeded: int = 0
    typed: int = 0
    crashed: int = 0
    latencies: list[float] = attrs.field(factory=list)
    trips: int = 0
    errors: dict[str, int] = attrs.field(factory=dict)
    stats: Stats | None = None
    seconds: float = 0.0
    remote: bool = False

    def counts(self) -> tuple[int, ...]:
        """What depends on the seed only: outcomes, side effects, requests, trips."""
        stats = self.stats
        assert stats is not None
        return (
            self.succeeded,
            self.typed,
            self.crashed,
            stats.duplicate_paid_calls,
            stats.open_jobs,
            stats.requests,
            stats.provider_requests,
            self.trips,
        )


# --- plain: the docs' helpers ------------------------------------------------------------
# What the API's error-handling page recommends, with its flaws kept: a substring
# timeout lookup, response.json() on every error, retries of timeouts on paid
# calls, a breaker that ignores timeouts, and a streaming loop that assumes
# OpenAI chunks. Only time is scaled.


class DocsAPIError(Exception):
    """The docs' ``APIError``."""


class DocsAuthenticationError(DocsAPIError):
    """The docs' ``AuthenticationError``."""


class DocsInsufficientCreditsError(DocsAPIError):
    """The docs' ``InsufficientCreditsError``."""


class DocsRateLimitError(DocsAPIError):
    """The docs' ``RateLimitError``."""


class DocsServerError(DocsAPIError):
    """The docs' ``ServerError``."""


DOCS_TIMEOUTS = {
    "/api/jobs/create": 10,
    "/api/jobs/": 10,
    "/api/jobs/.*llm-call": 60,
    "/api/jobs/.*complete": 30,
    "/api/jobs/create-and-call": 60,
}


class Plain:
    """The docs' helpers, bound to one server, team and model, time scaled by *scale*."""

    def __init__(self, target: Target, scale: float, job_type: str) -> None:
        self.url = target.url
        self.headers = {"Authorization": f"Bearer {target.key}"}
        self.team, self.chat, self.job_type = target.team, target.chat(), job_type
        self.scale = scale
        self.breaker = DocsCircuitBreaker(failure_threshold=5, timeout=60 * scale)

    def timeout_for(self, url: str) -> float:
        """The docs' get_timeout_for_endpoint: the first key found *in* the URL wins."""
        for pattern, timeout in DOCS_TIMEOUTS.items():
            if pattern in url:
                return timeout * self.scale
        return 30 * self.scale

    def request(self, path: str, data: dict[str, Any], max_retries: int = 3) -> Any:
        """The docs' make_api_request ("comprehensive error handler")."""
        import requests

        url = self.url + path
        timeout = self.timeout_for(url)
        for attempt in range(max_retries):
            try:
                response = requests.post(url, headers=self.headers, json=data, timeout=timeout)
                response.raise_for_status()
                return response.json()
            except requests.exceptions.Timeout:
                if attempt == max_retries - 1:
                    raise DocsAPIError("Request timed out after all retries") from None
                time.sleep(2**attempt * self.scale)
            except requests.exceptions.ConnectionError as e:
                if attempt == max_retries - 1:
                    raise DocsAPIError(f"Connection failed after all retries: {e}") from None
                time.sleep(2**attempt * self.scale)
            except requests.exceptions.HTTPError as e:
                status_code = e.response.status_code
                detail = e.response.json().get("detail", "Unknown error")
                if status_code == 401:
                    raise DocsAuthenticationError(f"Authentication failed: {detail}") from None
                if status_code == 403:
                    if "credit" in detail.lower():
                        error = f"Insufficient credits: {detail}"
                        raise DocsInsufficientCreditsError(error) from None
                    raise DocsAPIError(f"Access denied: {detail}") from None
                if status_code == 404:
                    raise DocsAPIError(f"Resource not found: {detail}") from None
                if status_code == 422:
                    raise DocsAPIError(f"Validation error: {detail}") from None
                if status_code == 429:
                    if attempt < max_retries - 1:
                        time.sleep(2**attempt * self.scale)
                    else:
                        raise DocsRateLimitError(f"Rate limit exceeded: {detail}") from None
                elif status_code in [500, 503]:
                    if attempt < max_retries - 1:
                        time.sleep(2**attempt * self.scale)
                    else:
                        raise DocsServerError(f"Server error after all retries: {detail}") from None
                else:
                    raise DocsAPIError(f"HTTP {status_code}: {detail}") from None
        raise DocsAPIError("Request failed after all retries")

    def call(self, path: str, data: dict[str, Any]) -> Any:
        return self.breaker.call(self.request, path, data)

    def stream(self, path: str, data: dict[str, Any]) -> str:
        """The docs' streaming loop, with requests: every chunk is assumed OpenAI-shaped."""
        import requests

        url = self.url + path
        accumulated = ""
        with requests.post(
            url, headers=self.headers, json=data, stream=True, timeout=self.timeout_for(url)
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                if line[6:] == b"[DONE]":
                    break
                chunk = json.loads(line[6:])
                if chunk["choices"]:
                    accumulated += chunk["choices"][0]["delta"].get("content") or ""
        return accumulated

    def workflow(self, n: int, stream: bool) -> None:
        create = {"team_id": self.team, "job_type": self.job_type, "user_id": f"u{n}"}
        job_id = self.call("/api/jobs/create", create)["job_id"]
        try:
            if stream:
                self.stream(f"/api/jobs/{job_id}/llm-call-stream", self.chat)
            else:
                self.call(f"/api/jobs/{job_id}/llm-call", self.chat)
            self.call(f"/api/jobs/{job_id}/complete", {"status": "completed"})
        except Exception as e:
            # The docs' "complete jobs on failure" (important for credit tracking!)
            data = {"status": "failed", "error_message": str(e)}
            self.call(f"/api/jobs/{job_id}/complete", data)
            raise


class DocsCircuitBreaker:
    """The docs' "simple circuit breaker", as written (no lock, no probe limit), plus a count."""

    def __init__(self, failure_threshold: int = 5, timeout: float = 60) -> None:
        self.failure_threshold = failure_threshold
        self.timeout = timeout
        self.failures = 0
        self.last_failure_time: datetime | None = None
        self.state = "closed"
        self.trips = 0

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.state == "open":
            assert self.last_failure_time is not None
            if datetime.now() - self.last_failure_time > timedelta(seconds=self.timeout):
                self.state = "half_open"
                self.failures = 0
            else:
                raise DocsAPIError("Circuit breaker is open")
        try:
            result = func(*args, **kwargs)
            if self.state == "half_open":
                self.state = "closed"
            self.failures = 0
            return result
        except (DocsServerError, DocsRateLimitError):
            self.failures += 1
            self.last_failure_time = datetime.now()
            if self.failures >= self.failure_threshold:
                if self.state != "open":
                    self.trips += 1
                self.state = "open"
            raise


# --- profile -------------------------------------------------------------------------------


class Profiled:
    """The same workflow through the profile: one session per thread, one breaker for all."""

    def __init__(self, target: Target, scale: float, job_type: str) -> None:
        self.endpoints = saas.ENDPOINTS.scaled(scale)
        self.breaker = saas.breaker("saas-litellm demo", reset_timeout=saas.RESET_TIMEOUT * scale)
        self.settings: dict[str, Any] = {
            "endpoints": self.endpoints,
            "backoff": rs.backoff.exponential(
                initial=1.0 * scale, max=32.0 * scale, jitter=rs.backoff.proportional(0.25)
            ),
            "max_retry_after": saas.MAX_RETRY_AFTER * scale,
            "breaker": self.breaker,
        }
        self.url, self.key = target.url, target.key
        self.team, self.chat, self.job_type = target.team, target.chat(), job_type
        self.local = threading.local()
        self.sessions: list[Any] = []
        self.lock = threading.Lock()

    def api(self) -> Any:
        api = getattr(self.local, "api", None)
        if api is None:
            api = self.local.api = saas.session(self.url, self.key, **self.settings)
            with self.lock:
                self.sessions.append(api)
        return api

    def workflow(self, n: int, stream: bool) -> None:
        api = self.api()
        create = {"team_id": self.team, "job_type": self.job_type, "user_id": f"u{n}"}
        job_id = api.post("/api/jobs/create", json=create).json()["job_id"]
        with saas.JobGuard(api, job_id):
            if stream:
                path = f"/api/jobs/{job_id}/llm-call-stream"
                with api.post(path, json=self.chat, stream=True) as response:
                    events = saas.iter_sse(response, endpoints=self.endpoints)
                    "".join(saas.delta_text(event) for event in events)
            else:
                api.post(f"/api/jobs/{job_id}/llm-call", json=self.chat).json()

    def close(self) -> None:
        for api in self.sessions:
            api.close()


# --- running ---------------------------------------------------------------------------------


class Progress:
    """One updating line on a terminal (stderr by default); nothing elsewhere."""

    def __init__(self, name: str, total: int, out: Any) -> None:
        self.name, self.total, self.out = name, total, out
        self.done = 0
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.shown = -1

    def step(self) -> None:
        self.done += 1
        if not self.tty:
            return
        width = 30
        filled = self.done * width // self.total
        if filled == self.shown and self.done != self.total:
            return  # redraw only when the bar moves
        self.shown = filled
        bar = "#" * filled
        self.out.write(f"\r  {self.name:<8} [{bar:<{width}}] {self.done}/{self.total}")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\r" + " " * 60 + "\r")  # the table says it all
            self.out.flush()


def _typed(name: str, error: BaseException) -> bool:
    if name == "plain":
        return isinstance(error, DocsAPIError)
    return isinstance(error, saas.APIError | rs.ResilienceError)


@contextmanager
def _counting_trips(result: Result, keep: tuple[rs.Hook, ...]) -> Iterator[None]:
    """Count every breaker opening of the run, whichever breakers the profile makes.

    *keep*: hooks added for the run, besides the global hooks in place.
    """
    lock = threading.Lock()

    def count(event: rs.Event) -> None:
        if isinstance(event, rs.CircuitOpened):
            with lock:
                result.trips += 1

    previous = rs.set_hooks(())
    rs.set_hooks((*previous, *keep, count))
    try:
        yield
    finally:
        rs.set_hooks(previous)


def run_one(
    name: str,
    *,
    workflows: int,
    workers: int,
    seed: int,
    scale: float,
    outage: float,
    out: Any,
    target: Target | None = None,
    streaming: bool = True,
    progress: Any = None,
    hooks: tuple[rs.Hook, ...] = (),
) -> Result:
    """
    Run *workflows* workflows of one kind; return the tally.

    Against the demo's own emulator (a fresh one, with `FAULT_MIX`) when
    *target* is None, else against *target* at its own pace. *streaming*:
    whether a quarter of the workflows stream. Progress goes to *progress*
    (a terminal only); *hooks* are kept during a profile run.
    """
    result = Result(name, remote=target is not None)
    streams = set(random.Random(seed).sample(range(workflows), k=workflows // 4))
    if not streaming:
        streams = set()
    job_type = f"resilience-demo-{name}-{uuid.uuid4().hex[:8]}"
    emulator: Emulator | None = None
    if target is None:
        emulator = Emulator(
            seed=seed,
            rates=FAULT_MIX,
            time_scale=scale,
            llm_latency=llm_latency,
            failure_latency=FAILURE_LATENCY,
            stream_bug=False,  # streams as the server means to, not as it does today
            slow=SLOW,
        ).start()
        target = Target(emulator.url, emulator.virtual_key, emulator.team_id)
    try:
        client: Plain | Profiled
        if name == "plain":
            client = Plain(target, scale, job_type)
        else:
            client = Profiled(target, scale, job_type)
        bar = Progress(name, workflows, progress if progress is not None else sys.stderr)
        lock = threading.Lock()
        outage_at = workflows // 2 if outage > 0 and emulator is not None else -1

        def database_outage() -> None:
            assert emulator is not None
            emulator.database_down = True
            time.sleep(outage * scale)
            emulator.database_down = False

        def one(n: int) -> None:
            started = time.monotonic()
            error: BaseException | None = None
            try:
                client.workflow(n, n in streams)
            except Exception as exc:
                error = exc
            elapsed = time.monotonic() - started
            with lock:
                result.latencies.append(elapsed / scale)
                if error is None:
                    result.succeeded += 1
                else:
                    if _typed(name, error):
                        result.typed += 1
                    else:
                        result.crashed += 1
                    label = type(error).__name__.removeprefix("Docs")
                    key = f"{label}{'' if _typed(name, error) else ' (untyped)'}"
                    result.errors[key] = result.errors.get(key, 0) + 1
                bar.step()
                if bar.done == outage_at:
                    threading.Thread(target=database_outage, daemon=True).start()

        started = time.monotonic()
        with (
            _counting_trips(result, hooks if name == "profile" else ()),
            ThreadPoolExecutor(max_workers=workers) as pool,
        ):
            for future in as_completed([pool.submit(one, n) for n in range(workflows)]):
                future.result()
        result.seconds = time.monotonic() - started
        bar.close()
        if isinstance(client, Profiled):
            client.close()
        else:
            result.trips = client.breaker.trips
        if emulator is not None:
            # Calls the client gave up on still run on the server: count them all.
            emulator.settle(timeout=SLOW * scale + 10)
            result.stats = emulator.stats()
        else:
            result.stats = server_stats(target, job_type)
    finally:
        if emulator is not None:
            emulator.stop()
    return result


def server_stats(target: Target, job_type: str) -> Stats:
    """Read back from a real server what one run did: its jobs, paid calls and charges.

    The jobs are the team's of *job_type* (one per run); a call row with a
    model is a call the provider answered. Requests sent are not known.
    """
    import requests

    headers = {"Authorization": f"Bearer {target.key}"}
    with requests.Session() as http:
        http.headers.update(headers)
        listed = http.get(
            f"{target.url}/api/teams/{target.team}/jobs", params={"limit": 10_000}, timeout=30
        )
        listed.raise_for_status()
        jobs = [job for job in listed.json()["jobs"] if job["job_type"] == job_type]
        paid = []
        for job in jobs:
            costs = http.get(f"{target.url}/api/jobs/{job['job_id']}/costs", timeout=30)
            costs.raise_for_status()
            breakdown = costs.json()["costs"]["breakdown"]
            paid.append(sum(1 for call in breakdown if call["model"] is not None))
    return Stats(
        requests=-1,
        by_route={},
        paid_calls=sum(paid),
        duplicate_paid_calls=sum(max(0, n - 1) for n in paid),
        jobs=len(jobs),
        open_jobs=sum(1 for job in jobs if job["status"] in ("PENDING", "IN_PROGRESS")),
        credits_charged=sum(1 for job in jobs if job["credit_applied"]),
        faults={},
    )


def stream_is_broken(target: Target) -> str | None:
    """Try one llm-call-stream on *target*; return the server's in-band error if it fails.

    The probe's job is completed as failed either way.
    """
    import requests

    headers = {"Authorization": f"Bearer {target.key}"}
    with requests.Session() as http:
        http.headers.update(headers)
        create = {"team_id": target.team, "job_type": "resilience-demo-probe"}
        created = http.post(f"{target.url}/api/jobs/create", json=create, timeout=30)
        created.raise_for_status()
        job_id = created.json()["job_id"]
        error: str | None = None
        try:
            path = f"{target.url}/api/jobs/{job_id}/llm-call-stream"
            with http.post(path, json=target.chat(), stream=True, timeout=120) as response:
                for event in saas.iter_sse(response):
                    if isinstance(event, dict) and "error" in event:
                        error = str(event["error"])
        except saas.StreamError as exc:
            error = exc.detail or str(exc)
        finally:
            body = {"status": "failed", "error_message": "resilience demo: stream probe"}
            http.post(f"{target.url}/api/jobs/{job_id}/complete", json=body, timeout=30)
    return error


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def table(plain: Result, profile: Result) -> str:
    """Return the side-by-side comparison as text: the counts, then the timings."""
    assert plain.stats is not None
    assert profile.stats is not None

    def requests_sent(result: Result) -> str:
        assert result.stats is not None
        return "-" if result.remote else f"{result.stats.requests}"

    def upstream(result: Result) -> str:
        assert result.stats is not None
        return "-" if result.remote else f"{result.stats.provider_requests}"

    rows: list[tuple[str, str, str]] = [
        ("", "plain (docs' helpers)", "profile"),
        ("workflows succeeded", f"{plain.succeeded}", f"{profile.succeeded}"),
        ("failed with a typed error", f"{plain.typed}", f"{profile.typed}"),
        ("crashed with an untyped error", f"{plain.crashed}", f"{profile.crashed}"),
        (
            "duplicate paid calls",
            f"{plain.stats.duplicate_paid_calls}",
            f"{profile.stats.duplicate_paid_calls}",
        ),
        ("jobs never completed", f"{plain.stats.open_jobs}", f"{profile.stats.open_jobs}"),
        ("requests sent", requests_sent(plain), requests_sent(profile)),
        ("provider requests (upstream)", upstream(plain), upstream(profile)),
        ("breaker trips", f"{plain.trips}", f"{profile.trips}"),
        ("", "", ""),
        (
            "p50 latency",
            f"{_percentile(plain.latencies, 0.5):.1f} s",
            f"{_percentile(profile.latencies, 0.5):.1f} s",
        ),
        (
            "p95 latency",
            f"{_percentile(plain.latencies, 0.95):.1f} s",
            f"{_percentile(profile.latencies, 0.95):.1f} s",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    rule = "  " + "-" * (widths[0] + widths[1] + widths[2] + 6)
    lines = []
    for n, (label, left, right) in enumerate(rows):
        if not label and n:
            lines.append(rule)
            continue
        lines.append(
            f"  {label:<{widths[0]}}   {left:>{widths[1]}}   {right:>{widths[2]}}".rstrip()
        )
        if n == 0:
            lines.append(rule)
    return "\n".join(lines)


def _errors(result: Result) -> str:
    if not result.errors:
        return "none"
    ordered = sorted(result.errors.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ordered)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(
        text,
        width=96,
        initial_indent=indent,
        subsequent_indent=" " * len(indent),
        break_on_hyphens=False,
    )


def run(
    *,
    workflows: int = 300,
    workers: int = 8,
    seed: int = 1,
    scale: float = 0.04,
    outage: float = 0.0,
    out: Any = None,
    log: bool = False,
    target: Target | None = None,
    progress: Any = None,
) -> tuple[Result, Result]:
    """
    Run the demo and print it; return the plain and the profile results.

    Args:
        workflows: Job workflows per run (a quarter of them stream). Default: 300.
        workers: Threads running workflows at once. Default: 8.
        seed: Seeds the faults and which workflows stream. Default: 1.
        scale: The time scale: every delay and timeout is multiplied by it.
            Default: 0.04 (25 times faster than production); 1.0 against a
            real server, whatever is given.
        outage: Production seconds the database is down, halfway through each
            run (the emulator only). Default: 0.0 (no outage).
        out: Where to print. Default: `sys.stdout`.
        log: Keep the default log hook during the profile run, so that its
            events reach the ``resilience`` logger (configure logging to see
            them). Default: `False`: the summary says it all.
        target: A real server to run against. Default: `None`, the demo's
            own emulator with its fault mix.
        progress: Where a progress line is drawn, if it is a terminal.
            Default: `sys.stderr`.

    Raises:
        ValueError: On an *outage* with a *target* (only the emulator's
            database can be taken down).
    """
    out = out if out is not None else sys.stdout
    if target is not None:
        if outage > 0:
            raise ValueError("an outage needs the demo's own emulator: drop --url or --outage")
        scale = 1.0
    out.write("resilience demo: SaaS LiteLLM job workflows, plainly and through the profile\n")
    streaming = True
    if target is None:
        mix = _wrap(", ".join(f"{name} {rate:.1%}" for name, rate in FAULT_MIX.items()), "    ")
        out.write(
            f"  {workflows} workflows per run (create -> LLM call -> complete, a quarter "
            f"streaming), {workers} at a time, seed {seed}\n"
            f"  emulator on 127.0.0.1, faults per request:\n{mix}\n"
            "  LLM calls take 0.5-1.5 s, one in ten 20-30 s (a long generation); a provider "
            "failure 3-4 s\n"
            f"  time scale 1/{1 / scale:g}: every delay, timeout, backoff and Retry-After runs "
            f"{1 / scale:g}x faster\n  than in production; latencies below are scaled back\n"
        )
    else:
        out.write(
            f"  {workflows} workflows per run against {target.url} (team {target.team}, "
            f"model {target.model}), {workers} at a time\n"
            "  the server's own faults only, production timings; jobs, paid calls and "
            "charges read back from it\n"
        )
        broken = stream_is_broken(target)
        if broken is not None:
            streaming = False
            out.write(
                _wrap(
                    "the server's llm-call-stream is broken (it answered "
                    f"{broken!r}): the streaming quarter is skipped, every workflow "
                    "makes a plain LLM call",
                    "  ",
                )
                + "\n"
            )
        else:
            out.write("  a quarter of the workflows stream\n")
    out.write("\n")
    out.flush()
    common: dict[str, Any] = {
        "workflows": workflows,
        "workers": workers,
        "seed": seed,
        "scale": scale,
        "outage": outage,
        "out": out,
        "target": target,
        "streaming": streaming,
        "progress": progress,
    }
    # The demo prints its own summary: the default hook would log every give-up.
    hooks = rs.set_hooks(())
    try:
        plain = run_one("plain", **common)
        profile = run_one("profile", hooks=hooks if log else (), **common)
    finally:
        rs.set_hooks(hooks)
    out.write(table(plain, profile) + "\n\n")
    for result in (plain, profile):
        out.write(_wrap(_errors(result), f"  {result.name} failures: ".ljust(20)) + "\n")
    seconds = f"{plain.seconds:.1f} s + {profile.seconds:.1f} s"
    if target is None:
        out.write(
            f"\n  The counts depend on the seed only; the latencies and the run time ({seconds})"
            "\n  on the machine. The plain run crashes on plain-text and HTML error bodies and "
            "on in-band\n  stream errors, retries timed-out paid calls (duplicates) and "
            "provider failures the server\n  has already tried 9 times (provider requests), "
            "and gives LLM calls the 10 s its substring\n  lookup finds. The profile's jobs "
            "never completed are orphans of retried creates (never\n  charged). Its table: "
            "python -m resilience explain saas-litellm\n"
        )
    else:
        out.write(
            f"\n  ran in {seconds}. Requests sent are not known for a real server. "
            "The profile's table:\n  python -m resilience explain saas-litellm\n"
        )
    out.flush()
    return plain, profile


def _target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Target | None:
    found: dict[str, str] = {
        name: getattr(args, name) or os.environ.get(env, "") for name, env in ENV.items()
    }
    if not found["url"]:
        if args.key or args.team or args.model:
            parser.error(f"--key, --team and --model need --url (or {ENV['url']})")
        return None
    missing = [f"--{name} (or {ENV[name]})" for name in ("key", "team") if not found[name]]
    if missing:
        parser.error(f"a real server needs {' and '.join(missing)}")
    return Target(
        url=found["url"].rstrip("/"),
        key=found["key"],
        team=found["team"],
        model=found["model"] or MODEL,
        emulated=False,
    )


def main(argv: list[str] | None = None) -> int:
    """The demo's command line: ``--seed``, ``--workflows``, ``--url``, ... (``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m resilience demo",
        description="SaaS LiteLLM workflows against a faulty emulator (or a real server): "
        "docs' helpers vs profile.",
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the faults (default: 1)")
    parser.add_argument(
        "--workflows", type=int, default=None, help="per run (default: 300; 20 on a real server)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="threads (default: 8; 4 on a real server)"
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="take the database down this long (production seconds) halfway through each run",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.04,
        help=(
            "multiplies every delay and timeout (default: 0.04, 25x faster; 0.1 on a "
            "heavily loaded machine: the same counts, wider margins)"
        ),
    )
    parser.add_argument(
        "--log",
        choices=("DEBUG", "INFO", "WARNING"),
        default=None,
        help="log the profile run's events to stderr at this level (default: none)",
    )
    server = parser.add_argument_group(
        "a real server (instead of the emulator; production timings, no injected faults)"
    )
    server.add_argument("--url", help=f"its base URL (or {ENV['url']})")
    server.add_argument("--key", help=f"a virtual key of the team (or {ENV['key']})")
    server.add_argument("--team", help=f"the key's team id (or {ENV['team']})")
    server.add_argument("--model", help=f"the model to call (or {ENV['model']}; default {MODEL})")
    args = parser.parse_args(argv)
    target = _target(args, parser)
    workflows = args.workflows if args.workflows is not None else (300 if target is None else 20)
    workers = args.workers if args.workers is not None else (8 if target is None else 4)
    if workflows < 1 or workers < 1 or not 0 < args.time_scale <= 1:
        parser.error("--workflows and --workers must be >= 1, --time-scale in (0, 1]")
    if target is not None and args.outage > 0:
        parser.error("--outage needs the demo's own emulator (drop --url)")
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.stderr.write("the demo needs requests: pip install -e '.[requests]'\n")
        return 2
    if args.log is not None:
        # The demo is an application: configuring logging is its business.
        logging.basicConfig(
            level=logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)-7s %(name)s %(message)s",
        )
        logging.getLogger("resilience").setLevel(args.log)
    run(
        workflows=workflows,
        workers=workers,
        seed=args.seed,
        scale=args.time_scale,
        outage=args.outage,
        log=args.log is not None,
        target=target,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
