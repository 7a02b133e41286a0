"""Shared fixtures: global switches reset around every test, sync/async mirroring."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience._clock import testing_state


@pytest.fixture(autouse=True)
def _reset_global_state() -> Iterator[None]:
    """Every test starts with testing mode off and the default hooks."""
    hooks = rs.get_hooks()
    enabled, attempts = testing_state.enabled, testing_state.attempts
    yield
    rs.set_hooks(hooks)
    testing_state.enabled, testing_state.attempts = enabled, attempts


class Runner:
    """Runs a policy-wrapped callable the same way in its sync and its async flavour."""

    def __init__(self, is_async: bool) -> None:
        self.is_async = is_async

    def __repr__(self) -> str:
        return "async" if self.is_async else "sync"

    def make(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """Return *body* as is (sync) or as a coroutine function calling it (async)."""
        if not self.is_async:
            return body

        async def abody(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return body(*args, **kwargs)

        abody.__name__ = abody.__qualname__ = getattr(body, "__name__", "abody")
        return abody

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call *fn* and, if it is async, run it to completion on a fresh event loop."""
        out = fn(*args, **kwargs)
        if inspect.isawaitable(out):
            return asyncio.run(_await(out))
        return out


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Runner:
    """Parametrizes a test over the sync and async drivers."""
    return Runner(bool(request.param))
