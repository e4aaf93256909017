"""benchmarks/notebook_under_load.py: its table's ratios, and bad input refused before any run."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "notebook_under_load.py"
sys.path.append(str(BENCHMARKS))  # the script imports the benchmarks' harness, as when run from there
spec = importlib.util.spec_from_file_location("notebook_under_load", SCRIPT)
load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)


def row(workers, busy, wall, cpu, verdict="reproduced"):
    return {"notebook": "nb.ipynb", "scale": "standard", "workers": workers, "busy": busy, "wall_s": wall,
            "cpu_s": cpu, "verdicts": {"a": verdict}}


def test_table_divides_each_busy_run_by_the_quiet_run_with_its_workers():
    md = load.table([row(2, False, 80.0, 142.0), row(2, True, 160.0, 156.2),
                     row(1, False, 148.0, 148.0), row(1, True, 146.0, 147.0, "inconclusive")])
    lines = md.splitlines()
    assert "| nb.ipynb | standard | 2 | busy | 160.0 | 156.2 | 2.00 | 1.10 | yes |" in lines
    assert "| nb.ipynb | standard | 1 | busy | 146.0 | 147.0 | 0.99 | 0.99 | no |" in lines
    assert "| nb.ipynb | standard | 2 | quiet | 80.0 | 142.0 |  |  |  |" in lines


@pytest.mark.parametrize("argv, message", [
    (["notebooks/no_such.ipynb"], "no such notebook"),
    (["notebooks/00_start_here.ipynb", "--workers", "0"], "--workers must be positive"),
])
def test_bad_input_is_refused_before_any_run(argv, message, capsys):
    with pytest.raises(SystemExit):
        load.main(argv)
    assert message in capsys.readouterr().err
