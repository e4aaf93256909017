"""Benchmark harness: every case runs in a fresh subprocess, timed and measured for memory.

A benchmark script ``bench_<name>.py`` defines ``CASES``: a list of dicts with ``case``
(a label shared by the paths compared), ``impl`` (the path or peer library), ``make`` (the
name of a module-level function ``make(**params)`` returning a zero-argument callable, with
inputs already built) and ``params``; ``run_cases`` measures them all and writes
``results/<name>.json`` and ``results/<name>.md``.

Time: median of ``repeat`` calls after one warm-up call. Memory: on CPU, the rise of the
process's peak resident set size (``ru_maxrss``) over the resident size just before the
first call; on CUDA, ``torch.cuda.max_memory_allocated`` over the memory allocated before.
Inputs are built before the baseline is taken, so they are not counted.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def devices() -> list[str]:
    """Devices to benchmark: ``$BENCH_DEVICES`` (comma-separated) or CPU plus CUDA when present."""
    import torch

    wanted = os.environ.get("BENCH_DEVICES")
    found = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [d for d in wanted.split(",") if d in found] if wanted else found


def kernel_paths(device: str, reference: bool = True) -> list[str]:
    """The kernel paths to time on ``device``: ``reference`` (unless asked not to), ``fast``,
    and ``triton`` on CUDA (see nbsupport.kernels)."""
    return ["reference"] * reference + ["fast"] + ["triton"] * (device == "cuda")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _measure(script: str, make: str, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Runs inside the child process."""
    import torch

    spec = importlib.util.spec_from_file_location("bench_module", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, make)(**params)
    cuda = torch.cuda.is_available() and params.get("device", "cpu") == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fn()  # warm-up (compilation, allocator)
    sync()
    gc.collect()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
    times = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    return {"seconds": statistics.median(times), "seconds_min": min(times), "peak_mb": max(peak, 0.0),
            "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"}


def run_cases(name: str, script: str, cases: list[dict[str, Any]], repeat: int = 3,
              timeout: float = 900) -> list[dict[str, Any]]:
    """Measure every case in its own subprocess; write results/<name>.json and .md."""
    rows = []
    for c in cases:
        payload = json.dumps({"script": script, "make": c["make"], "params": c.get("params", {}),
                              "repeat": c.get("repeat", repeat)})
        proc = subprocess.run([sys.executable, __file__, payload], capture_output=True, text=True, timeout=timeout)
        row = {"case": c["case"], "impl": c["impl"], "params": c.get("params", {})}
        if proc.returncode == 0:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            row["error"] = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        rows.append(row)
        print(_row_md(row, rows), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / f"{name}.md").write_text(table(name, rows))
    return rows


def _baseline(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first measured row of the same case (the reference path, by convention)."""
    return next((r for r in rows if r["case"] == row["case"] and "seconds" in r), None)


def _row_md(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    if "error" in row:
        return f"| {row['case']} | {row['impl']} | error: {row['error']} | | | |"
    base = _baseline(row, rows)
    speed = base["seconds"] / row["seconds"] if base else float("nan")
    mem = base["peak_mb"] / row["peak_mb"] if base and row["peak_mb"] > 0 else float("nan")
    return (f"| {row['case']} | {row['impl']} | {row['seconds'] * 1e3:.1f} | {row['peak_mb']:.0f} | "
            f"{speed:.2f}x | {mem:.2f}x |")


def table(name: str, rows: list[dict[str, Any]]) -> str:
    """Markdown table; speed-up and memory ratio are against the first path of each case."""
    head = (f"### {name}\n\n| case | path | time (ms) | peak memory (MB) | speed-up vs first | memory ratio vs first |\n"
            "|---|---|---|---|---|---|\n")
    return head + "\n".join(_row_md(r, rows) for r in rows) + "\n"


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(json.dumps(_measure(args["script"], args["make"], args["params"], args["repeat"])))
