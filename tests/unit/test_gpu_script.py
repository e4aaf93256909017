"""benchmarks/gpu_notebooks.sh and gpu.sh: valid bash, bad input refused before installing anything, the one
command's steps and limits (dry run), and every step's failure or timeout reported while the rest still run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_notebooks.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(**env):
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_unknown_theme_is_one_clear_error():
    out = run(THEME="nope")
    assert out.returncode == 2 and "THEME=nope: choose warmup" in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gets")
def test_without_cuda_it_says_so():
    out = run(THEME="ssm")
    assert out.returncode == 2 and "no CUDA device" in out.stderr


# ---------------------------------------------------------------- gpu.sh: one command, every step reported

GPU = SCRIPT.parent / "gpu.sh"
STEPS = SCRIPT.parent / "gpu_steps.sh"


def steps_table(out: Path) -> list[list[str]]:
    return [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]


def test_one_command_dry_run_lists_every_step_within_ten_minutes(tmp_path):
    assert subprocess.run(["bash", "-n", str(GPU)]).returncode == 0
    out = subprocess.run(["bash", str(GPU), "--dry-run"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "gpu"), "THEME": "recsys"})
    assert out.returncode == 0, out.stderr
    rows = steps_table(tmp_path / "gpu")
    names = [r[0] for r in rows]
    assert names == ["install", "versions", "kernel_tests", "bench_kernels", "bench_training", "milton",
                     "notebooks_smoke", "notebooks_full_recsys", "notebook_times", "summary"]
    assert all(r[1] == "dry run" for r in rows)
    # the limits fit the default budget (570 s) less the 15 s reserve kept for the last two steps
    assert sum(int(r[3]) for r in rows[:-2]) <= 570 - 15 and sum(int(r[3]) for r in rows) <= 600
    for what in ("gpu_report.py versions", "kernel_tests.xml", "run.py cross_entropy ssm calibration recsys merging",
                 "BENCH_TRAINING_FAMILIES", "--scale smoke", "notebooks/recsys --scale full", "summary"):
        assert what in out.stdout


def _steps(script: str, tmp_path: Path, total: int = 60) -> subprocess.CompletedProcess:
    body = f"source {STEPS}\nsteps_init {tmp_path} {total}\n{script}\n"
    return subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k not in ("STEPS_DEADLINE", "DRY_RUN")})


def test_a_failing_or_slow_step_is_reported_and_the_rest_still_run(tmp_path):
    out = _steps("step first 10 'echo hello'\nstep broken 10 'echo oops >&2; exit 3'\nstep slow 1 'sleep 30'\n"
                 "STEPS_RESERVE=0 step last 10 'echo done > last.txt'\nsteps_failed", tmp_path)
    assert out.returncode == 1  # a step did not end ok
    rows = {r[0]: r for r in steps_table(tmp_path)}
    assert rows["first"][1] == "ok" and (tmp_path / rows["first"][4]).read_text() == "hello\n"
    assert rows["broken"][1] == "failed (exit 3)" and "oops" in (tmp_path / "logs" / "broken.log").read_text()
    assert "oops" in out.stdout  # the tail of a failed step's log is shown
    assert rows["slow"][1].startswith("skipped") or rows["slow"][1] == "timed out after 1s"
    assert rows["last"][1] == "ok"


def test_the_deadline_caps_every_step(tmp_path):
    # 20 s in all less the 15 s reserve: the first step gets at most 5 s, not its 100, and the next none
    out = _steps("step first 100 'sleep 30'\nstep second 100 'true'\nsteps_failed", tmp_path, total=20)
    rows = {r[0]: r for r in steps_table(tmp_path)}
    assert out.returncode == 1
    assert rows["first"][1] == "timed out after 5s" and int(rows["first"][2]) < 10
    assert rows["second"][1] == "skipped: no time left"


def test_all_ok_is_success(tmp_path):
    assert _steps("step a 10 true\nstep b 10 true\nsteps_failed", tmp_path).returncode == 0


def test_report_lists_each_notebooks_seconds_and_the_steps(tmp_path):
    import json

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "index.json").write_text(json.dumps({"notebooks": [
        {"scale": "full", "seconds": 12.34, "status": "ok", "notebook": "recsys/01_warm_vs_cold_start",
         "claims": [{"verdict": "reproduced"}, {"verdict": "reproduced"}, {"verdict": "inconclusive"}]}]}))
    (tmp_path / "steps.tsv").write_text("step\tstatus\tseconds\tlimit_s\tlog\nversions\tok\t3\t15\tlogs/versions.log\n")
    report = SCRIPT.parent / "gpu_report.py"
    for what in ("versions", "notebooks", "summary"):
        assert subprocess.run([sys.executable, str(report), what, str(tmp_path)], capture_output=True,
                              timeout=60).returncode == 0
    rows = (tmp_path / "notebooks.tsv").read_text().splitlines()
    assert rows[1] == "full\t12.3\tok\trecsys/01_warm_vs_cold_start\t2 reproduced, 1 inconclusive"
    assert json.loads((tmp_path / "versions.json").read_text())["torch"] == torch.__version__
    summary = (tmp_path / "summary.md").read_text()
    assert "| versions | ok | 3 | 15 |" in summary and "recsys/01_warm_vs_cold_start" in summary
