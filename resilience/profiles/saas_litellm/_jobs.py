"""The job guard: complete a job as "failed" when the work on it raises, "completed" otherwise."""

from __future__ import annotations

import inspect
from types import TracebackType
from typing import Any, final

from ._endpoints import _check_job_id
from ._errors import raise_for_response, redact

__all__ = ["JobGuard"]

_MESSAGE_LIMIT = 500


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text, _MESSAGE_LIMIT)


@final
class JobGuard:
    """
    Complete a job when a block of work on it ends: "failed" if it raised, "completed" if not.

    The docs' advice ("complete jobs on failure, important for credit
    tracking") as a context manager, sync or async::

        job_id = api.post("/api/jobs/create", json=...).json()["job_id"]
        with saas.JobGuard(api, job_id) as guard:
            answer = api.post(f"/api/jobs/{job_id}/llm-call", json=...).json()
        guard.result["costs"]                      # the complete call's answer

        async with saas.JobGuard(aclient, job_id):
            ...

    When the block raises, the job is completed as "failed" with the error's
    type and message (redacted, at most 500 characters) as ``error_message``,
    and the block's exception propagates unchanged. If completing fails too,
    the block's exception still propagates, with a note saying so: the
    original error is never masked. When the block succeeds and completing
    fails, that failure is raised. Cancellation, `KeyboardInterrupt` and
    `SystemExit` pass through without a complete call (nothing delays them);
    the job is then left for the server to expire.

    Args:
        client: The profile's `session`, `client` or `async_client` (anything
            with ``post(url, json=...)``; a response it returns is checked
            with `raise_for_response`).
        job_id: The job's id, a UUID.
        metadata: Sent with the complete call as ``metadata``. Default: `None`.

    Attributes:
        result: The complete call's JSON answer (status, costs, calls), or
            `None` until it succeeded.

    Raises:
        ValueError: If *job_id* is not a UUID.
    """

    __slots__ = ("_client", "job_id", "metadata", "result")

    def __init__(self, client: Any, job_id: str, *, metadata: dict[str, Any] | None = None) -> None:
        _check_job_id(str(job_id), "POST", "/api/jobs/{job_id}/complete")
        self._client = client
        self.job_id = str(job_id)
        self.metadata = metadata
        self.result: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"JobGuard(job_id={self.job_id!r})"

    def _body(self, exc: BaseException | None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "completed" if exc is None else "failed"}
        if exc is not None:
            body["error_message"] = _describe(exc)
        if self.metadata is not None:
            body["metadata"] = self.metadata
        return body

    def _url(self) -> str:
        return f"/api/jobs/{self.job_id}/complete"

    def _store(self, response: Any) -> None:
        raise_for_response(response)
        data = response.json()
        self.result = data if isinstance(data, dict) else {"answer": data}

    # --- sync ------------------------------------------------------------------------

    def __enter__(self) -> JobGuard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            return  # cancellation and interpreter exits: untouched, undelayed
        try:
            response = self._client.post(self._url(), json=self._body(exc))
            if inspect.isawaitable(response):
                response.close()  # type: ignore[attr-defined]
                raise TypeError("an async client needs `async with JobGuard(...)`")
            self._store(response)
        except Exception as failure:
            if exc is None:
                raise
            exc.add_note(
                f"resilience: completing job {self.job_id} as failed also failed: "
                f"{_describe(failure)}"
            )

    # --- async -----------------------------------------------------------------------

    async def __aenter__(self) -> JobGuard:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            return
        try:
            response = self._client.post(self._url(), json=self._body(exc))
            if inspect.isawaitable(response):
                response = await response
            self._store(response)
        except Exception as failure:
            if exc is None:
                raise
            exc.add_note(
                f"resilience: completing job {self.job_id} as failed also failed: "
                f"{_describe(failure)}"
            )
