"""
Helpers for the SaaS LiteLLM profile tests: one client API over three clients, odd sockets.

The fixtures are in `tests.emulator_fixtures` (a pytest plugin the test
modules name in ``pytest_plugins``). `Client` drives the profile's `session`
(requests), `client` (httpx) and `async_client` (httpx, on an event loop in a
background thread) through the same calls, so that one test covers all three.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from resilience.profiles import saas_litellm as saas

from .threads import WAIT

T = TypeVar("T")

KINDS = ("requests", "httpx", "async")

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


class Loop:
    """An event loop running in a daemon thread; `run` submits a coroutine and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=WAIT)

    def close(self) -> None:
        # What asyncio.run does on the way out: async generators left suspended
        # (httpx nests them; leaving a stream early leaves the inner ones to the
        # garbage collector) are finalised while the loop still runs, not after.
        async def drain() -> None:
            gc.collect()
            await asyncio.sleep(0)
            await self.loop.shutdown_asyncgens()

        # WAIT: hang nets only (5 s ran out once on a loaded machine, failing a teardown).
        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(timeout=WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=WAIT)
        self.loop.close()


class Client:
    """The profile's session, client or async client behind one synchronous API."""

    def __init__(self, kind: str, url: str, key: str, **settings: Any) -> None:
        self.kind = kind
        self.loop: Loop | None = None
        self.api: Any
        if kind == "requests":
            self.api = saas.session(url, key, **settings)
        elif kind == "httpx":
            self.api = saas.client(url, key, **settings)
        else:
            self.loop = Loop()

            async def make() -> Any:
                return saas.async_client(url, key, **settings)

            self.api = self.loop.run(make())

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return the response (raising the profile's typed errors)."""
        if self.loop is None:
            return self.api.request(method, path, **kwargs)
        return self.loop.run(self.api.request(method, path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def create_job(self, team_id: str = "acme-corp") -> str:
        job_id: str = self.post(
            "/api/jobs/create", json={"team_id": team_id, "job_type": "test"}
        ).json()["job_id"]
        return job_id

    def events(self, path: str, body: dict[str, Any]) -> list[Any]:
        """POST to a streaming endpoint and return every event payload (or raise)."""
        if self.kind == "requests":
            return list(saas.iter_sse(self.api.post(path, json=body, stream=True)))
        if self.kind == "httpx":
            with self.api.stream("POST", path, json=body) as response:
                return list(saas.iter_sse(response))

        async def collect() -> list[Any]:
            async with self.api.stream("POST", path, json=body) as response:
                return [payload async for payload in saas.aiter_sse(response)]

        assert self.loop is not None
        return self.loop.run(collect())

    def guard(self, job_id: str, fail_with: BaseException | None = None) -> saas.JobGuard:
        """Run an empty (or failing) block under a JobGuard; return the guard."""
        guard = saas.JobGuard(self.api, job_id)
        if self.loop is None:
            with guard:
                if fail_with is not None:
                    raise fail_with
            return guard

        async def block() -> None:
            async with guard:
                if fail_with is not None:
                    raise fail_with

        self.loop.run(block())
        return guard

    def close(self) -> None:
        if self.loop is None:
            self.api.close()
            return
        self.loop.run(self.api.aclose())
        self.loop.close()


def unused_port() -> int:
    """A loopback port where nothing listens: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Unresponsive:
    """A loopback listener whose backlog is full: a connect hangs until its timeout."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        self.port = int(self.server.getsockname()[1])
        self.fillers: list[socket.socket] = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.server.close()
