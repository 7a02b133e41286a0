"""
A faithful stand-in for the SaaS LiteLLM server, with fault injection, for tests and demos.

It reproduces what the real server does on the wire (see the server-behaviour
notes in ``docs/profile-saas-litellm.md``): JSON ``{"detail": ...}`` errors, the
422 list, plain-text 500s after which the connection is dead, SSE streams
with ``: keepalive``, ``[DONE]`` (OpenAI-style) or none (other providers), and
in-band ``{"error": ...}`` events; and it adds the faults of what stands in
front of a server: 429 with ``Retry-After``, 502/503/504 with HTML bodies,
slow answers, dropped and reset connections, failures mid-stream::

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
port by default, HTTP/1.1 with keep-alive. Every delay (LLM latency, slow
answers, Retry-After values) is multiplied by *time_scale*, so that a demo
can run production timings 50 times faster.

Routes: ``health``, ``create``, ``get``, ``llm-call``, ``llm-call-stream``,
``complete``, ``create-and-call``, ``create-and-call-stream``, ``metadata``,
``costs``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import collections
import datetime
import http.server
import json
import random
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
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
)

FAULTS: Final = {
    "ok": "no fault: the server's own behaviour",
    "rate_limit": "429 from a proxy, JSON body, with Retry-After; nothing processed",
    "bad_request": "400 from a proxy, HTML body; nothing processed",
    "insufficient_credits": "403 'Insufficient credits' (the docs' promise; today's server never)",
    "transient_500": "LLM routes: 500 'LLM call failed: ... Connection error.'; others: plain 500",
    "permanent_500": "LLM routes: 500 'No provider credentials configured'; others: plain 500",
    "plain_500": "plain-text 500 'Internal Server Error' (database down); connection then dead",
    "bad_gateway": "the app does the work, a gateway answers 502 with an HTML page",
    "unavailable": "a gateway answers 503 with an HTML page; nothing processed",
    "gateway_timeout": "the app does the work, a gateway answers 504 with an HTML page",
    "slow": "the app does the work, then answers after `slow` seconds",
    "drop": "the app does the work, then the connection closes without an answer",
    "reset": "the connection is reset before anything is processed",
    "stream_error": "stream routes: a few events, then an in-band {'error': '500: ...'}",
    "stream_drop": "stream routes: a few events, then the connection drops",
    "stream_stall": "stream routes: a few events, then nothing for `slow` seconds",
}
"""Every fault name, with what it does."""

_STREAM_FAULTS: Final = frozenset({"stream_error", "stream_drop", "stream_stall"})
_LLM_ROUTES: Final = frozenset(
    {"llm-call", "llm-call-stream", "create-and-call", "create-and-call-stream"}
)
_STREAM_ROUTES: Final = frozenset({"llm-call-stream", "create-and-call-stream"})

_TRANSIENT_CAUSES: Final = (
    "Connection error.",
    "Request timed out.",
    "Error code: 429 - rate limit exceeded",
    "Server error '503 Service Unavailable'",
)
_CREDENTIALS: Final = (
    "LLM call failed: 500: No provider credentials configured for openai. "
    "Please add credentials in the admin dashboard."
)
_HTML: Final = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_MODELS: Final = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "claude-3-5-haiku", "claude-3-5-sonnet")
_FORMAT_HINT: Final = "Expected: 'Authorization: Bearer sk-xxx...'"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@final
@attrs.frozen
class Stats:
    """
    What the emulator saw and did.

    Attributes:
        requests: Requests received (each attempt counts).
        by_route: Requests per route name.
        paid_calls: Successful provider calls, each one charged.
        duplicate_paid_calls: Paid calls beyond the first, summed over jobs:
            what retrying a paid call costs.
        jobs: Jobs created.
        open_jobs: Jobs still pending or in progress (never completed).
        credits_charged: Credits charged by completed jobs.
        faults: Faults injected, by name.
    """

    requests: int
    by_route: dict[str, int]
    paid_calls: int
    duplicate_paid_calls: int
    jobs: int
    open_jobs: int
    credits_charged: int
    faults: dict[str, int]


class _Job:
    __slots__ = (
        "calls",
        "charged",
        "completed_at",
        "created_at",
        "id",
        "job_type",
        "metadata",
        "status",
        "team",
        "user_id",
    )

    def __init__(self, team: str, job_type: str, user_id: str | None, metadata: Any) -> None:
        self.id = str(uuid.uuid4())
        self.team = team
        self.job_type = job_type
        self.user_id = user_id
        self.metadata = metadata if isinstance(metadata, dict) else {}
        self.status = "PENDING"
        self.created_at = _now()
        self.completed_at: str | None = None
        self.calls: list[dict[str, Any]] = []
        self.charged = False


class _Team:
    __slots__ = ("credits", "key", "name", "status")

    def __init__(self, name: str, status: str = "active", credits: int = 1000) -> None:
        self.name = name
        self.key = "sk-" + uuid.uuid4().hex
        self.status = status
        self.credits = credits


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
        time_scale: Multiplies every delay: LLM latency, cold start, slow
            answers, stalls and Retry-After values. Default: 1.0.
        llm_latency: Seconds an LLM call takes: drawn uniformly from
            ``(low, high)``, or returned by a callable given a seeded
            `random.Random`. Default: ``(0.0, 0.0)``.
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
        cold_start: float = 0.0,
        slow: float = 90.0,
        retry_after: float = 2.0,
        port: int = 0,
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.seed = seed
        self.rates = _check_rates(rates or {})
        self.time_scale = float(time_scale)
        self.llm_latency = llm_latency
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
        self._scripts: dict[str, collections.deque[str]] = collections.defaultdict(
            collections.deque
        )
        self._counters: collections.Counter[tuple[str, str]] = collections.Counter()
        self._requests = 0
        self._by_route: collections.Counter[str] = collections.Counter()
        self._faults: collections.Counter[str] = collections.Counter()
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
        once more, as the real server's first query after an outage does.
        """
        return self._database_down

    @database_down.setter
    def database_down(self, down: bool) -> None:
        with self._lock:
            if self._database_down and not down:
                self._recovering = True
            self._database_down = bool(down)

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
                credits_charged=sum(1 for job in self._jobs.values() if job.charged),
                faults=dict(self._faults),
            )

    def job(self, job_id: str) -> dict[str, Any]:
        """Return a snapshot of a job: status, calls (with ``paid``), error message."""
        with self._lock:
            job = self._jobs[job_id]
            return {
                "job_id": job.id,
                "team_id": job.team,
                "status": job.status,
                "user_id": job.user_id,
                "metadata": dict(job.metadata),
                "calls": [dict(call) for call in job.calls],
                "charged": job.charged,
            }

    # --- decisions (under the lock) ----------------------------------------------------

    def _fault(self, route: str, key: str) -> str:
        with self._lock:
            self._requests += 1
            self._by_route[route] += 1
            for name in (route, "*"):
                queue = self._scripts.get(name)
                if queue:
                    fault = queue.popleft()
                    if fault != "ok":
                        self._faults[fault] += 1
                    return fault
            self._counters[(route, key)] += 1
            n = self._counters[(route, key)]
        if not self.rates:
            return "ok"
        dice = random.Random(f"{self.seed}|{route}|{key}|{n}").random()
        for fault in FAULTS:
            if fault == "ok" or (fault in _STREAM_FAULTS and route not in _STREAM_ROUTES):
                continue
            for name in (fault, f"{route}:{fault}"):
                rate = self.rates.get(name, 0.0)
                if dice < rate:
                    with self._lock:
                        self._faults[fault] += 1
                    return fault
                dice -= rate
        return "ok"

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


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and
    # delayed ACKs would add 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server: _Server
    stale = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- connection-level behaviour -----------------------------------------------------

    def handle_one_request(self) -> None:
        if self.stale:
            # The real server closed this connection after a plain-text 500; a
            # request sent on it "at once" meets a reset before any answer.
            try:
                line = self.rfile.readline(65537)
            except OSError:
                line = b""
            if line:
                self._reset()
            self.close_connection = True
            return
        super().handle_one_request()

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
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _detail(self, status: int, detail: Any) -> None:
        self._json(status, {"detail": detail})

    def _plain_500(self) -> None:
        self._send(500, b"Internal Server Error", "text/plain; charset=utf-8")
        self.stale = True

    def _html(self, status: int) -> None:
        phrase = http.HTTPStatus(status).phrase
        page = _HTML.format(status=status, phrase=phrase).encode()
        self._send(status, page, "text/html")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
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

    def _route(self, method: str, parts: list[str]) -> tuple[str | None, str | None, bool]:
        """Return (route, job_id, method_allowed) for a path's segments."""
        if parts == ["health"]:
            return "health", None, method == "GET"
        if len(parts) < 3 or parts[:2] != ["api", "jobs"]:
            return None, None, False
        rest = parts[2:]
        if rest == ["create"] and method == "POST":
            return "create", None, True
        # As on the server, only POST reaches these: a GET is "get job
        # `create-and-call`" (a plain-text 500, not a UUID), like GET create.
        if rest == ["create-and-call"] and method == "POST":
            return "create-and-call", None, True
        if rest == ["create-and-call-stream"] and method == "POST":
            return "create-and-call-stream", None, True
        if len(rest) == 1:
            return "get", rest[0], method == "GET"
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
                return found[0], rest[0], method == found[1]
        return None, None, False

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        path = self.path.split("?", 1)[0]
        stripped = path.strip("/")
        parts = stripped.split("/") if stripped else []
        route, job_id, allowed = self._route(method, parts)
        body = self._body()
        if route is None:
            self._detail(404, "Not Found")
            return
        if path.endswith("/") and path != "/":
            self._send(307, b"", "text/plain", [("Location", path.rstrip("/"))])
            return
        if not allowed:
            self._detail(405, "Method Not Allowed")
            return
        key = self._fault_key(route, job_id, body)
        fault = emulator._fault(route, key)
        try:
            self._serve(emulator, route, job_id, body, fault, key)
        except _Abort:
            pass

    def _fault_key(self, route: str, job_id: str | None, body: bytes) -> str:
        emulator = self.server.emulator
        if job_id is not None:
            with emulator._lock:
                job = emulator._jobs.get(job_id)
            if job is None:
                return job_id
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
        job_id: str | None,
        raw: bytes,
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
            (200, {"status": "healthy"})
            if route == "health"
            else self._app(emulator, route, job_id, raw, fault, key)
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
        job_id: str | None,
        raw: bytes,
        fault: str,
        key: str,
    ) -> tuple[int, Any] | None:
        """The application itself: parse, authenticate, look the job up, run the route."""
        # The app: body parsing comes before the auth dependency.
        data: Any = {}
        if raw:
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
        team = self._auth(emulator)
        if team is None:
            return None
        if fault == "insufficient_credits":
            self._detail(403, "Insufficient credits: the team has no credits left")
            return None
        if fault == "plain_500" or (
            fault in ("transient_500", "permanent_500") and route not in _LLM_ROUTES
        ):
            self._plain_500()
            return None
        job: _Job | None = None
        if job_id is not None:
            if not _uuid(job_id):
                self._plain_500()
                return None
            with emulator._lock:
                job = emulator._jobs.get(job_id)
            if job is None:
                self._detail(404, "Job not found")
                return None
            if job.team != team.name:
                self._detail(403, "Job does not belong to your team")
                return None
        handler = getattr(self, "_app_" + route.replace("-", "_"))
        result: tuple[int, Any] | None = handler(emulator, team, job, data, fault, key)
        return result

    def _auth(self, emulator: Emulator) -> _Team | None:
        # The header is checked before the database is asked for the key: a
        # missing or malformed header is a 401 even while the database is down.
        header = self.headers.get("Authorization")
        if header is None:
            self._detail(401, f"Missing Authorization header. {_FORMAT_HINT}")
            return None
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token.strip():
            self._detail(401, f"Invalid Authorization header format. {_FORMAT_HINT}")
            return None
        with emulator._lock:
            down = emulator._database_down
            recovering = emulator._recovering
            if recovering and not down:
                emulator._recovering = False
        if down or recovering:
            self._plain_500()
            return None
        team = emulator._by_key.get(token.strip())
        if team is None:
            self._detail(401, "Invalid API key")
            return None
        if team.status != "active":
            self._detail(403, f"Team access is {team.status}. Please contact support.")
            return None
        return team

    def _missing(self, data: Any, fields: Iterable[str]) -> bool:
        """Answer 422 for missing fields; return whether it did."""
        if not isinstance(data, dict):
            self._detail(
                422,
                [
                    {
                        "type": "model_attributes_type",
                        "loc": ["body"],
                        "msg": "Input should be a valid dictionary or object",
                        "input": data,
                    }
                ],
            )
            return True
        errors = [
            {"type": "missing", "loc": ["body", name], "msg": "Field required", "input": data}
            for name in fields
            if name not in data
        ]
        if errors:
            self._detail(422, errors)
            return True
        return False

    def _llm_fields(self, data: Any, extra: Iterable[str] = ()) -> bool:
        if self._missing(data, (*extra, "model", "messages")):
            return True
        messages = data["messages"]
        if not isinstance(messages, list):
            self._detail(
                422,
                [
                    {
                        "type": "list_type",
                        "loc": ["body", "messages"],
                        "msg": "Input should be a valid list",
                        "input": messages,
                    }
                ],
            )
            return True
        return False

    # --- routes ---------------------------------------------------------------------------

    def _app_create(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        if self._missing(data, ("team_id", "job_type")):
            return None
        if data["team_id"] != team.name:
            self._detail(403, f"API key does not belong to team '{data['team_id']}'")
            return None
        new = _Job(team.name, str(data["job_type"]), data.get("user_id"), data.get("metadata"))
        with emulator._lock:
            emulator._jobs[new.id] = new
        return 200, {"job_id": new.id, "status": new.status, "created_at": new.created_at}

    def _app_get(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        assert job is not None
        return 200, {
            "job_id": job.id,
            "team_id": job.team,
            "job_type": job.job_type,
            "status": job.status,
            "created_at": job.created_at,
            "completed_at": job.completed_at,
            "metadata": job.metadata,
        }

    def _app_metadata(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        assert job is not None
        if self._missing(data, ("metadata",)):
            return None
        if isinstance(data["metadata"], dict):
            with emulator._lock:
                job.metadata.update(data["metadata"])
        return 200, {"job_id": job.id, "metadata": job.metadata}

    def _app_costs(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        assert job is not None
        return 200, {"job_id": job.id, "costs": _costs(job, team, applied=job.charged)}

    def _model_allowed(self, team: _Team, job: _Job, model: object) -> bool:
        if isinstance(model, str) and model in _MODELS:
            return True
        job.status = "IN_PROGRESS"  # the real server moves the job first
        self._detail(403, f"Team '{team.name}' does not have access to model group '{model}'")
        return False

    def _provider(
        self, emulator: Emulator, job: _Job, data: dict[str, Any], fault: str, key: str
    ) -> dict[str, Any] | str:
        """Make the provider call: record it; return the answer, or the failure's detail."""
        job.status = "IN_PROGRESS"
        model = data["model"]
        n = len(job.calls)
        if fault in ("transient_500", "permanent_500"):
            if fault == "transient_500":
                rng = random.Random(f"{emulator.seed}|cause|{key}|{n}")
                cause = rng.choice(_TRANSIENT_CAUSES)
                detail = f"LLM call failed: 500: Failed to call provider API: {cause}"
            else:
                detail = _CREDENTIALS
            with emulator._lock:
                job.calls.append(_call(data, "", 0, paid=False, error=detail))
            return detail
        latency = emulator._latency(f"{key}|{n}")
        if latency > 0 and self.server.stopping.wait(latency):
            raise _Abort
        content = _reply(data)
        call = _call(data, content, int(latency * 1000), paid=True, error=None)
        with emulator._lock:
            job.calls.append(call)
        return {
            "call_id": call["call_id"],
            "response": {"content": content, "finish_reason": "stop"},
            "metadata": {
                "tokens_used": call["tokens"],
                "latency_ms": call["latency_ms"],
                "model": model,
            },
        }

    def _app_llm_call(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        assert job is not None
        if self._llm_fields(data) or not self._model_allowed(team, job, data["model"]):
            return None
        answer = self._provider(emulator, job, data, fault, key)
        if isinstance(answer, str):
            self._detail(500, answer)
            return None
        return 200, answer

    def _complete(self, emulator: Emulator, team: _Team, job: _Job, status: str) -> dict[str, Any]:
        with emulator._lock:
            if job.status not in ("COMPLETED", "FAILED"):
                job.status = status.upper()
                job.completed_at = _now()
                paid = any(call["paid"] for call in job.calls)
                if status == "completed" and paid and team.credits > 0:
                    team.credits -= 1
                    job.charged = True
            return {
                "job_id": job.id,
                "status": job.status,
                "completed_at": job.completed_at,
                "costs": _costs(job, team, applied=job.charged),
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
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        assert job is not None
        if self._missing(data, ("status",)):
            return None
        if data["status"] not in ("completed", "failed"):
            self._detail(
                422,
                [
                    {
                        "type": "literal_error",
                        "loc": ["body", "status"],
                        "msg": "Input should be 'completed' or 'failed'",
                        "input": data["status"],
                        "ctx": {"expected": "'completed' or 'failed'"},
                    }
                ],
            )
            return None
        with emulator._lock:
            if isinstance(data.get("metadata"), dict):
                job.metadata.update(data["metadata"])
            if data.get("error_message"):
                job.metadata["error_message"] = str(data["error_message"])
        return 200, self._complete(emulator, team, job, data["status"])

    def _new_job(self, emulator: Emulator, team: _Team, data: Any) -> _Job | None:
        if self._llm_fields(data, ("team_id", "job_type")):
            return None
        if data["team_id"] != team.name:
            self._detail(403, f"API key does not belong to team '{data['team_id']}'")
            return None
        job = _Job(team.name, str(data["job_type"]), data.get("user_id"), data.get("metadata"))
        with emulator._lock:
            emulator._jobs[job.id] = job
        return job

    def _app_create_and_call(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        job = self._new_job(emulator, team, data)
        if job is None or not self._model_allowed(team, job, data["model"]):
            return None
        answer = self._provider(emulator, job, data, fault, key)
        if isinstance(answer, str):
            self._detail(500, answer)
            return None
        summary = self._complete(emulator, team, job, "completed")
        return 200, {
            "job_id": job.id,
            "status": summary["status"],
            "response": answer["response"],
            "metadata": answer["metadata"],
            "costs": summary["costs"],
            "completed_at": summary["completed_at"],
        }

    def _app_llm_call_stream(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        assert job is not None
        if self._llm_fields(data) or not self._model_allowed(team, job, data["model"]):
            return None
        self._stream(emulator, team, job, data, fault, key, keepalive=False)
        return None

    def _app_create_and_call_stream(
        self, emulator: Emulator, team: _Team, job: _Job | None, data: Any, fault: str, key: str
    ) -> tuple[int, Any] | None:
        job = self._new_job(emulator, team, data)
        if job is None or not self._model_allowed(team, job, data["model"]):
            return None
        self._stream(emulator, team, job, data, fault, key, keepalive=True)
        return None

    def _stream(
        self,
        emulator: Emulator,
        team: _Team,
        job: _Job,
        data: dict[str, Any],
        fault: str,
        key: str,
        *,
        keepalive: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if keepalive:
            self._chunk(b": keepalive\n\n")
        # The server buffers the provider's answer: events come after the whole generation.
        answer = self._provider(emulator, job, data, fault, key)
        if isinstance(answer, str):  # after the 200, a failure is an in-band event
            error = answer.removeprefix("LLM call failed: ")
            self._chunk(b"data: " + json.dumps({"error": error}).encode() + b"\n\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        model = str(data["model"])
        words = answer["response"]["content"].split(" ")
        pieces = [" ".join(words[i : i + 3]) + " " for i in range(0, len(words), 3)]
        openai = not model.startswith("claude")
        cut = max(1, len(pieces) // 2)
        for n, piece in enumerate(pieces):
            if n == cut and fault in _STREAM_FAULTS:
                if fault == "stream_error":
                    cause = "500: Failed to call provider API: Connection error."
                    self._chunk(b"data: " + json.dumps({"error": cause}).encode() + b"\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if fault == "stream_drop":
                    self.close_connection = True
                    raise _Abort
                if self.server.stopping.wait(emulator.slow * emulator.time_scale):
                    self.close_connection = True
                    raise _Abort
            event = _openai_chunk(model, piece) if openai else _other_chunk(piece)
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
        if keepalive:  # create-and-call-stream completes its job as the stream ends
            self._complete(emulator, team, job, "completed")
        if openai:
            self._chunk(b"data: " + json.dumps(_openai_chunk(model, None)).encode() + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _reply(data: dict[str, Any]) -> str:
    prompt = ""
    for message in reversed(data.get("messages") or []):
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            prompt = message["content"]
            break
    return f"You said: {prompt[:200]}. Here is a short and helpful answer to that."


def _call(
    data: dict[str, Any], content: str, latency_ms: int, *, paid: bool, error: str | None
) -> dict[str, Any]:
    return {
        "call_id": str(uuid.uuid4()),
        "purpose": data.get("purpose"),
        "model": data.get("model"),
        "tokens": len(content.split()) + 12 if paid else 0,
        "latency_ms": latency_ms,
        "paid": paid,
        "error": error,
    }


def _costs(job: _Job, team: _Team, *, applied: bool) -> dict[str, Any]:
    paid = [call for call in job.calls if call["paid"]]
    tokens = sum(call["tokens"] for call in paid)
    latencies = [call["latency_ms"] for call in paid]
    return {
        "total_calls": len(job.calls),
        "successful_calls": len(paid),
        "failed_calls": len(job.calls) - len(paid),
        "total_tokens": tokens,
        "total_cost_usd": round(tokens * 0.000002, 6),
        "avg_latency_ms": sum(latencies) // len(latencies) if latencies else 0,
        "credit_applied": applied,
        "credits_remaining": team.credits,
    }


def _openai_chunk(model: str, piece: str | None) -> dict[str, Any]:
    delta: dict[str, Any] = {} if piece is None else {"content": piece}
    return {
        "id": "chatcmpl-emulated",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [
            {"index": 0, "delta": delta, "finish_reason": None if piece is not None else "stop"}
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
    emulator = Emulator(seed=args.seed, rates=rates, time_scale=args.time_scale, port=args.port)
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
