"""What benchmarks/gpu.sh leaves for a reader under its output folder (default ``outputs/gpu``).

- ``python gpu_report.py versions DIR``: ``DIR/versions.json`` (Python, torch, CUDA, cuDNN,
  triton, the device's name, capability and memory, the driver, the commit, the date);
- ``python gpu_report.py notebooks DIR``: ``DIR/notebooks.tsv``, one row per executed notebook
  from the runner's ``DIR/smoke/index.json`` and ``DIR/full/index.json`` (scale, seconds,
  status, verdicts), also printed;
- ``python gpu_report.py summary DIR``: ``DIR/summary.md``: the steps (status, seconds, limit),
  the versions, the notebooks and the benchmark tables found in ``DIR/bench``.
"""

from __future__ import annotations

import collections
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(out: Path) -> dict:
    info: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (3.10)
                  "python": platform.python_version(), "platform": platform.platform(),
                  "commit": _run("git", "rev-parse", "HEAD"), "dirty": bool(_run("git", "status", "--porcelain"))}
    try:
        import torch

        info.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                    cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(device=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                        device_count=torch.cuda.device_count())
    except Exception as err:  # noqa: BLE001 - reported, not raised: the reader needs the rest
        info["torch_error"] = repr(err)
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception as err:  # noqa: BLE001
        info["triton"] = f"not importable: {err!r}"
    info["nvidia_smi"] = _run("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
    (out / "versions.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))
    return info


def notebooks(out: Path) -> list[str]:
    rows = ["scale\tseconds\tstatus\tnotebook\tverdicts"]
    for part in ("smoke", "full"):
        index = out / part / "index.json"
        if not index.exists():
            continue
        for nb in json.loads(index.read_text()).get("notebooks", []):
            verdicts = collections.Counter(c.get("verdict") for c in nb.get("claims", []))
            rows.append(f"{nb.get('scale', part)}\t{float(nb.get('seconds') or 0):.1f}\t{nb.get('status')}\t"
                        f"{nb.get('notebook')}\t" + ", ".join(f"{n} {v}" for v, n in verdicts.items()))
    (out / "notebooks.tsv").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return rows


def _table(tsv: Path) -> str:
    if not tsv.exists():
        return f"({tsv.name} not written)\n"
    lines = [line.split("\t") for line in tsv.read_text().splitlines() if line]
    head, body = lines[0], lines[1:]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in body]) + "\n"


def summary(out: Path) -> str:
    parts = ["# GPU run\n", "## Steps\n", _table(out / "steps.tsv")]
    v = out / "versions.json"
    parts += ["## Versions and device\n", "```json\n" + (v.read_text() if v.exists() else "{}") + "\n```\n"]
    parts += ["## Notebooks (seconds each; reports in smoke/ and full/)\n", _table(out / "notebooks.tsv")]
    bench = out / "bench"
    tables = sorted(p for p in bench.glob("*.md") if p.name != "README.md") if bench.exists() else []
    parts += ["## Benchmarks (JSON beside each table in bench/)\n"] + [p.read_text() for p in tables]
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text


if __name__ == "__main__":
    what, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    {"versions": versions, "notebooks": notebooks, "summary": summary}[what](folder)
