"""
The failure paths of `bench_failures.py` in two source trees, side by side in one run.

Made to check a change on the failure paths (issue 19): every case of
``bench_failures.py`` (rejections, counted failures, Retry's fail, fail,
succeed, against the peers) measured in an old tree and a new one, the cases
and the trees taking turns, each timed in CPU time. The peers' cases are the
same code in both trees: their new/old shows the run's noise.

    python benchmarks/bench_failures_trees.py --old /tmp/old-tree             # 30 rounds
    python benchmarks/bench_failures_trees.py --old /tmp/old-tree --rounds 10

*--old* is an older checkout of this repository (``git worktree add --detach
/tmp/old-tree main``); *--new* defaults to the repository this script lives in.
Two trees cannot be imported in one process: each is measured by a child whose
``sys.path`` starts with its tree (as in ``bench_engine.py``), which builds the
cases of this repository's ``bench_failures.py`` and times one case at a time,
on request. Each round asks for every case in both trees back to back,
alternating which tree goes first; a case's time in a tree is its best round,
as in ``bench_failures.py --rounds``. The case with a setup (hooks off) changes
its process: it is measured last.

A few success paths come along, as guards (a change to the failure paths must
not cost them): a closed breaker and circuitbreaker's, `rs.Retry`, and a
bulkhead with a fixed and an adaptive limit.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "bench_failures_trees.py"
REPO = HERE.parent
SERVE = "_serve"


def _load(name: str) -> ModuleType:
    """This folder's module *name*, by file: the same code whatever tree is measured."""
    key = f"_bench_failures_trees_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from benchmarks import bench_engine as engine
else:
    engine = _load("bench_engine")


def guards() -> list[Any]:
    """The success-path cases (built in a child, once its tree is imported)."""
    import circuitbreaker

    import resilience as rs

    harness = _load("_harness")
    work, case = harness.work, harness.Case
    peer = circuitbreaker.circuit(failure_threshold=5, expected_exception=ConnectionError)
    adaptive = rs.limits.AIMD(initial=10, maximum=10)
    return [
        case("success: circuitbreaker", peer(work)),
        case("success: rs.CircuitBreaker", rs.CircuitBreaker(on=ConnectionError)(work)),
        case("success: rs.Retry", rs.Retry(on=ConnectionError)(work)),
        case("success: rs.Bulkhead", rs.Bulkhead(max_concurrent=10)(work)),
        case("success: rs.Bulkhead, adaptive", rs.Bulkhead(max_concurrent=adaptive)(work)),
    ]


def serve(argv: list[str]) -> None:
    """A child: import its tree, say which cases it has, then time each case named on stdin."""
    parser = argparse.ArgumentParser(prog=f"bench_failures_trees.py {SERVE}")
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--avoid", type=Path, required=True)
    parser.add_argument("--loops", type=int, required=True)
    args = parser.parse_args(argv)
    reply: IO[str] = sys.stdout
    sys.stdout = sys.stderr  # whatever a case prints must not mix with the replies
    where = engine._point_at(args.tree.resolve(), [args.avoid.resolve()])
    failures = _load("bench_failures")  # its `import resilience` finds the tree's
    cases = {case.name: case for case in [*guards(), *failures.cases()]}
    timers = {name: failures.cpu_timer(case) for name, case in cases.items()}
    hello = {
        "resilience": where,
        "cases": list(cases),
        "setup": [name for name, case in cases.items() if case.setup is not None],
    }
    print(json.dumps(hello), file=reply, flush=True)
    for line in sys.stdin:
        name = line.strip()
        case = cases[name]
        if case.setup is not None:
            case.setup()
            timers[name] = failures.cpu_timer(case)
            object.__setattr__(case, "setup", None)  # once: the process is set up
        print(json.dumps(timers[name](args.loops) / args.loops), file=reply, flush=True)


class Child:
    """The child process measuring one tree."""

    def __init__(self, tree: Path, avoid: Path, loops: int) -> None:
        cmd = [sys.executable, str(SCRIPT), SERVE, "--tree", str(tree), "--avoid", str(avoid)]
        cmd += ["--loops", str(loops)]
        self.tree = tree
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._reply()
        self.resilience: str = hello["resilience"]
        self.cases: list[str] = hello["cases"]
        self.setup: list[str] = hello["setup"]

    def _reply(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the child measuring {self.tree} died (see above)")
        return json.loads(line)

    def seconds(self, case: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(case + "\n")
        self.proc.stdin.flush()
        return float(self._reply())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


PEERS = (
    ("reject: rs.CircuitBreaker", "reject: circuitbreaker"),
    ("count a failure: rs.CircuitBreaker", "count a failure: circuitbreaker"),
    ("fail, fail, succeed: rs.Retry", "fail, fail, succeed: tenacity"),
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="bench_failures_trees.py",
        description="The failure paths of bench_failures.py in two trees: new/old.",
    )
    parser.add_argument("--old", type=Path, required=True, help="older checkout of the repo")
    parser.add_argument("--new", type=Path, default=REPO, help="default: this repo (%(default)s)")
    parser.add_argument("--rounds", type=int, default=30, help="default: %(default)s")
    parser.add_argument("--loops", type=int, default=20_000, help="calls per timing")
    args = parser.parse_args(argv)
    old_path, new_path = args.old.resolve(), args.new.resolve()
    started = time.perf_counter()
    old = Child(old_path, new_path, args.loops)
    new = Child(new_path, old_path, args.loops)
    trees = {"old": old, "new": new}
    common = [case for case in new.cases if case in old.cases]
    plain = [case for case in common if case not in new.setup]
    best = {label: dict.fromkeys(common, float("inf")) for label in trees}
    try:
        for r in range(args.rounds):
            for i, case in enumerate(plain):
                order = ("old", "new") if (r + i) % 2 == 0 else ("new", "old")
                for label in order:
                    best[label][case] = min(best[label][case], trees[label].seconds(case))
        for case in (case for case in common if case in new.setup):  # last: they change the process
            for r in range(args.rounds):
                for label in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    best[label][case] = min(best[label][case], trees[label].seconds(case))
    finally:
        old.close()
        new.close()
    width = max(len(case) for case in common)
    print(
        f"Failure paths, old vs new: best of {args.rounds} interleaved rounds, "
        f"{args.loops} calls each, CPU time ({time.perf_counter() - started:.0f} s)"
    )
    print(f"old: {old.resilience}\nnew: {new.resilience}\n")
    print(f"{'case':<{width}}  {'old (ns)':>8}  {'new (ns)':>8}  {'new/old':>7}")
    for case in common:
        o, n = best["old"][case], best["new"][case]
        print(f"{case:<{width}}  {o * 1e9:8.0f}  {n * 1e9:8.0f}  {n / o:7.2f}")
    print(f"\n{'ours / the peer, in each tree':<{width}}  {'old':>8}  {'new':>8}")
    for ours, peer in PEERS:
        if ours in common and peer in common:
            o, n = (best[label][ours] / best[label][peer] for label in ("old", "new"))
            kind, name = peer.split(": ")
            print(f"{f'{kind}: ours / {name}':<{width}}  {o:8.2f}  {n:8.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE]:
        serve(sys.argv[2:])
    else:
        main(sys.argv[1:])
