"""
A throwaway ``redis-server`` on 127.0.0.1, for the tests and the benchmarks.

Redis has no ``--port 0``: a free port is found by binding a socket first, then
the server is started on it (and started again on another port if it lost the
race). Nothing is saved: ``--save '' --appendonly no``, in a temporary directory.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

STARTUP = 10.0  # seconds: a safety net against a server that never answers

# The tests that make Redis sleep (put_to_sleep) give their store this socket timeout: a
# round trip to a Redis that is awake takes far less, however loaded the machine (0.1 s
# did not, once, and the failure meant to be counted before the sleep was not).
STALL_TIMEOUT = 1.0
# And make it sleep this long: the timeout, plus 2 s in which to send the request that must
# time out (after the sleep has begun, by a test or worker process slowed down by load).
STALL = STALL_TIMEOUT + 2.0


def redis_server_binary() -> str | None:
    """Return the path of ``redis-server``, or `None` if this machine has none."""
    return shutil.which("redis-server")


def make_client(url: str, **options: Any) -> redis.Redis:
    """A client whose failures show at once: 1 s timeouts, no retries of its own."""
    import redis
    import redis.backoff
    import redis.retry

    options.setdefault("socket_timeout", 1.0)
    options.setdefault("socket_connect_timeout", 1.0)
    options.setdefault("retry", redis.retry.Retry(redis.backoff.NoBackoff(), 0))
    return redis.Redis.from_url(url, **options)


def _debug_options(binary: str) -> list[str]:
    """Redis 7 refuses DEBUG (the tests' DEBUG SLEEP) unless enabled; older servers allow it."""
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    major = version.partition(" v=")[2].partition(".")[0]
    return ["--enable-debug-command", "local"] if major.isdigit() and int(major) >= 7 else []


def free_port() -> int:
    """A port nothing listens on right now (it may be taken again before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def put_to_sleep(url: str, seconds: float) -> socket.socket:
    """
    Make the server at *url* run ``DEBUG SLEEP seconds``; return once it sleeps.

    Asleep means a PING on a new connection gets no answer. Close the returned
    connection once the server is awake again.
    """
    address = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = address.rpartition(":")
    sleeper = socket.create_connection((host, int(port)), timeout=STARTUP)
    sleeper.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
    give_up = time.monotonic() + STARTUP
    while time.monotonic() < give_up:
        with socket.create_connection((host, int(port)), timeout=STARTUP) as probe:
            probe.settimeout(min(seconds / 10, 0.05))
            probe.sendall(b"PING\r\n")
            try:
                probe.recv(16)
            except TimeoutError:
                return sleeper  # no answer: asleep
    sleeper.close()
    raise RuntimeError(f"redis-server at {url} never went to sleep")


class RedisServer:
    """
    One ``redis-server`` process: `start`, `kill` (SIGKILL, as a crash) and start again.

    Usable as a context manager; the temporary directory goes with it.
    """

    def __init__(self) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self._tmp = tempfile.TemporaryDirectory(prefix="resilience-redis-")
        self.directory = Path(self._tmp.name)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> RedisServer:
        """Start the server, on *port* or on a free one; return once it answers PING."""
        for _ in range(5 if port is None else 1):
            self.port = port or free_port()
            log = (self.directory / "redis.log").open("ab")
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    "--daemonize",
                    "no",
                    # DEBUG SLEEP makes a slow Redis (the async store's tests, #18).
                    *_debug_options(self.binary),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            give_up = time.monotonic() + STARTUP
            while time.monotonic() < give_up and self.process.poll() is None:
                if _answers(self.port):
                    return self
                time.sleep(0.01)  # waiting for a process to start: not a backoff under test
            self.kill()  # lost the port to someone else, or too slow: try another
        log_text = (self.directory / "redis.log").read_text(errors="replace")
        raise RuntimeError(f"redis-server did not start:\n{log_text[-2000:]}")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): a crash, not a shutdown."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(STARTUP)

    def close(self) -> None:
        self.kill()
        self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
