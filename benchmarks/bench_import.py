"""
``import resilience`` against its peers' imports, side by side in one run (issue 19).

Each round starts one fresh interpreter per case, in turn (the cases
interleaved, so that the machine's drift hits them alike): a bare interpreter,
then one importing each library. A case's import time is its median over the
rounds minus the bare interpreter's median. Goal: ``import resilience`` at most
1.5x ``import tenacity``.

    python benchmarks/bench_import.py                      # 10 rounds
    python benchmarks/bench_import.py --rounds 30          # steadier
    python benchmarks/bench_import.py --cpu                # the same, in CPU time
    python benchmarks/bench_import.py --old /tmp/old-tree  # before and after, one run

``--cpu`` times each interpreter by the CPU time it used (user and system,
from `os.wait4`) instead of the wall clock: on a loaded machine, the time a
process waits for a core counts in the wall clock and not there. ``--old DIR``
adds the library of another source tree (``git worktree add DIR <commit>``) as
the case ``resilience (old)``. The case ``resilience + Retry`` also decorates a
function with ``rs.Retry`` (what a program that uses the library pays before
its first call); ``tenacity + retry`` does the same with ``tenacity.retry``.

The library imported is this repository's (its root comes first on the path).
Bytecode caching is on in the interpreters started (``PYTHONDONTWRITEBYTECODE``
is dropped from their environment), as it is for installed packages: the
warm-up run writes this repository's ``.pyc`` files, so no case compiles.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
RETRY = "import resilience as rs\n@rs.Retry(on=rs.transient)\ndef f(): pass"
TENACITY_RETRY = "import tenacity\n@tenacity.retry\ndef f(): pass"
CASES = {
    "python (bare)": "pass",
    "resilience": "import resilience",
    "tenacity": "import tenacity",
    "pybreaker": "import pybreaker",
    "circuitbreaker": "import circuitbreaker",
    "stamina": "import stamina",
    "resilience + Retry": RETRY,
    "tenacity + retry": TENACITY_RETRY,
}


def once(code: str, cwd: Path, *, cpu: bool = False) -> float:
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=ENV)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args)
    return usage.ru_utime + usage.ru_stime if cpu else time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 10
    cpu = "--cpu" in sys.argv
    cases = {name: (code, ROOT) for name, code in CASES.items()}
    if "--old" in sys.argv:
        old = Path(sys.argv[sys.argv.index("--old") + 1]).resolve()
        cases["resilience (old)"] = ("import resilience", old)
        cases["resilience + Retry (old)"] = (RETRY, old)
    available = {}
    for name, (code, cwd) in cases.items():
        try:
            once(code, cwd)  # warm the caches (.pyc), and skip what is not installed
        except subprocess.CalledProcessError:
            continue
        available[name] = (code, cwd)
    times: dict[str, list[float]] = {name: [] for name in available}
    for _ in range(rounds):
        for name, (code, cwd) in available.items():
            times[name].append(once(code, cwd, cpu=cpu))
    bare = statistics.median(times.pop("python (bare)"))
    imports = {name: statistics.median(values) - bare for name, values in times.items()}
    clock = "CPU time" if cpu else "wall-clock time"
    print(f"import time ({clock}), median of {rounds} fresh interpreters")
    print(f"(bare interpreter: {bare * 1e3:.1f} ms, subtracted)\n")
    head = f"{'import':<24}  {'ms':>7}  {'x tenacity':>10}"
    print(head)
    print("-" * len(head))
    for name, seconds in imports.items():
        base = "tenacity + retry" if "+" in name else "tenacity"
        ratio = seconds / imports[base] if base in imports else float("nan")
        print(f"{name:<24}  {seconds * 1e3:>7.1f}  {ratio:>10.2f}")


if __name__ == "__main__":
    main()
