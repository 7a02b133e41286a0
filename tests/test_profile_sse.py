"""The SSE reader: keepalives, [DONE], in-band errors, no [DONE], drops and timeouts."""

from __future__ import annotations

import http.server
import json
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm._sse import _Decoder, _limits
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock

from .emulator_helpers import CHAT, Client
from .forms import run_async
from .threads import join_all

pytest_plugins = ["tests.emulator_fixtures"]

CLAUDE = {**CHAT, "model": "claude-3-5-haiku"}
NEW_JOB = {"team_id": "acme-corp", "job_type": "stream"}


def text(events: list[Any]) -> str:
    return "".join(saas.delta_text(event) for event in events)


def test_openai_stream_stops_at_done(api: Client, emu: Emulator) -> None:
    """OpenAI-style chunks are yielded in order; [DONE] ends the stream."""
    job_id = api.create_job()
    events = api.events(f"/api/jobs/{job_id}/llm-call-stream", CHAT)
    assert text(events) == "You said: Say hello. Here is a short and helpful answer to that. "
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert emu.stats().paid_calls == 1


def test_keepalive_comment_is_skipped(api: Client, emu: Emulator) -> None:
    """create-and-call-stream's leading ': keepalive' is not an event."""
    events = api.events("/api/jobs/create-and-call-stream", {**NEW_JOB, **CHAT})
    assert all(isinstance(event, dict) and "choices" in event for event in events)
    assert emu.stats().credits_charged == 1


def test_stream_without_done_is_accepted(api: Client) -> None:
    """Other providers' streams end without [DONE]: every chunk, no error."""
    job_id = api.create_job()
    events = api.events(f"/api/jobs/{job_id}/llm-call-stream", CLAUDE)
    assert [event["type"] for event in events] == ["content_block_delta"] * len(events)
    assert "".join(event["delta"]["text"] for event in events).startswith("You said:")


def test_in_band_error_is_a_stream_error_with_the_partial_content(
    api: Client, emu: Emulator
) -> None:
    """An in-band {"error": ...} after HTTP 200 raises StreamError with .partial and .text."""
    job_id = api.create_job()
    emu.script("llm-call-stream", "stream_error")
    with pytest.raises(saas.StreamError) as caught:
        api.events(f"/api/jobs/{job_id}/llm-call-stream", CHAT)
    error = caught.value
    assert isinstance(error, rs.StreamInterruptedError)
    assert error.detail == "500: Failed to call provider API: OpenAI error: Connection error."
    assert error.status == 500
    assert len(error.partial) == 2
    assert error.text == "You said: Say hello. Here is "
    assert error.path == f"/api/jobs/{job_id}/llm-call-stream"


def test_provider_failure_after_the_200_is_in_band(api: Client, emu: Emulator) -> None:
    """A provider failure on a stream comes after the 200, as one event: StreamError, no partial."""
    emu.script("create-and-call-stream", "permanent_500")
    with pytest.raises(saas.StreamError) as caught:
        api.events("/api/jobs/create-and-call-stream", {**NEW_JOB, **CHAT})
    assert caught.value.partial == []
    assert saas.is_permanent(caught.value.detail)


def test_dropped_stream_is_a_stream_error(api: Client, emu: Emulator) -> None:
    """A connection dropped mid-stream raises StreamError with what arrived."""
    job_id = api.create_job()
    emu.script("llm-call-stream", "stream_drop")
    with pytest.raises(saas.StreamError, match="dropped") as caught:
        api.events(f"/api/jobs/{job_id}/llm-call-stream", CHAT)
    assert caught.value.text == "You said: Say hello. Here is "
    assert caught.value.__cause__ is not None


