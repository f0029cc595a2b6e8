"""How long `vigil demo --check` takes a newcomer from nothing to a capture opened with the head's
key, phase by phase (the issue's promise: within two minutes).

Each run starts from an empty directory, on a virtual display, exactly as CI runs it. The times
are when each line appears on the demo's output. The baseline, measured in the same process, is
starting the `vigil` command at all (`vigil --help`): the floor under every phase.

    .venv/bin/python bench/demo.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 120.0
PHASES = (
    ("collector + dashboard serving", "collector and dashboard running"),
    ("virtual display up", "started a virtual display"),
    ("agent enrolled and reporting", "agent enrolled and running"),
    ("capture opened with head key", "opened "),
    ("demo finished, all stopped", None),
)


def one_run() -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="vigil-bench-demo-"))
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "vigil", "demo", "--check", "--dir", str(base)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO)
    assert proc.stdout is not None
    seen: dict[str, float] = {}
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        for name, marker in PHASES:
            if marker and name not in seen and line.startswith(marker):
                seen[name] = time.monotonic() - start
    if proc.wait() != 0:
        raise SystemExit("".join(output) + f"vigil demo --check failed; its files are in {base}")
    seen[PHASES[-1][0]] = time.monotonic() - start
    shutil.rmtree(base)
    return seen


def baseline(n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "vigil", "--help"], check=True,
                       capture_output=True, cwd=REPO)
        times.append(time.monotonic() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base_s = baseline()
    runs = [one_run() for _ in range(args.runs)]
    print(f"{'phase (seconds from start)':<32}{'median':>9}{'max':>9}{'x baseline':>12}"
          f"{'of budget':>11}")
    print(f"{'baseline: vigil --help':<32}{base_s:>9.2f}{'':>9}{1.0:>12.1f}{'':>11}")
    for name, _ in PHASES:
        values = [r[name] for r in runs if name in r]
        med = statistics.median(values)
        print(f"{name:<32}{med:>9.1f}{max(values):>9.1f}{med / base_s:>12.0f}"
              f"{med / BUDGET_S:>10.0%}")
    first = statistics.median(r["capture opened with head key"] for r in runs)
    total = statistics.median(r[PHASES[-1][0]] for r in runs)
    print(f"runs={args.runs} capture_s_median={first:.1f} total_s_median={total:.1f} "
          f"budget_s={BUDGET_S:.0f}")


if __name__ == "__main__":
    main()
