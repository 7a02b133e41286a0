"""
The same success-path cases in two source trees of the library, side by side.

Made to check a refactor: "the success path of CircuitBreaker, Retry, Timeout
and compose(Retry, CircuitBreaker, Timeout) stays within 10 % of before". Every
case is measured in the old tree and in the new one, interleaved, and the table
gives time per call in each and the ratio new/old.

    python benchmarks/bench_engine.py --old /tmp/old-tree            # full run (about 3 min)
    python benchmarks/bench_engine.py --old /tmp/old-tree --fast     # quicker, less precise
    python benchmarks/bench_engine.py --old /tmp/old-tree --quick    # no pyperf: timeit, seconds
    python benchmarks/bench_engine.py --old /tmp/old-tree --extra mypkg.gates:custom_gate

*--old* is a directory holding an older checkout of this repository, made with
``git worktree add /tmp/old-tree <commit>`` or
``git archive <commit> | tar -x -C /tmp/old-tree``; *--new* defaults to the
repository this script lives in. Only the ``resilience`` package is taken from
each tree: the timing loop (``benchmarks/_harness.py``) is this script's, the
same for both.

Two trees cannot be imported in one process, so every measurement runs in a
child process whose ``sys.path`` starts with its tree, with the other tree, this
repository and this script's folder taken off (an editable install puts this
repository on the path). Each child checks where ``resilience`` was imported
from, and the table's header says it.

- Full and ``--fast`` runs: one pyperf invocation per case, per tree, per round
  (pyperf spawns its own workers; they get the tree on their command line and
  record where they imported ``resilience`` from in the results, which are
  checked).
- ``--quick``: one long-lived child per tree, asked for one case at a time
  (timeit, min of 5, as the harness's quick mode).

Interleaving: each round measures every case in both trees back to back,
alternating which tree goes first, so that drift of the machine (other work,
frequency, heat) hits both alike. A measurement is the median of pyperf's values
(in --quick: the best of 5 timings); a case's time is the median over the
rounds, its new/old the median of the per-round ratios, with their range beside
it. pyperf runs use the same loop count in both trees, chosen once from a rough
timing (no calibration per run). A case that raises is reported, not fatal.

``--extra MODULE:FUNCTION`` (repeatable) adds a sync case: ``FUNCTION(work)``
returns the decorated ``work`` (a FUNCTION named ``async_...`` is given the
coroutine function ``awork`` instead, and the case is async). It is imported
in each tree (MODULE is looked up with the tree first on the path, e.g.
``resilience.something`` or ``benchmarks.my_gate`` of that tree) and runs only
where the import works; it is reported against the CircuitBreaker case
measured in the same tree.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "bench_engine.py"
REPO = HERE.parent

SERVE = "_serve"  # argv[1] of a --quick child: measures cases asked on stdin
MEASURE = "_measure"  # argv[1] of a pyperf invocation (and of its workers)


def _load_harness() -> ModuleType:
    """This script's harness, by file: the same timing loop whatever tree is measured."""
    name = "_bench_engine_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "_harness.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE / '_harness.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from benchmarks import _harness as harness
else:
    harness = _load_harness()


# --- the cases (built in a child, once its tree is on the path) ---------------------

ROUGH_LOOPS = 10_000
BARE = "bare call"
BREAKER = "CircuitBreaker"
# Two adjacent gates (one frame since issue 19), and the profile's paid-call stack.
PAIR = "compose(Bulkhead, CircuitBreaker)"
PROFILE = "compose(Retry, Bulkhead, CircuitBreaker, Timeout)"
BUILTIN = (
    BARE,
    BREAKER,
    "async CircuitBreaker",
    "Retry",
    "async Retry",
    "Timeout",
    "async Timeout",
    "compose(Retry, CircuitBreaker, Timeout)",
    "Bulkhead",
    "async Bulkhead",
    PAIR,
    f"async {PAIR}",
    PROFILE,
    f"async {PROFILE}",
)

YIELD_EVERY = 100