def _stalled(kind: str, emu: Emulator, **limits: Any) -> saas.StreamError:
    """Open a stream that stalls mid-way and read it with the given limits.

    The sync clients' socket timeout, 1 s, must not fire before the stall (the answer's
    head and first events come at once, from a thread that may wait its turn on a loaded
    machine) and must fire during it (5 s).
    """
    emu.script("llm-call-stream", "stream_stall")
    client = Client(kind, emu.url, emu.virtual_key, breaker=None, clock=FakeClock())
    try:
        job_id = client.create_job()
        path = f"/api/jobs/{job_id}/llm-call-stream"
        with pytest.raises(saas.StreamError) as caught:
            if kind == "requests":
                response = client.api.post(path, json=CHAT, stream=True, timeout=1.0)
                list(saas.iter_sse(response, **limits))
            elif kind == "httpx":
                with client.api.stream("POST", path, json=CHAT, timeout=1.0) as response:
                    list(saas.iter_sse(response, **limits))
            else:
                assert client.loop is not None

                async def read() -> None:
                    async with client.api.stream("POST", path, json=CHAT) as response:
                        async for _ in saas.aiter_sse(response, **limits):
                            pass

                client.loop.run(read())
    finally:
        client.close()
    return caught.value


def test_idle_stream_times_out(kind: str, emu: Emulator) -> None:
    """A stream that stops sending raises StreamError once the idle limit passes."""
    error = _stalled(kind, emu, idle=1.0)
    assert "in time" in str(error) or "within" in str(error)
    assert len(error.partial) == 2


def test_total_timeout_is_checked_between_chunks(emu: Emulator) -> None:
    """A sync stream longer than its total limit raises StreamError between chunks."""
    ticks = iter(float(n * 100) for n in range(100))
    client = Client("requests", emu.url, emu.virtual_key, breaker=None, clock=FakeClock())
    try:
        job_id = client.create_job()
        response = client.api.post(f"/api/jobs/{job_id}/llm-call-stream", json=CHAT, stream=True)
        with pytest.raises(saas.StreamError, match="total timeout of 150 s"):
            list(saas.iter_sse(response, total=150.0, clock=ticks.__next__))
    finally:
        client.close()


def _stalled_in(backend: str, emu: Emulator, **limits: Any) -> saas.StreamError:
    """`_stalled` with the async client, run in *backend* (any of `tests.forms.BACKENDS`)."""
    emu.script("llm-call-stream", "stream_stall")

    async def read() -> saas.StreamError:
        async with saas.async_client(emu.url, emu.virtual_key, breaker=None) as api:
            answer = await api.post("/api/jobs/create", json=NEW_JOB)
            path = f"/api/jobs/{answer.json()['job_id']}/llm-call-stream"
            with pytest.raises(saas.StreamError) as caught:
                async with api.stream("POST", path, json=CHAT) as response:
                    async for _ in saas.aiter_sse(response, **limits):
                        pass
            return caught.value

    return run_async(read, backend)


def test_async_total_timeout(emu: Emulator, backend: str) -> None:
    """An async stream is cut at its total limit even while it waits (in every backend)."""
    error = _stalled_in(backend, emu, total=0.3, idle=5.0)
    assert "total timeout" in str(error)


def test_async_idle_timeout(emu: Emulator, backend: str) -> None:
    """An async stream that stops sending is cut at its idle limit (in every backend)."""
    error = _stalled_in(backend, emu, idle=0.3)
    assert "within 0.3 s" in str(error)
    assert len(error.partial) == 2


def test_response_is_closed_when_iteration_stops(emu: Emulator) -> None:
    """Leaving the loop early closes the response (its connection is not left half-read)."""
    with saas.client(emu.url, emu.virtual_key, breaker=None) as client:
        job_id = client.post("/api/jobs/create", json=NEW_JOB).json()["job_id"]
        request = client.build_request("POST", f"/api/jobs/{job_id}/llm-call-stream", json=CHAT)
        response = client.send(request, stream=True)
        for _ in saas.iter_sse(response):
            break
        assert response.is_closed


def test_defaults_come_from_the_endpoint_map(emu: Emulator) -> None:
    """Idle and total default to the stream endpoint's timeout in the map given."""
    error = _stalled("async", emu, endpoints=saas.ENDPOINTS.scaled(0.3 / 120))
    assert "0.3 s" in str(error)
    request = httpx.Request("POST", "http://h/api/jobs/create-and-call-stream")
    assert _limits(httpx.Response(200, request=request), None, None, saas.ENDPOINTS) == (
        120.0,
        120.0,
    )
    other = httpx.Request("GET", "http://h/health")
    assert _limits(httpx.Response(200, request=other), None, None, saas.ENDPOINTS) == (None, None)


