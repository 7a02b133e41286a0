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
latencies are reported scaled back to production time. The faults are seeded
per workflow, so ``--seed`` reproduces them whatever the threads do. Needs
requests (the ``requests`` extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from typing import Any

import attrs

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator, Stats

__all__ = ["FAULT_MIX", "main", "run"]

FAULT_MIX: dict[str, float] = {
    "rate_limit": 0.03,
    "unavailable": 0.02,
    "plain_500": 0.015,
    "bad_gateway": 0.01,
    "gateway_timeout": 0.01,
    "drop": 0.01,
    "llm-call:transient_500": 0.06,
    "llm-call:permanent_500": 0.01,
    "llm-call:slow": 0.02,
    "llm-call-stream:stream_error": 0.06,
    "llm-call-stream:stream_drop": 0.02,
    "llm-call-stream:stream_stall": 0.01,
}
"""Per-request fault rates ("route:fault" limits a fault to one route)."""


def llm_latency(rng: random.Random) -> float:
    """Seconds an LLM call takes: mostly 1-7 s; one in ten is a long generation of 13-25 s."""
    return rng.uniform(13.0, 25.0) if rng.random() < 0.1 else rng.uniform(1.0, 7.0)


TEAM = "acme-corp"
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Summarise our Q3 incident report."}],
}


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
    """The docs' helpers, bound to one base URL and key, time scaled by *scale*."""

    def __init__(self, url: str, key: str, scale: float) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
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
        job = self.call(
            "/api/jobs/create", {"team_id": TEAM, "job_type": "demo", "user_id": f"u{n}"}
        )
        job_id = job["job_id"]
        try:
            if stream:
                self.stream(f"/api/jobs/{job_id}/llm-call-stream", CHAT)
            else:
                self.call(f"/api/jobs/{job_id}/llm-call", CHAT)
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

    def __init__(self, url: str, key: str, scale: float) -> None:
        self.trips = 0
        self.endpoints = saas.ENDPOINTS.scaled(scale)
        self.breaker = saas.breaker(
            "saas-litellm demo", reset_timeout=saas.RESET_TIMEOUT * scale, hooks=[self._count]
        )
        self.settings: dict[str, Any] = {
            "endpoints": self.endpoints,
            "backoff": rs.backoff.exponential(
                initial=1.0 * scale, max=32.0 * scale, jitter=rs.backoff.proportional(0.25)
            ),
            "max_retry_after": saas.MAX_RETRY_AFTER * scale,
            "breaker": self.breaker,
        }
        self.url, self.key = url, key
        self.local = threading.local()
        self.sessions: list[Any] = []
        self.lock = threading.Lock()

    def _count(self, event: rs.Event) -> None:
        if isinstance(event, rs.CircuitOpened):
            with self.lock:
                self.trips += 1

    def api(self) -> Any:
        api = getattr(self.local, "api", None)
        if api is None:
            api = self.local.api = saas.session(self.url, self.key, **self.settings)
            with self.lock:
                self.sessions.append(api)
        return api

    def workflow(self, n: int, stream: bool) -> None:
        api = self.api()
        create = {"team_id": TEAM, "job_type": "demo", "user_id": f"u{n}"}
        job_id = api.post("/api/jobs/create", json=create).json()["job_id"]
        with saas.JobGuard(api, job_id):
            if stream:
                path = f"/api/jobs/{job_id}/llm-call-stream"
                with api.post(path, json=CHAT, stream=True) as response:
                    events = saas.iter_sse(response, endpoints=self.endpoints)
                    "".join(saas.delta_text(event) for event in events)
            else:
                api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT).json()

    def close(self) -> None:
        for api in self.sessions:
            api.close()


# --- running ---------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal, a few lines elsewhere."""

    def __init__(self, name: str, total: int, out: Any) -> None:
        self.name, self.total, self.out = name, total, out
        self.done = 0
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.next_mark = 0.25

    def step(self) -> None:
        self.done += 1
        share = self.done / self.total
        if self.tty:
            bar = "#" * int(share * 30)
            self.out.write(f"\r  {self.name:<8} [{bar:<30}] {self.done}/{self.total}")
            if self.done == self.total:
                self.out.write("\n")
            self.out.flush()
        elif share >= self.next_mark or self.done == self.total:
            self.out.write(f"  {self.name:<8} {self.done}/{self.total} workflows done\n")
            self.out.flush()
            while self.next_mark <= share:
                self.next_mark += 0.25


def _typed(name: str, error: BaseException) -> bool:
    if name == "plain":
        return isinstance(error, DocsAPIError)
    return isinstance(error, saas.APIError | rs.ResilienceError)


def run_one(
    name: str,
    *,
    workflows: int,
    workers: int,
    seed: int,
    scale: float,
    outage: float,
    out: Any,
) -> Result:
    """Run *workflows* workflows of one kind against a fresh emulator; return the tally."""
    result = Result(name)
    streams = random.Random(seed).sample(range(workflows), k=workflows // 4)
    streaming = set(streams)
    emulator = Emulator(
        seed=seed,
        rates=FAULT_MIX,
        time_scale=scale,
        llm_latency=llm_latency,
    )
    with emulator:
        client: Plain | Profiled
        if name == "plain":
            client = Plain(emulator.url, emulator.virtual_key, scale)
        else:
            client = Profiled(emulator.url, emulator.virtual_key, scale)
        progress = Progress(name, workflows, out)
        lock = threading.Lock()
        outage_at = workflows // 2 if outage > 0 else -1

        def database_outage() -> None:
            emulator.database_down = True
            time.sleep(outage * scale)
            emulator.database_down = False

        def one(n: int) -> None:
            started = time.monotonic()
            error: BaseException | None = None
            try:
                client.workflow(n, n in streaming)
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
                progress.step()
                if progress.done == outage_at:
                    threading.Thread(target=database_outage, daemon=True).start()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(one, n) for n in range(workflows)]):
                future.result()
        result.seconds = time.monotonic() - started
        if isinstance(client, Profiled):
            result.trips = client.trips
            client.close()
        else:
            result.trips = client.breaker.trips
        result.stats = emulator.stats()
    return result


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


