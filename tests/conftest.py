"""Shared fixtures: global switches reset around every test; sync and async (every backend)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience._clock import testing_state

from . import docs_blocks
from .forms import BACKENDS, cancelled_error, checkpoint, run_async


@pytest.fixture(autouse=True)
def _reset_global_state() -> Iterator[None]:
    """Every test starts with testing mode off and the default hooks."""
    hooks = rs.get_hooks()
    enabled, attempts = testing_state.enabled, testing_state.attempts
    yield
    rs.set_hooks(hooks)
    testing_state.enabled, testing_state.attempts = enabled, attempts


class Runner:
    """
    Runs a policy-wrapped callable the same way in its sync and its async flavours.

    The async flavour runs in one of `BACKENDS`: asyncio, trio, and anyio on each.
    """

    def __init__(self, backend: str | None) -> None:
        self.backend = backend
        self.is_async = backend is not None

    def __repr__(self) -> str:
        return self.backend or "sync"

    @property
    def cancelled(self) -> type[BaseException]:
        """The exception a cancelled task sees in this backend."""
        assert self.backend is not None
        return cancelled_error(self.backend)

    def make(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """Return *body* as is (sync) or as a coroutine function calling it (async)."""
        if not self.is_async:
            return body

        async def abody(*args: Any, **kwargs: Any) -> Any:
            await checkpoint()
            return body(*args, **kwargs)

        abody.__name__ = abody.__qualname__ = getattr(body, "__name__", "abody")
        return abody

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call *fn* and, if it is async, run it to completion on a fresh run of the backend."""
        if self.backend is None:
            out = fn(*args, **kwargs)
            assert not inspect.isawaitable(out)
            return out

        async def main() -> Any:
            return await fn(*args, **kwargs)

        return run_async(main, self.backend)


@pytest.fixture(params=[None, *BACKENDS], ids=["sync", *BACKENDS])
def mode(request: pytest.FixtureRequest) -> Runner:
    """Parametrizes a test over the sync driver and the async one in every backend."""
    return Runner(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Parametrizes an async test over every backend (run it with `forms.run_async`)."""
    return str(request.param)


# --- every docs block is run by a test (tests/docs_blocks.py, tests/test_docs.py) --------

#: The last test of a session: it checks the docs blocks every other test ran.
LAST = "test_every_docs_block_is_run_by_a_test"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the docs-blocks check after every other test, whatever the files' order."""
    items.sort(key=lambda item: item.name == LAST)


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Note the test files that do not run in full (-k, --deselect, --lf)."""
    docs_blocks.PARTIAL.update(item.path.name for item in items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Note the test files that run in this session."""
    docs_blocks.COLLECTED.update(item.path.name for item in session.items)
