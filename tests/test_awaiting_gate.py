"""Awaiting gates (resilience.engine.AwaitingGate): decisions awaited in every async form."""

from __future__ import annotations

from typing import Any

import pytest

import resilience as rs
from resilience.engine import NO_RESULT, AwaitingGate, GatePolicy, Wait
from resilience.testing import FakeClock

from .forms import Boom, Form, Work, cancel_inside, checkpoint, gate_forms, pick


class Remote(GatePolicy):
    """An awaiting gate: each decision waits for its 'round trip' (a checkpoint) first."""

    def __init__(self, *, admit: bool = True, wait: float | None = None) -> None:
        self.allow = admit
        self.wait = wait
        self.log: list[tuple[str, Any]] = []
        self.fake = FakeClock()

    @property
    def awaits(self) -> bool:
        return True

    @property
    def clock(self) -> rs.Clock:
        return self.fake

    async def aadmit(self, target: object, /) -> object:
        await checkpoint()
        if not self.allow:
            raise rs.RejectedError("the remote said no")
        self.log.append(("admit", target is None))
        return "permit" if self.wait is None else Wait(self.wait, "permit")

    async def aon_success(
        self, permit: object, result: object, duration: float | None, target: object, /
    ) -> None:
        await checkpoint()
        self.log.append(("success", result))

    async def aon_failure(
        self, permit: object, error: Exception, duration: float | None, target: object, /
    ) -> None:
        await checkpoint()
        self.log.append(("failure", type(error).__name__))

    def on_cancel(
        self, permit: object, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        self.log.append(("cancel", permit))


def never_retry() -> rs.Retry:
    return rs.Retry(on=KeyError, attempts=2)


FORMS = gate_forms(never_retry)
ASYNC_FORMS = pick(FORMS, is_async=True)
SYNC_FORMS = pick(FORMS, is_async=False)


def test_the_remote_gate_is_an_awaiting_gate() -> None:
    """The protocol is runtime-checkable in spirit: Remote has every member it names."""
    gate: AwaitingGate = Remote()
    assert gate.awaits


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_a_success_is_admitted_and_reported_awaited(form: Form) -> None:
    """Every async form awaits aadmit, then aon_success with the result (NO_RESULT for blocks)."""
    gate = Remote()
    assert form.run(gate, Work()) == "done"
    assert [kind for kind, _ in gate.log] == ["admit", "success"]
    streams_and_blocks = form.name in ("async generator", "async with")
    assert gate.log[1][1] == (NO_RESULT if streams_and_blocks else "done")


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_a_failure_is_reported_awaited(form: Form) -> None:
    """The body's exception reaches aon_failure, then the caller."""
    gate = Remote()
    with pytest.raises(Boom):
        form.run(gate, Work(Boom()))
    assert gate.log[-1] == ("failure", "Boom")


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_a_refusal_runs_nothing(form: Form) -> None:
    """aadmit's RejectedError reaches the caller; the body never runs."""
    gate, work = Remote(admit=False), Work()
    with pytest.raises(rs.RejectedError):
        form.run(gate, work)
    assert work.seen == []
    assert gate.log == []


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_a_cancelled_call_is_handed_to_the_sync_on_cancel(form: Form) -> None:
    """Cancellation is never a failure: on_cancel (sync) gets the permit."""
    gate = Remote()
    cancel_inside(form, gate)
    assert gate.log[-1] == ("cancel", "permit")
    assert not any(kind in ("success", "failure") for kind, _ in gate.log)


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_a_wait_from_aadmit_is_waited_out(form: Form) -> None:
    """aadmit may return a Wait: the engine waits it out on the gate's clock, then runs the call."""
    gate = Remote(wait=5.0)
    assert form.run(gate, Work()) == "done"
    assert [kind for kind, _ in gate.log] == ["admit", "success"]
    assert gate.fake.sleeps == [5.0]


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_sync_forms_are_a_type_error(form: Form) -> None:
    """A function, a generator, `call` or `with`: an awaiting gate cannot be awaited there."""
    gate, work = Remote(), Work()
    with pytest.raises(TypeError, match=r"awaits its decisions|use `async with`"):
        form.run(gate, work)
    assert work.seen == []


def test_an_async_generator_failure_after_an_item_is_awaited() -> None:
    """A stream that fails after its first item reports the failure, awaited."""
    gate = Remote()

    @gate
    async def numbers() -> Any:
        yield 1
        raise Boom

    async def main() -> list[int]:
        got = []
        with pytest.raises(Boom):
            async for n in numbers():
                got.append(n)
        return got

    assert Form("stream").run_async(main) == [1]
    assert gate.log == [("admit", False), ("failure", "Boom")]


def test_a_gate_that_does_not_await_gets_the_sync_decisions() -> None:
    """awaits is read at bind time: GatePolicy's default (False) keeps the usual drivers."""

    class Plain(GatePolicy):
        def admit(self, target: object, /) -> object:
            return "p"

    assert Plain().awaits is False
    assert Plain().call(lambda: 3) == 3
