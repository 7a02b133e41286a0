"""
``import resilience`` against its peers' imports, side by side in one run (issue 19).

Each round starts one fresh interpreter per case, in turn (the cases
interleaved, so that the machine's drift hits them alike): a bare interpreter,
then one importing each library. A case's import time is its median over the
rounds minus the bare interpreter's median. Goal: ``import resilience`` at most
1.5x ``import tenacity``.

    python benchmarks/bench_import.py              # 10 rounds
    python benchmarks/bench_import.py --rounds 30  # steadier

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
CASES = {
    "python (bare)": "pass",
    "resilience": "import resilience",
    "tenacity": "import tenacity",
    "pybreaker": "import pybreaker",
    "circuitbreaker": "import circuitbreaker",
    "stamina": "import stamina",
}


def once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, check=True)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 10
    available = {}
    for name, code in CASES.items():
        try:
            once(code)  # warm the caches (.pyc), and skip what is not installed
        except subprocess.CalledProcessError:
            continue
        available[name] = code
    times: dict[str, list[float]] = {name: [] for name in available}
    for _ in range(rounds):
        for name, code in available.items():
            times[name].append(once(code))
    bare = statistics.median(times.pop("python (bare)"))
    imports = {name: statistics.median(values) - bare for name, values in times.items()}
    print(f"import time, median of {rounds} fresh interpreters (bare: {bare * 1e3:.1f} ms)\n")
    head = f"{'import':<16}  {'ms':>7}  {'x tenacity':>10}"
    print(head)
    print("-" * len(head))
    for name, seconds in imports.items():
        ratio = seconds / imports["tenacity"] if "tenacity" in imports else float("nan")
        print(f"{name:<16}  {seconds * 1e3:>7.1f}  {ratio:>10.2f}")


if __name__ == "__main__":
    main()
