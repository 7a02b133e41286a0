"""The async worlds: asyncio, trio and anyio on both backends, detected at call time (issue #15)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import resilience as rs
from resilience import engine
from resilience._clock import SYSTEM_CLOCK
from resilience.testing import FakeClock
from tests.docs_blocks import run_block

from .forms import Background, checkpoint, run_async, until
from .threads import WAIT


def test_importing_resilience_imports_no_async_library_but_asyncio() -> None:
    """`import resilience` leaves trio, anyio and sniffio unimported (issue #15)."""
    code = (
        "import sys, resilience, resilience.testing, resilience.engine\n"
        "print(sorted(m for m in ('trio', 'anyio', 'sniffio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=WAIT
    )
    assert out.stdout.strip() == "[]"


def test_the_system_clock_sleeps_with_the_running_library(backend: str) -> None:
    """SYSTEM_CLOCK.asleep is asyncio's sleep under asyncio, trio's under trio (issue #15)."""

    async def main() -> str:
        await SYSTEM_CLOCK.asleep(0)
        return "slept"

    assert run_async(main, backend) == "slept"


def test_a_retry_sleeps_on_the_fake_clock_in_every_backend(backend: str) -> None:
    """The fake clock's async sleep yields to whichever library runs the task (issue #15)."""
    clock = FakeClock()
    calls: list[int] = []

    @rs.Retry(on=ValueError, attempts=3, backoff=rs.backoff.constant(2.0), clock=clock)
    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError
        return "ok"

    assert run_async(flaky, backend) == "ok"
    assert clock.sleeps == [2.0, 2.0]


def test_async_with_attempt_in_every_backend(backend: str) -> None:
    """`async for` / `async with attempt:` retry a block under every backend (issue #15)."""
    clock = FakeClock()
    numbers: list[int] = []

    async def main() -> int:
        async for attempt in rs.Retry(on=ValueError, clock=clock).attempts():
            async with attempt:
                numbers.append(attempt.number)
                await checkpoint()
                if attempt.number < 3:
                    raise ValueError
        return len(numbers)

    assert run_async(main, backend) == 3
    assert len(clock.sleeps) == 2


def test_tasks_of_one_run_wait_in_a_bulkhead_queue_in_arrival_order(backend: str) -> None:
    """Queued tasks of one run wake in the order they came, woken by the task that leaves."""
    b = rs.Bulkhead(max_concurrent=1, max_queue=3)
    order: list[int] = []

    async def job(number: int) -> None:
        order.append(number)
        await checkpoint()

    def queued(count: int) -> Callable[[], bool]:
        return lambda: b.waiting == count

    async def main() -> list[int]:
        async with anyio.create_task_group() as group, b:  # a nursery, under trio
            for number in range(3):
                group.start_soon(b.acall, job, number)
                await until(queued(number + 1))
        return order

    assert run_async(main, backend) == [0, 1, 2]
    assert (b.running, b.waiting) == (0, 0)


def test_a_thread_wakes_a_task_queued_in_a_trio_run() -> None:
    """A slot freed in another thread wakes a task waiting in a trio run (issue #15)."""
    b = rs.Bulkhead(max_concurrent=1, max_queue=1)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with b:
            holding.set()
            assert release.wait(WAIT)

    holder = Background(hold)
    assert holding.wait(WAIT)

    async def main() -> list[str]:
        async def free_when_queued() -> None:
            await until(lambda: b.waiting == 1)
            release.set()

        async def body() -> str:
            await checkpoint()
            return "ran"

        out: list[str] = []
        async with anyio.create_task_group() as group:
            group.start_soon(free_when_queued)
            out.append(await b.acall(body))
        return out

    assert run_async(main, "trio") == ["ran"]
    holder.result()
    assert (b.running, b.waiting) == (0, 0)


def test_cancel_after_ends_a_block_with_timeout_error_in_every_backend(backend: str) -> None:
    """engine.cancel_after: the block is cancelled at its deadline, leaves as TimeoutError (#15)."""

    async def main() -> tuple[bool, bool]:
        with pytest.raises(TimeoutError) as info:
            async with engine.cancel_after(0.01) as scope:
                await anyio.sleep_forever()
        assert type(info.value) is TimeoutError
        async with engine.cancel_after(None) as unlimited:  # no deadline: the block just runs
            await checkpoint()
        return scope.expired(), unlimited.expired()

    assert run_async(main, backend) == (True, False)


def test_cancel_after_lets_an_enclosing_cancellation_through(backend: str) -> None:
    """An enclosing scope's cancellation passes a longer cancel_after unchanged (#15)."""

    async def main() -> bool:
        with anyio.move_on_after(0.01) as outer:
            async with engine.cancel_after(30.0) as scope:
                await anyio.sleep_forever()
        assert not scope.expired()
        return outer.cancelled_caught

    assert run_async(main, backend) is True


def test_outside_any_async_library_the_error_says_so() -> None:
    """A coroutine driven by hand (no asyncio, no trio) gets a RuntimeError that says why."""
    coroutine = rs.Timeout(1.0).acall(checkpoint)
    with pytest.raises(RuntimeError, match="not in an async task"):
        coroutine.send(None)


DOC = Path(__file__).resolve().parent.parent / "docs" / "trio-anyio.md"


def test_the_docs_examples_run_as_written() -> None:
    """Every python block of docs/trio-anyio.md runs on its own, as a reader would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 3, "docs/trio-anyio.md lost its examples"
    for number, block in enumerate(blocks, 1):
        namespace: dict[str, object] = {"__name__": f"trio_anyio_doc_{number}"}
        run_block("trio-anyio.md", block, namespace)
