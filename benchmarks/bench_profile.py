"""
The SaaS LiteLLM profile's cost per request, against a plain client of the same library.

Two measurements, each of an old tree and a new one side by side in one run
(worker processes alternate between the trees, round after round):

1. **In process**: no network. httpx clients (sync and async) on an
   `httpx.MockTransport`, a requests session whose `HTTPAdapter.send` returns
   a canned answer. Per case, the plain client and the profile's client (its
   defaults: breakers per route family and per model, the paid-call bulkhead,
   Retry, Timeout) send the same request, a job's GET and its llm-call POST,
   again and again (a job polled, or called again: the clients keep the route
   of a URL they sent to), and the same to a new job each time (a URL never
   sent to); the table gives microseconds per request and what the profile
   adds. Goal (issue 19.6): at most 10 µs added.
2. **Loopback**: the same requests to the emulator on 127.0.0.1 (in a process
   of its own), sync clients; requests per second of the profile's client over
   the plain one's. Goal: at least 0.97.

    python benchmarks/bench_profile.py --old /tmp/old-tree              # a few minutes
    python benchmarks/bench_profile.py --old /tmp/old-tree --quick      # a smoke run

*--old* is an older checkout (``git worktree add /tmp/old-tree main``);
*--new* defaults to this repository. Each figure is the median over the
rounds of what one worker measured, cases interleaved inside it; the
machine's load moves absolute times, so compare within a column.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
JOB = "3f0a6a4e-5f7b-4f6e-9d1c-0a0b0c0d0e0f"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
KEY = "sk-" + "a" * 32
GOAL_ADDED_US = 10.0
# CPU time of the measuring thread: on a loaded machine, wall time mostly measures
# the wait for a core; the work a request costs is its CPU time.
CLOCK = time.thread_time
GOAL_THROUGHPUT = 0.97


# --- workers (run with a tree first on sys.path) ---------------------------------------------


def _in_process(loops: int, inner: int) -> dict[str, list[float]]:
    import asyncio

    import httpx
    import requests
    import requests.adapters

    from resilience.profiles import saas_litellm as saas

    body = json.dumps({"job_id": JOB, "status": "PENDING"}).encode()
    headers = {"content-type": "application/json"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    def canned(self: Any, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = 200
        response._content = body
        response.headers.update(headers)
        response.request = request
        response.url = request.url
        return response

    requests.adapters.HTTPAdapter.send = canned  # type: ignore[method-assign]
    mock = httpx.MockTransport(handler)
    url = "http://api.example.com"
    auth = {"Authorization": f"Bearer {KEY}"}  # the plain clients send the key too
    plain_httpx = httpx.Client(base_url=url, transport=mock, headers=auth)
    prof_httpx = saas.client(url, KEY, transport=mock)
    plain_requests = requests.Session()
    plain_requests.headers.update(auth)
    prof_requests = saas.session(url, KEY)
    get, llm = f"/api/jobs/{JOB}", f"/api/jobs/{JOB}/llm-call"

    def sync_case(client: Any, path: str, paid: bool, absolute: bool) -> Any:
        # A plain requests call passes a timeout, as the API's docs do (httpx has its own).
        target = url + path if absolute else path
        extra = {"timeout": 10.0} if absolute else {}
        if paid:
            return lambda: client.post(target, json=CHAT, **extra)
        return lambda: client.get(target, **extra)

    def new_jobs(client: Any, paid: bool, absolute: bool) -> Any:
        # A job the client never sent to (a pool larger than the routes a client keeps).
        paths = itertools.cycle(
            f"/api/jobs/{uuid.UUID(int=n)}" + ("/llm-call" if paid else "") for n in range(3000)
        )
        extra = {"timeout": 10.0} if absolute else {}
        prefix = url if absolute else ""
        if paid:
            return lambda: client.post(prefix + next(paths), json=CHAT, **extra)
        return lambda: client.get(prefix + next(paths), **extra)

    cases: dict[str, Any] = {  # name -> a zero-argument callable
        "httpx GET job: plain": sync_case(plain_httpx, get, False, False),
        "httpx GET job: profile": sync_case(prof_httpx, get, False, False),
        "httpx POST llm-call: plain": sync_case(plain_httpx, llm, True, False),
        "httpx POST llm-call: profile": sync_case(prof_httpx, llm, True, False),
        "requests GET job: plain": sync_case(plain_requests, get, False, True),
        "requests GET job: profile": sync_case(prof_requests, get, False, False),
        "requests POST llm-call: plain": sync_case(plain_requests, llm, True, True),
        "requests POST llm-call: profile": sync_case(prof_requests, llm, True, False),
        "httpx GET new job: plain": new_jobs(plain_httpx, False, False),
        "httpx GET new job: profile": new_jobs(prof_httpx, False, False),
        "requests POST new job: plain": new_jobs(plain_requests, True, True),
        "requests POST new job: profile": new_jobs(prof_requests, True, False),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}

    async def async_round() -> dict[str, list[float]]:
        plain = httpx.AsyncClient(base_url=url, transport=mock, headers=auth)
        prof = saas.async_client(url, KEY, transport=mock)
        acases: dict[str, tuple[Any, str, str, dict[str, Any]]] = {
            "async GET job: plain": (plain, "GET", get, {}),
            "async GET job: profile": (prof, "GET", get, {}),
            "async POST llm-call: plain": (plain, "POST", llm, {"json": CHAT}),
            "async POST llm-call: profile": (prof, "POST", llm, {"json": CHAT}),
        }
        out: dict[str, list[float]] = {name: [] for name in acases}
        for client, method, path, extra in acases.values():
            for _ in range(loops // 10):
                await client.request(method, path, **extra)  # warm
        for _ in range(inner):
            for name, (client, method, path, extra) in acases.items():
                t0 = CLOCK()
                for _ in range(loops):
                    await client.request(method, path, **extra)
                out[name].append((CLOCK() - t0) / loops)
        await plain.aclose()
        await prof.aclose()
        return out

    for fn in cases.values():  # warm: caches, breakers, imports
        for _ in range(loops // 10):
            fn()
    for _ in range(inner):
        for name, fn in cases.items():  # plain, then profile, of each case in turn
            t0 = CLOCK()
            for _ in range(loops):
                fn()
            times[name].append((CLOCK() - t0) / loops)
    times.update(asyncio.run(async_round()))
    return times


def _loopback(
    url: str, key: str, job: str, requests_per: int, inner: int
) -> dict[str, list[float]]:
    import httpx
    import requests

    from resilience.profiles import saas_litellm as saas

    auth = {"Authorization": f"Bearer {key}"}
    plain_requests = requests.Session()
    plain_requests.headers.update(auth)
    plain_httpx = httpx.Client(base_url=url, headers=auth)
    clients: dict[str, tuple[Any, bool]] = {  # name -> (client, send absolute URLs)
        "requests: plain": (plain_requests, True),
        "requests: profile": (saas.session(url, key), False),
        "httpx: plain": (plain_httpx, False),
        "httpx: profile": (saas.client(url, key), False),
    }
    path = f"/api/jobs/{job}"
    rates: dict[str, list[float]] = {name: [] for name in clients}
    # A plain requests call passes a timeout, as the API's docs do (httpx has its own).
    extra: dict[str, dict[str, float]] = {"requests: plain": {"timeout": 10.0}}
    for client, absolute in clients.values():
        for _ in range(20):
            client.get(url + path if absolute else path).raise_for_status()
    cpu: dict[str, list[float]] = {f"{name} cpu": [] for name in clients}
    for _ in range(inner):
        for name, (client, absolute) in clients.items():
            target = url + path if absolute else path
            more = extra.get(name, {})
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(requests_per):
                client.get(target, **more)
            rates[name].append(requests_per / (time.perf_counter() - t0))
            cpu[f"{name} cpu"].append((time.process_time() - c0) / requests_per)
    return {**rates, **cpu}


def worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(args.worker))
    if args.mode == "inprocess":
        out = _in_process(args.loops, args.inner)
    else:
        url, key, job = args.target.split(",")
        out = _loopback(url, key, job, args.loops, args.inner)
    import resilience

    assert Path(resilience.__file__).resolve().is_relative_to(Path(args.worker).resolve())
    print(json.dumps(out))


# --- the parent ------------------------------------------------------------------------------

EMULATOR = """
import json, sys
import requests
from resilience.profiles.saas_litellm.emulator import Emulator
emu = Emulator()
emu.start()
job = requests.post(
    emu.url + "/api/jobs/create",
    json={"team_id": emu.team_id, "job_type": "bench"},
    headers={"Authorization": "Bearer " + emu.virtual_key},
).json()["job_id"]
print(json.dumps([emu.url, emu.virtual_key, job]), flush=True)
sys.stdin.read()
emu.stop()
"""


def run_worker(
    tree: Path, mode: str, loops: int, inner: int, target: str = "", seed: int = 0
) -> dict[str, Any]:
    """
    One worker process's figures, for *tree*.

    Its string hashes come from *seed* (the round: the same for both trees),
    so that the layout of dictionaries and sets, which moves a request's
    cost by a microsecond or two from one process to the next, is the same
    for the trees compared.
    """
    # Isolated as with -I, but for PYTHONHASHSEED: no user site, no script directory.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = str(seed)
    command = [
        sys.executable,
        "-s",
        "-P",
        str(Path(__file__).resolve()),
        "--worker",
        str(tree),
        "--mode",
        mode,
        "--loops",
        str(loops),
        "--inner",
        str(inner),
        "--target",
        target,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd="/", env=env)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def median_of(rounds: list[dict[str, list[float]]], name: str) -> float:
    return statistics.median(value for r in rounds for value in r[name])


def added(rounds: list[dict[str, list[float]]], case: str) -> float:
    """Median over every inner round of (profile - plain), microseconds."""
    diffs = [
        (p - q) * 1e6
        for r in rounds
        for p, q in zip(r[f"{case}: profile"], r[f"{case}: plain"], strict=True)
    ]
    return statistics.median(diffs)


def ratio(rounds: list[dict[str, list[float]]], case: str) -> float:
    values = [
        p / q
        for r in rounds
        for p, q in zip(r[f"{case}: profile"], r[f"{case}: plain"], strict=True)
    ]
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="an older checkout of the repository")
    parser.add_argument("--new", type=Path, default=REPO)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="inprocess", help=argparse.SUPPRESS)
    parser.add_argument("--loops", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--inner", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args)
        return
    trees = {"new": args.new} if args.old is None else {"old": args.old, "new": args.new}
    rounds = 1 if args.quick else args.rounds
    loops = 300 if args.quick else 2000

    inproc: dict[str, list[dict[str, list[float]]]] = {label: [] for label in trees}
    for n in range(rounds):
        for label, tree in trees.items():
            inproc[label].append(run_worker(tree, "inprocess", loops, 3, seed=n))
        print(f"in-process round {n + 1}/{rounds}", file=sys.stderr)
    cases = ["httpx GET job", "httpx POST llm-call", "requests GET job", "requests POST llm-call"]
    cases += ["async GET job", "async POST llm-call", "httpx GET new job", "requests POST new job"]
    print(
        "\nIn process: CPU microseconds per request (median); added = profile - plain, "
        "the median of the paired batches"
    )
    head = f"{'case':<24}" + "".join(
        f"  {label + ' plain':>10}  {label + ' profile':>12}  {label + ' added':>10}"
        for label in trees
    )
    print(head)
    print("-" * len(head))
    for case in cases:
        line = f"{case:<24}"
        for label in trees:
            plain = median_of(inproc[label], f"{case}: plain") * 1e6
            prof = median_of(inproc[label], f"{case}: profile") * 1e6
            line += f"  {plain:>10.1f}  {prof:>12.1f}  {added(inproc[label], case):>10.1f}"
        print(line)
    print(
        f"goal: added <= {GOAL_ADDED_US:g} µs (new tree); 'new job': a URL the client never "
        "sent to, each time"
    )

    emulator = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(args.new)!r})\n" + EMULATOR,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        assert emulator.stdout is not None
        url, key, job = json.loads(emulator.stdout.readline())
        target = f"{url},{key},{job}"
        loop: dict[str, list[dict[str, list[float]]]] = {label: [] for label in trees}
        per = 200 if args.quick else 1000
        for n in range(rounds):
            for label, tree in trees.items():
                loop[label].append(run_worker(tree, "loopback", per, 3, target, seed=n))
            print(f"loopback round {n + 1}/{rounds}", file=sys.stderr)
    finally:
        assert emulator.stdin is not None
        emulator.stdin.close()
        emulator.wait(timeout=30)
    print(
        "\nLoopback against the emulator: requests/s (median), profile / plain (median of "
        "paired rounds); then the client process's CPU per request, plain / profile"
    )
    head = f"{'client':<10}" + "".join(
        f"  {label + ' plain':>10}  {label + ' profile':>12}  {label + ' ratio':>10}"
        for label in trees
    )
    print(head)
    print("-" * len(head))
    for case in ("requests", "httpx"):
        line = f"{case:<10}"
        for label in trees:
            plain = median_of(loop[label], f"{case}: plain")
            prof = median_of(loop[label], f"{case}: profile")
            line += f"  {plain:>10.0f}  {prof:>12.0f}  {ratio(loop[label], case):>10.3f}"
        print(line)
    for case in ("requests", "httpx"):
        line = f"{case + ' cpu':<10}"
        for label in trees:
            plain = median_of(loop[label], f"{case}: plain cpu") * 1e6
            prof = median_of(loop[label], f"{case}: profile cpu") * 1e6
            line += f"  {plain:>8.0f}µs  {prof:>10.0f}µs  {plain / prof:>10.3f}"
        print(line)
    print(f"goal: ratio >= {GOAL_THROUGHPUT:g} (new tree)")


if __name__ == "__main__":
    main()
