"""The job guard: completed on success, failed with the message on error, never masking it."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator

from .emulator_helpers import Client

pytest_plugins = ["tests.emulator_fixtures"]


class WorkFailed(Exception):
    """The error a block of work raises in these tests."""


def test_success_completes_the_job(api: Client, emu: Emulator) -> None:
    """A block that returns completes the job as "completed"; the answer is kept."""
    job_id = api.create_job()
    guard = api.guard(job_id)
    assert guard.result is not None
    assert guard.result["status"] == "COMPLETED"
    assert emu.job(job_id)["status"] == "COMPLETED"


def test_failure_completes_the_job_as_failed(api: Client, emu: Emulator) -> None:
    """A block that raises completes the job as "failed" with the error, and re-raises it."""
    job_id = api.create_job()
    error = WorkFailed("the model said nothing useful")
    with pytest.raises(WorkFailed) as caught:
        api.guard(job_id, fail_with=error)
    assert caught.value is error
    assert not getattr(error, "__notes__", None)
    job = emu.job(job_id)
    assert job["status"] == "FAILED"
    assert job["error_message"] == "WorkFailed: the model said nothing useful"


def test_failed_completion_never_masks_the_original(api: Client, emu: Emulator) -> None:
    """When completing fails too, the block's error propagates, with a note saying so."""
    job_id = api.create_job()
    emu.script("complete", "unavailable", "unavailable", "unavailable")
    error = WorkFailed("boom")
    with pytest.raises(WorkFailed) as caught:
        api.guard(job_id, fail_with=error)
    assert caught.value is error
    assert "completing job" in error.__notes__[0]
    assert "ServerError: 503 Service Unavailable" in error.__notes__[0]
    assert emu.job(job_id)["status"] == "PENDING"


def test_failed_completion_after_success_raises(api: Client, emu: Emulator) -> None:
    """When the block succeeded, a failed completion is the error."""
    job_id = api.create_job()
    emu.script("complete", "unavailable", "unavailable", "unavailable")
    with pytest.raises(saas.ServerError):
        api.guard(job_id)


def test_completion_is_retried(api: Client, emu: Emulator) -> None:
    """Completing is idempotent one at a time: a dropped complete call is retried."""
    job_id = api.create_job()
    emu.script("complete", "drop", "ok")
    api.guard(job_id)
    assert emu.job(job_id)["status"] == "COMPLETED"
    assert emu.stats().by_route["complete"] == 2


def test_interrupts_pass_through_untouched(api: Client, emu: Emulator) -> None:
    """KeyboardInterrupt (sync) and cancellation (async) are not delayed by a complete call."""
    job_id = api.create_job()
    if api.kind == "async":
        # The cancelled task's future, seen from the test's thread, is cancelled too.
        with pytest.raises(concurrent.futures.CancelledError):
            api.guard(job_id, fail_with=asyncio.CancelledError())
    else:
        with pytest.raises(KeyboardInterrupt):
            api.guard(job_id, fail_with=KeyboardInterrupt())
    assert "complete" not in emu.stats().by_route


def test_job_id_must_be_a_uuid() -> None:
    """A guard for a job id that is not a UUID is refused at once."""
    with pytest.raises(ValueError, match="job_id must be a UUID"):
        saas.JobGuard(object(), "job-1")


def test_metadata_is_sent(emu: Emulator) -> None:
    """metadata= goes with the complete call."""
    with saas.session(emu.url, emu.virtual_key, breaker=None) as api:
        job_id = api.post("/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"})
        job_id = job_id.json()["job_id"]
        with saas.JobGuard(api, job_id, metadata={"run": 7}) as guard:
            pass
    assert guard.result is not None
    assert emu.job(job_id)["metadata"] == {"run": 7}
    assert repr(guard) == f"JobGuard(job_id={job_id!r})"