def _yielding(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """Await *fn*, letting the loop run once every `YIELD_EVERY` calls (see bench_timeout)."""
    count = 0

    async def call() -> Any:
        nonlocal count
        count += 1
        if count == YIELD_EVERY:
            count = 0
            await asyncio.sleep(0)
        return await fn()

    return call


def build(name: str) -> harness.Case:
    """The case *name* (a BUILTIN name or an extra's MODULE:FUNCTION) in this process's tree."""
    import resilience as rs

    work, awork, case = harness.work, harness.awork, harness.Case

    def breaker() -> rs.CircuitBreaker:
        return rs.CircuitBreaker(
            on=ConnectionError, name="bench", failure_threshold=5, reset_timeout=60.0
        )

    if name == BARE:
        return case(name, work)
    if name == BREAKER:
        return case(name, breaker()(work))
    if name == "async CircuitBreaker":
        return case(name, breaker()(awork), is_async=True)
    if name == "Retry":
        return case(name, rs.Retry(on=ConnectionError, attempts=3)(work))
    if name == "async Retry":
        return case(name, rs.Retry(on=ConnectionError, attempts=3)(awork), is_async=True)
    if name == "Timeout":
        return case(name, rs.Timeout(10.0)(work))
    if name == "async Timeout":
        return case(name, _yielding(rs.Timeout(10.0)(awork)), is_async=True)
    if name == "compose(Retry, CircuitBreaker, Timeout)":
        pipeline = rs.compose(
            rs.Retry(on=ConnectionError),
            rs.CircuitBreaker(on=ConnectionError, name="b"),
            rs.Timeout(10.0),
        )
        return case(name, pipeline(work))
    if name == "Bulkhead":
        return case(name, rs.Bulkhead(max_concurrent=10)(work))
    if name == "async Bulkhead":
        return case(name, rs.Bulkhead(max_concurrent=10)(awork), is_async=True)
    if name.removeprefix("async ") in (PAIR, PROFILE):
        gates = (rs.Bulkhead(max_concurrent=10), breaker())
        if name.endswith(PROFILE):
            pipeline = rs.compose(rs.Retry(on=ConnectionError), *gates, rs.Timeout(10.0))
        else:
            pipeline = rs.compose(*gates)
        if name.startswith("async "):
            return case(name, _yielding(pipeline(awork)), is_async=True)
        return case(name, pipeline(work))
    module, sep, function = name.partition(":")
    if not sep or not module or not function:
        raise ValueError(f"unknown case {name!r} (an extra is MODULE:FUNCTION)")
    decorate: Callable[[Callable[..., Any]], Callable[[], Any]]
    decorate = getattr(importlib.import_module(module), function)
    if function.startswith("async_"):
        return case(name, _yielding(decorate(awork)), is_async=True)
    return case(name, decorate(work))


def _point_at(tree: Path, avoid: list[Path]) -> str:
    """
    Put *tree* first on ``sys.path``, take the other trees, this repository and
    this script's folder off, import ``resilience`` and return where it came from.
    """
    banned = {HERE, REPO, *avoid} - {tree}

    def keep(entry: str) -> bool:
        try:
            path = Path(entry or os.getcwd()).resolve()
        except OSError:
            return True
        return path != tree and path not in banned

    sys.path[:] = [str(tree), *(entry for entry in sys.path if keep(entry))]
    import resilience

    where = Path(resilience.__file__ or "?").resolve()
    if not where.is_relative_to(tree):
        raise SystemExit(f"resilience imported from {where}, not from {tree}")
    return str(where)


def _child_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--avoid", type=Path, action="append", default=[])


def serve() -> None:
    """
    A --quick child: print what it imported and which cases it has (one JSON
    line), then time each case named on stdin, one JSON line each.
    """
    parser = argparse.ArgumentParser(prog=f"bench_engine.py {SERVE}")
    _child_options(parser)
    parser.add_argument("--extra", action="append", default=[])
    args = parser.parse_args(sys.argv[2:])
    reply: IO[str] = sys.stdout
    sys.stdout = sys.stderr  # whatever a case prints must not mix with the replies
    where = _point_at(args.tree.resolve(), [p.resolve() for p in args.avoid])
    built: dict[str, harness.Case] = {}
    missing: dict[str, str] = {}
    rough: dict[str, float] = {}  # seconds per call, roughly: to choose pyperf's loops
    for name in [*BUILTIN, *args.extra]:
        try:
            built[name] = build(name)
            timer = harness.timer_of(built[name])
            timer(1)  # one call: it must succeed
            rough[name] = min(timer(ROUGH_LOOPS) for _ in range(3)) / ROUGH_LOOPS
        except Exception as exc:  # a case this tree lacks or fails: reported, not fatal
            missing[name] = _error(exc)
    hello = {
        "resilience": where,
        "python": sys.version.split()[0],
        "missing": missing,
        "rough": rough,
    }
    print(json.dumps(hello), file=reply, flush=True)
    for line in sys.stdin:
        name = line.strip()
        try:
            answer: dict[str, float | str] = {"seconds": harness._quick([built[name]])[name]}
        except Exception as exc:
            answer = {"error": _error(exc)}
        print(json.dumps(answer), file=reply, flush=True)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def measure() -> None:
    """A pyperf invocation over one case in one tree (its workers run this too)."""
    import pyperf

    def pass_on(cmd: list[str], args: argparse.Namespace) -> None:
        cmd.extend(["--tree", str(args.tree), "--case", args.case])
        for path in args.avoid:
            cmd.extend(["--avoid", str(path)])

    runner = pyperf.Runner(program_args=(str(SCRIPT), MEASURE), add_cmdline_args=pass_on)
    _child_options(runner.argparser)
    runner.argparser.add_argument("--case", required=True)
    args = runner.parse_args(sys.argv[2:])
    where = _point_at(args.tree.resolve(), [p.resolve() for p in args.avoid])
    case = build(args.case)
    runner.bench_time_func(case.name, harness.timer_of(case), metadata={"resilience": where})


# --- the parent ------------------------------------------------------------------


@dataclass
class Tree:
    label: str
    path: Path
    avoid: Path
    resilience: str = ""
    python: str = ""
    missing: dict[str, str] = field(default_factory=dict)
    rough: dict[str, float] = field(default_factory=dict)  # case -> seconds per call
    noisy: dict[str, int] = field(default_factory=dict)  # case -> noisy pyperf runs
    git: str = ""  # what _git() said at the start
    times: dict[str, list[float]] = field(default_factory=dict)  # case -> seconds per round

    def child_args(self) -> list[str]:
        return ["--tree", str(self.path), "--avoid", str(self.avoid)]

    def has(self, case: str) -> bool:
        return case not in self.missing


class CaseFailed(Exception):
    """A case raised while it was measured (its tree changed under the run?)."""


class QuickChild:
    """A --quick child process serving one tree."""

    def __init__(self, tree: Tree, extras: list[str]) -> None:
        cmd = [sys.executable, str(SCRIPT), SERVE, *tree.child_args()]
        for extra in extras:
            cmd.extend(["--extra", extra])
        self.tree = tree
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._reply()
        tree.resilience, tree.python = hello["resilience"], hello["python"]
        tree.missing = {**hello["missing"], **tree.missing}
        tree.rough = tree.rough or hello["rough"]

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the child measuring {self.tree.path} died (see above)")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def seconds(self, case: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(case + "\n")
        self.proc.stdin.flush()
        answer = self._reply()
        if "error" in answer:
            raise CaseFailed(answer["error"])
        return float(answer["seconds"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


# pyperf settings per mode: (processes, values per process); each process runs one
# warmup and the values, each value `loops` calls taking at least MIN_TIME.
PYPERF = {"full": (8, 3), "fast": (4, 2)}
MIN_TIME = 0.1  # seconds: pyperf's default
NOISY = 0.1  # a pyperf run whose values' std dev exceeds this share of their median


_EXCEPTION = re.compile(r"(?!Traceback\b|During\b|The\b)[A-Za-z_][\w.]*(: |$)")


class PyperfMeasure:
    """One pyperf invocation per measurement, its result read back from a JSON file."""

    def __init__(self, mode: str, tmp: Path) -> None:
        processes, values = PYPERF[mode]
        self.settings = ["--processes", str(processes), "--values", str(values)]
        self.tmp = tmp
        self.count = 0

    def seconds(self, tree: Tree, case: str, loops: int) -> float:
        import pyperf

        self.count += 1
        out = self.tmp / f"{self.count}.json"
        cmd = [sys.executable, str(SCRIPT), MEASURE, *tree.child_args(), "--case", case]
        cmd += [*self.settings, "--loops", str(loops), "--quiet", "--output", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            # the first exception line: the worker's (pyperf's own RuntimeError follows)
            raised = [line for line in done.stderr.splitlines() if _EXCEPTION.match(line)]
            raise CaseFailed(raised[0] if raised else f"pyperf: {done.stderr.strip()[-300:]}")
        bench = pyperf.Benchmark.load(str(out))
        for run in bench.get_runs():
            got = run.get_metadata().get("resilience")
            if got != tree.resilience:
                raise SystemExit(f"{case!r}: a pyperf worker imported {got}, not {tree.resilience}")
        median = float(bench.median())
        if bench.get_nvalue() > 1 and bench.stdev() > NOISY * median:
            tree.noisy[case] = tree.noisy.get(case, 0) + 1
        return median


def _git(tree: Path) -> str:
    """The commit of *tree*, if it is the top of a git checkout, and whether resilience/ differs."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != tree:
        return "not a git checkout"
    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "resilience")
    return f"commit {commit}" + (", resilience/ modified" if dirty else "")


def _median_ratio(top: list[float], bottom: list[float]) -> tuple[float, float, float]:
    ratios = [a / b for a, b in zip(top, bottom, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def report(old: Tree, new: Tree, extras: list[str], title: str, *, pyperf: bool) -> str:
    """The tables: builtin cases old vs new, then the extra cases against the breaker."""
    lines = [title, ""]
    for tree in (old, new):
        lines.append(
            f"{tree.label}: {tree.path} ({tree.git}; Python {tree.python}; "
            f"resilience from {tree.resilience})"
        )
    notes: list[str] = []

    def ns(tree: Tree, case: str) -> str:
        if not tree.has(case):
            notes.append(f"  {case}, {tree.label}: {tree.missing[case]}")
            return f"{'n/a':>8}"
        return f"{statistics.median(tree.times[case]) * 1e9:>8.0f}"

    def noisy(case: str) -> str:
        if not pyperf:
            return ""
        runs = sum(len(t.times.get(case, ())) for t in (old, new))
        return f"  {sum(t.noisy.get(case, 0) for t in (old, new))}/{runs}"

    def tail(case: str) -> str:
        """new/old, the range of the per-round ratios, the noisy runs."""
        if not (old.has(case) and new.has(case)):
            return f"  {'-':>7}  {'':>11}{noisy(case)}"
        mid, lo, hi = _median_ratio(new.times[case], old.times[case])
        return f"  {mid:>7.3f}  {lo:>5.3f}-{hi:<5.3f}{noisy(case)}"

    noisy_head = "  noisy" if pyperf else ""
    width = max(len(c) for c in BUILTIN)
    head = f"{'case':<{width}}  {'old (ns)':>8}  {'new (ns)':>8}  {'new/old':>7}  {'per round':>11}"
    lines += ["", head + noisy_head, "-" * len(head + noisy_head)]
    for case in BUILTIN:
        lines.append(f"{case:<{width}}  {ns(old, case)}  {ns(new, case)}{tail(case)}".rstrip())
    if extras:
        width = max(len(e) for e in [*extras, "extra case"])
        head = (
            f"{'extra case':<{width}}  {'old (ns)':>8}  {'x breaker':>9}"
            f"  {'new (ns)':>8}  {'x breaker':>9}  {'new/old':>7}  {'per round':>11}"
        )
        lines += ["", head + noisy_head, "-" * len(head + noisy_head)]
        for extra in extras:
            cells = []
            for t in (old, new):
                x_breaker = f"{'':>9}"
                if t.has(extra) and t.has(BREAKER):
                    x_breaker = f"{_median_ratio(t.times[extra], t.times[BREAKER])[0]:>9.3f}"
                cells.append(f"{ns(t, extra)}  {x_breaker}")
            lines.append(f"{extra:<{width}}  {cells[0]}  {cells[1]}{tail(extra)}".rstrip())
    if pyperf:
        lines += [
            "",
            f"noisy: pyperf runs (of the case's, in both trees) whose values' std dev "
            f"exceeded {NOISY:.0%} of their median",
        ]
    if notes:
        lines += ["", "not measured:", *notes]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_engine.py",
        description="Success-path cost per call of the same cases in two trees: new/old.",
    )
    parser.add_argument("--old", type=Path, required=True, help="older checkout of the repo")
    parser.add_argument("--new", type=Path, default=REPO, help="default: this repo (%(default)s)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--fast", action="store_true", help="fewer pyperf processes and values")
    speed.add_argument("--quick", action="store_true", help="no pyperf: timeit, a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="default: %(default)s")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="an extra case, FUNCTION(work) (async_FUNCTION(awork)); repeatable",
    )
    args = parser.parse_args(argv)
    for option in ("old", "new"):
        path: Path = getattr(args, option).resolve()
        if not (path / "resilience" / "__init__.py").is_file():
            parser.error(f"--{option} {path}: no resilience/__init__.py there")
        setattr(args, option, path)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for extra in args.extra:
        if extra.count(":") != 1 or extra.startswith(":") or extra.endswith(":"):
            parser.error(f"--extra {extra!r}: expected MODULE:FUNCTION")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    old = Tree("old", args.old, avoid=args.new)
    new = Tree("new", args.new, avoid=args.old)
    extras: list[str] = list(dict.fromkeys(args.extra))
    cases = [*BUILTIN, *extras]
    mode = "quick" if args.quick else "fast" if args.fast else "full"
    started = time.perf_counter()
    for tree in (old, new):
        tree.git = _git(tree.path)

    children: dict[str, QuickChild] = {}

    def stop_children() -> None:
        for child in children.values():
            child.close()
        children.clear()

    def start_children() -> None:
        stop_children()
        for tree in (old, new):
            children[tree.label] = QuickChild(tree, extras)

    with tempfile.TemporaryDirectory() as tmp:
        # The first quick children also tell which cases each tree has, for pyperf runs too.
        start_children()
        pyperf_measure = None if args.quick else PyperfMeasure(mode, Path(tmp))
        if pyperf_measure is not None:
            stop_children()

        screen = sys.stderr.isatty()

        def progress(text: str) -> None:
            """One line, rewritten, on a terminal; else once a round (a log, not a screen)."""
            if screen:
                sys.stderr.write(f"\r{text:<79.79}\r")
            elif text.endswith(f": {cases[0]} (old)"):
                sys.stderr.write(text.split(":")[0] + "\n")
            sys.stderr.flush()

        def seconds(tree: Tree, case: str) -> float:
            if pyperf_measure is None:
                return children[tree.label].seconds(case)
            return pyperf_measure.seconds(tree, case, loops[case])

        # pyperf's loops per value, the same in both trees and no calibration per run:
        # one value lasts about MIN_TIME in the faster tree
        loops: dict[str, int] = {}
        for case in cases:
            per_call = min([t.rough[case] for t in (old, new) if case in t.rough], default=1.0)
            loops[case] = max(1, math.ceil(MIN_TIME / per_call))

        for r in range(args.rounds):
            if pyperf_measure is None and r > 0:
                start_children()  # fresh processes each round (memory layout, hash seed)
            for i, case in enumerate(cases):
                order = (old, new) if (r + i) % 2 == 0 else (new, old)
                for tree in order:
                    if not tree.has(case):
                        continue
                    progress(f"round {r + 1}/{args.rounds}: {case} ({tree.label})")
                    try:
                        tree.times.setdefault(case, []).append(seconds(tree, case))
                    except CaseFailed as exc:
                        tree.missing[case] = f"failed in round {r + 1}: {exc}"
        progress("")
        stop_children()

    if args.quick:
        how = "quick: timeit, min of 5"
    else:
        processes, values = PYPERF[mode]
        how = f"pyperf{' --fast' if args.fast else ''}: {processes} processes x {values} values"
    title = (
        f"Success-path cost per call, old vs new ({how}; {args.rounds} rounds interleaved, "
        f"medians; {time.perf_counter() - started:.0f} s)"
    )
    print()
    print(report(old, new, extras, title, pyperf=pyperf_measure is not None))
    for tree in (old, new):
        if _git(tree.path) != tree.git:
            print(
                f"\nWARNING: {tree.label} changed during the run: {tree.git}, now {_git(tree.path)}"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE]:
        serve()
    elif sys.argv[1:2] == [MEASURE]:
        measure()
    else:
        main(sys.argv[1:])
