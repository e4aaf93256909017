"""One notebook through the runner, quiet and beside a busy process, at several seed-worker counts.

    python benchmarks/notebook_under_load.py NOTEBOOK [--scale standard] [--workers 2 1]

For each worker count (``NBSUPPORT_WORKERS``) the notebook runs once on a quiet machine and
once beside a process burning one core; that process is started in a session of its own, as
a program started from another terminal would be. Each run's wall time and CPU time (user +
system of the runner, its kernel and the seed workers) and its claims' verdicts are written
to ``results/notebook_under_load.json`` and a table to ``results/notebook_under_load.md``.
Not part of ``make bench``: one notebook at standard takes minutes per run.

What to expect on Linux: the scheduler (autogroup) shares the CPU equally between sessions,
and Jupyter starts each kernel in a session of its own, so a busy process in another session
leaves the notebook half of a 2-core machine, whatever its number of workers. A notebook that
used both cores quiet then takes about twice as long; CPU time that stays put says nothing
collapsed (torch threads spinning against the busy process would multiply it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import RESULTS

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(notebook: str, scale: str, workers: int, busy: bool) -> dict[str, Any]:
    """Run ``notebook`` through ``python -m nbsupport run``; wall and CPU seconds, verdicts."""
    burner = None
    if busy:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        with tempfile.TemporaryDirectory() as out:
            env = {**os.environ, "NBSUPPORT_WORKERS": str(workers), "NBSUPPORT_HEADLESS": "1"}
            cpu0, t0 = _children_cpu(), time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "nbsupport", "run", notebook, "--scale", scale,
                                   "--out", out], cwd=ROOT, env=env, capture_output=True, text=True)
            wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
            if proc.returncode != 0:
                raise RuntimeError(f"{notebook} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            entry = json.loads((Path(out) / "index.json").read_text())["notebooks"][0]
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    return {"notebook": notebook, "scale": scale, "workers": workers, "busy": busy, "wall_s": wall, "cpu_s": cpu,
            "verdicts": {c["name"]: c["verdict"] for c in entry.get("claims", [])}}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: each run, and each busy run's wall and CPU over the quiet run's at its worker count."""
    quiet = {r["workers"]: r for r in rows if not r["busy"]}
    lines = ["### notebook under load\n", "| notebook | scale | workers | load | wall (s) | CPU (s) | "
             "wall busy / quiet | CPU busy / quiet | verdicts as quiet |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        q = quiet.get(r["workers"])
        ratio = (f"{r['wall_s'] / q['wall_s']:.2f} | {r['cpu_s'] / q['cpu_s']:.2f} | "
                 f"{'yes' if r['verdicts'] == q['verdicts'] else 'no'}") if r["busy"] and q else " |  | "
        lines.append(f"| {r['notebook']} | {r['scale']} | {r['workers']} | {'busy' if r['busy'] else 'quiet'} | "
                     f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--scale", default="standard", choices=("smoke", "standard", "full"))
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args(argv)
    if not (ROOT / args.notebook).is_file():
        parser.error(f"{args.notebook}: no such notebook under {ROOT}; pass a path like notebooks/warmup/05_...ipynb")
    if any(w < 1 for w in args.workers):
        parser.error(f"--workers must be positive ints, got {args.workers}")
    rows = []
    for workers in args.workers:
        for busy in (False, True):
            rows.append(run_once(args.notebook, args.scale, workers, busy))
            print(json.dumps(rows[-1]), flush=True)
    md = table(rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "notebook_under_load.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / "notebook_under_load.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