def table(plain: Result, profile: Result) -> str:
    """Return the side-by-side comparison as text."""
    assert plain.stats is not None
    assert profile.stats is not None
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
        ("requests sent", f"{plain.stats.requests}", f"{profile.stats.requests}"),
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
        ("breaker trips", f"{plain.trips}", f"{profile.trips}"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for n, (label, left, right) in enumerate(rows):
        lines.append(
            f"  {label:<{widths[0]}}   {left:>{widths[1]}}   {right:>{widths[2]}}".rstrip()
        )
        if n == 0:
            lines.append("  " + "-" * (widths[0] + widths[1] + widths[2] + 6))
    return "\n".join(lines)


def _errors(result: Result) -> str:
    if not result.errors:
        return "none"
    ordered = sorted(result.errors.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ordered)


def run(
    *,
    workflows: int = 300,
    workers: int = 16,
    seed: int = 1,
    scale: float = 0.02,
    outage: float = 0.0,
    out: Any = None,
    log: bool = False,
) -> tuple[Result, Result]:
    """
    Run the demo and print it; return the plain and the profile results.

    Args:
        workflows: Job workflows per run (a quarter of them stream). Default: 300.
        workers: Threads running workflows at once. Default: 16.
        seed: Seeds the faults and which workflows stream. Default: 1.
        scale: The time scale: every delay and timeout is multiplied by it.
            Default: 0.02 (50 times faster than production).
        outage: Production seconds the database is down, halfway through each
            run. Default: 0.0 (no outage).
        out: Where to print. Default: `sys.stdout`.
        log: Keep the default log hook during the profile run, so that its
            events reach the ``resilience`` logger (configure logging to see
            them). Default: `False`: the summary says it all.
    """
    out = out if out is not None else sys.stdout
    mix = textwrap.fill(
        ", ".join(f"{name} {rate:.1%}" for name, rate in FAULT_MIX.items()),
        width=96,
        initial_indent="    ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    )
    out.write(
        "resilience demo: SaaS LiteLLM job workflows, plainly and through the profile\n"
        f"  {workflows} workflows per run (create -> LLM call -> complete, a quarter streaming), "
        f"{workers} at a time, seed {seed}\n"
        f"  emulator on 127.0.0.1, faults per request:\n{mix}\n"
        "  LLM calls take 1-7 s, one in ten 13-25 s (a long generation)\n"
        f"  time scale 1/{1 / scale:g}: every delay, timeout, backoff and Retry-After runs "
        f"{1 / scale:g}x faster\n  than in production; latencies below are scaled back\n\n"
    )
    out.flush()
    common: dict[str, Any] = {
        "workflows": workflows,
        "workers": workers,
        "seed": seed,
        "scale": scale,
        "outage": outage,
        "out": out,
    }
    # The demo prints its own summary: the default hook would log every give-up.
    hooks = rs.set_hooks(())
    try:
        plain = run_one("plain", **common)
        if log:
            rs.set_hooks(hooks)
        profile = run_one("profile", **common)
    finally:
        rs.set_hooks(hooks)
    out.write("\n" + table(plain, profile) + "\n\n")
    for result in (plain, profile):
        failures = textwrap.fill(
            _errors(result),
            width=96,
            initial_indent=f"  {result.name} failures: ".ljust(20),
            subsequent_indent=" " * 20,
            break_on_hyphens=False,
        )
        out.write(failures + "\n")
    out.write(
        f"\n  ran in {plain.seconds:.1f} s + {profile.seconds:.1f} s. The plain run crashes on "
        "plain-text and HTML error bodies\n  and on in-band stream errors, retries timed-out "
        "paid calls (duplicates), and gives LLM calls\n  the 10 s its substring lookup finds. "
        "The profile's jobs never completed are orphans of\n  retried creates (never charged). "
        "Its table: python -m resilience explain saas-litellm\n"
    )
    out.flush()
    return plain, profile


def main(argv: list[str] | None = None) -> int:
    """The demo's command line: ``--seed``, ``--workflows``, ``--workers``, ``--time-scale``."""
    parser = argparse.ArgumentParser(
        prog="python -m resilience demo",
        description="SaaS LiteLLM workflows against a faulty emulator: docs' helpers vs profile.",
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the faults (default: 1)")
    parser.add_argument("--workflows", type=int, default=300, help="per run (default: 300)")
    parser.add_argument("--workers", type=int, default=16, help="threads (default: 16)")
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
        default=0.02,
        help="multiplies every delay and timeout (default: 0.02, 50x faster)",
    )
    parser.add_argument(
        "--log",
        choices=("DEBUG", "INFO", "WARNING"),
        default=None,
        help="log the profile run's events to stderr at this level (default: none)",
    )
    args = parser.parse_args(argv)
    if args.workflows < 1 or args.workers < 1 or not 0 < args.time_scale <= 1:
        parser.error("--workflows and --workers must be >= 1, --time-scale in (0, 1]")
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.stderr.write("the demo needs requests: pip install 'resilience-policies[requests]'\n")
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
        workflows=args.workflows,
        workers=args.workers,
        seed=args.seed,
        scale=args.time_scale,
        outage=args.outage,
        log=args.log is not None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