# --- decoding ---------------------------------------------------------------------------


def decode(chunks: list[bytes]) -> list[str]:
    decoder = _Decoder()
    events: list[str] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.finish()


def test_decoder_fields_and_comments() -> None:
    """Comments and unknown fields are skipped; multi-line data joins with newlines."""
    stream = (
        b": keepalive\r\n\r\nevent: x\r\nid: 1\r\ndata: one\r\ndata:two\r\n\r\n"
        b'retry: 5\ndata: {"a": 1}\n\n\rdata: {"last": 1}'
    )
    # The last event lacks its blank line: kept, being whole JSON (see below otherwise).
    assert decode([stream]) == ["one\ntwo", '{"a": 1}', '{"last": 1}']


@given(st.data())
def test_decoder_is_indifferent_to_chunking(data: st.DataObject) -> None:
    """However the bytes are split, the same events come out (CR, LF and CRLF alike)."""
    newline = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    events = data.draw(st.lists(st.text(alphabet="ab {}:,", min_size=1, max_size=8), max_size=5))
    stream = b"".join(b"data: " + e.encode() + newline + newline for e in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode(chunks) == events


def _fake_stream(lines: list[bytes]) -> httpx.Response:
    def body() -> Iterator[bytes]:
        yield from lines

    request = httpx.Request("POST", "http://h/api/jobs/create-and-call-stream")
    return httpx.Response(200, content=body(), request=request)


def test_non_json_data_is_yielded_as_text() -> None:
    """Data that is not JSON is yielded as a string, not a crash."""
    response = _fake_stream([b"data: hello\n\n", b"data: [DONE]\n\n", b"data: after\n\n"])
    assert list(saas.iter_sse(response)) == ["hello"]


def test_openai_style_error_object() -> None:
    """An in-band {"error": {"message": ..., "code": ...}} gives its message and its status."""
    response = _fake_stream([b'data: {"error": {"message": "overloaded", "code": 529}}\n\n'])
    with pytest.raises(saas.StreamError) as caught:
        list(saas.iter_sse(response))
    assert caught.value.detail == "overloaded"
    assert caught.value.status == 529


SERVER_STREAM_BUG = "'Response' object does not support the asynchronous context manager protocol"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("500: Failed to call provider API: Connection error.", 500),
        ("LLM call failed: 500: Failed to call provider API: Connection error.", 500),
        (SERVER_STREAM_BUG, 500),
        ("something went wrong", 500),
    ],
)
def test_in_band_error_status_is_never_none(event: str, status: int) -> None:
    """Issue 17.6: an in-band error is the server's 500 after its 200, whatever its prefix."""
    body = json.dumps({"error": event}).encode()
    with pytest.raises(saas.StreamError) as caught:
        list(saas.iter_sse(_fake_stream([b"data: " + body + b"\n\n"])))
    assert caught.value.status == status


def test_the_servers_stream_bug_is_permanent_and_said_plainly() -> None:
    """Issue 17.6: the server's broken llm-call-stream: clear StreamError, unretried, uncounted."""
    body = json.dumps({"error": SERVER_STREAM_BUG}).encode()
    with pytest.raises(saas.StreamError) as caught:
        list(saas.iter_sse(_fake_stream([b"data: " + body + b"\n\n"])))
    assert "the server's stream endpoint is broken" in str(caught.value)
    assert "use the non-streaming endpoint" in str(caught.value)
    for idempotent in (True, False):
        verdict = saas.classifier(idempotent).classify(caught.value)
        assert (verdict.retry, verdict.trip) == (False, False)


def test_delta_text_never_raises() -> None:
    """delta_text reads choices[0].delta.content and is "" for anything else."""
    assert saas.delta_text({"choices": [{"delta": {"content": "hi"}}]}) == "hi"
    odd: list[object] = [None, "x", {}, {"choices": []}, {"choices": [{"delta": None}]}]
    for payload in [*odd, {"choices": "x"}]:
        assert saas.delta_text(payload) == ""


def test_stream_error_pickles() -> None:
    """StreamError keeps partial, text and fields through pickle."""
    error = saas.StreamError("broke", partial=[{"a": 1}], text="a", status=500, detail="500: x")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.partial, copy.text, copy.status, copy.detail) == ([{"a": 1}], "a", 500, "500: x")


class _CloseDelimited(http.server.BaseHTTPRequestHandler):
    """Answers SSE without chunked encoding: the body ends when the connection closes."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for part in (b": keepalive\n\n", b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n'):
            self.wfile.write(part)
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_leading_byte_order_mark_is_ignored() -> None:
    """A UTF-8 BOM before the first event (split across chunks) does not hide it."""
    response = _fake_stream([b"\xef\xbb", b'\xbfdata: {"n": 1}\n\n', b'data: {"n": 2}\n\n'])
    assert list(saas.iter_sse(response)) == [{"n": 1}, {"n": 2}]


def test_a_stream_cut_inside_an_event_is_a_stream_error() -> None:
    """The last event cut off mid-way is not yielded as a fragment: StreamError, partial kept."""
    response = _fake_stream([b'data: {"n": 1}\n\n', b'data: {"choices":[{"del'])
    with pytest.raises(saas.StreamError, match="ended in the middle of an event") as caught:
        list(saas.iter_sse(response))
    assert caught.value.partial == [{"n": 1}]


def test_deeply_nested_data_is_text_not_a_crash() -> None:
    """JSON nested beyond the parser's depth is normal input: yielded as text."""
    deep = "[" * 100_000
    response = _fake_stream([b"data: " + deep.encode() + b"\n\n", b'data: {"n": 1}\n\n'])
    assert list(saas.iter_sse(response)) == [deep, {"n": 1}]


def test_sync_idle_limit_is_checked_as_data_arrives() -> None:
    """An explicit idle= holds for sync streams too: a chunk that came too late is
    delivered, then the stream ends with StreamError."""
    now = [0.0]

    def body() -> Iterator[bytes]:
        yield b'data: {"n": 1}\n\n'
        now[0] += 2.0  # a 2 s gap before the next chunk
        yield b'data: {"n": 2}\n\n'
        yield b'data: {"n": 3}\n\n'

    request = httpx.Request("POST", "http://h/api/jobs/create-and-call-stream")
    response = httpx.Response(200, content=body(), request=request)
    got: list[Any] = []
    with pytest.raises(saas.StreamError, match=r"no event arrived within 0\.5 s"):
        for payload in saas.iter_sse(response, idle=0.5, total=60.0, clock=lambda: now[0]):
            got.append(payload)
    assert got == [{"n": 1}, {"n": 2}]


def test_close_delimited_stream_with_requests() -> None:
    """A stream that is not chunked (delimited by the connection's end) reads the same."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CloseDelimited)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/jobs/create-and-call-stream"
        with requests.get(url, stream=True, timeout=5) as response:
            assert list(saas.iter_sse(response)) == [{"n": 1}, {"n": 2}]
        # Without stream=True the body is read at once: decoded all the same.
        with requests.get(url, timeout=5) as response:
            assert list(saas.iter_sse(response)) == [{"n": 1}, {"n": 2}]
    finally:
        server.shutdown()
        server.server_close()
        join_all([thread])


def test_an_async_stream_read_with_httpx_meets_the_endpoints_timeout(
    emu: Emulator, backend: str
) -> None:
    """Issue 19: the async client gives a stream's socket the endpoint's timeout.

    A stream is read after the attempt, outside its Timeout: read with httpx's
    own iterators rather than `aiter_sse`, a stall then ends at the socket.
    """
    emu.script("llm-call-stream", "stream_stall")

    async def read() -> None:
        endpoints = saas.ENDPOINTS.scaled(0.5 / 120)  # a stream's 120 s: 0.5 s
        async with saas.async_client(
            emu.url, emu.virtual_key, breaker=None, endpoints=endpoints
        ) as api:
            answer = await api.post("/api/jobs/create", json=NEW_JOB)
            path = f"/api/jobs/{answer.json()['job_id']}/llm-call-stream"
            async with api.stream("POST", path, json=CHAT) as response:
                with pytest.raises(httpx.ReadTimeout):
                    async for _ in response.aiter_raw():
                        pass

    run_async(read, backend)
