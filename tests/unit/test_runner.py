"""The batch runner: bad arguments, a failing notebook, the report, `list`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbsupport.report import build_index, render_index, scoreboard
from nbsupport.runner import (
    ROOT,
    UsageError,
    check_out,
    check_params,
    failed_result,
    list_notebooks,
    main,
    parse_params,
    read_problem,
    run,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "sweep_tiny.ipynb"
START = ROOT / "notebooks" / "00_start_here.ipynb"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "nbsupport", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("args, message", [
    (["run", "does/not/exist.ipynb"], "no notebook at 'does/not/exist.ipynb'"),
    (["run", str(START), "-p", "SCALE=huge"], "unknown scale 'huge'"),
    (["run", str(START), "--scale", "tiny"], "unknown scale 'tiny'"),
    (["run", str(START), "-p", "NOPE=1"], "has no parameter 'NOPE'"),
    (["run", str(START), "-p", "SEED=abc"], "expected int"),
    (["run", str(START), "-p", "SEED"], "write NAME=VALUE"),
])
def test_bad_arguments_fail_with_one_clear_line(args, message, tmp_path):
    before = START.read_bytes()
    proc = cli(*args, "--out", str(tmp_path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert START.read_bytes() == before
    assert not any(tmp_path.iterdir()), "nothing is written before arguments are valid"


def test_parse_params_types():
    assert parse_params(["A=1", "B=0.5", "C=hello", "D=[1, 2]", "E=True"]) == {
        "A": 1, "B": 0.5, "C": "hello", "D": [1, 2], "E": True}
    with pytest.raises(UsageError):
        parse_params(["1A=3"])


def test_failing_notebook_is_reported_and_source_untouched(tmp_path):
    src = FIXTURES / "failing.ipynb"
    before = src.read_bytes()
    code = main(["run", str(src), "--scale", "smoke", "--out", str(tmp_path)])
    assert code == 1
    assert src.read_bytes() == before
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["schema"] == "warm-start-report/2" and index["scoreboard"]["all"]["failed"] == 1
    entry = index["notebooks"][0]
    assert entry["status"] == "failed" and "deliberate failure" in entry["error"]
    assert entry["records"] == {"before_failure": 1}
    html = (tmp_path / "index.html").read_text()
    assert "deliberate failure" in html
    executed = tmp_path / entry["output"]
    assert executed.exists() and (tmp_path / entry["html"]).exists()
    assert not list(tmp_path.rglob("*.tmp")), "no half-written files"


def test_run_keeps_going_and_merges_report(tmp_path):
    results = run([str(FIXTURES / "failing.ipynb")], scale="smoke", params={"FAIL": False}, out=tmp_path,
                  progress=False)
    assert results[0].status == "ok"
    # a second run of another notebook keeps the first entry in the report
    (tmp_path / "index.json").write_text(json.dumps(json.loads((tmp_path / "index.json").read_text())))
    run([str(FIXTURES / "failing.ipynb")], scale="smoke", out=tmp_path, progress=False)
    assert len(json.loads((tmp_path / "index.json").read_text())["notebooks"]) == 1


CLAIM = {"name": "c", "statement": "a <b>", "paper": "P 2020, §2", "verdict": "contradicted", "reason": "",
         "expect": ">", "margin": 0.0, "n": 3, "unit": "seed", "mean": -0.5, "lo": -0.7, "hi": "-0.3"}


def _entry(theme, claims, checks, status="ok"):
    return {"notebook": f"{theme}/n.ipynb", "title": "T", "theme": theme, "scale": "smoke", "seconds": 1.0,
            "status": status, "error": "", "html": f"{theme}/n.html", "output": f"{theme}/n.ipynb",
            "records": {}, "claims": claims, "checks": checks}


def test_scoreboard_counts_verdicts_and_checks_per_theme():
    entries = [_entry("a", [CLAIM, {**CLAIM, "verdict": "reproduced"}], [{"name": "k", "ok": False}],
                      "check failed"),
               _entry("b", [{**CLAIM, "verdict": "not judged"}], [{"name": "k", "ok": True}], "failed")]
    board = scoreboard(entries)
    assert board["a"]["contradicted"] == 1 and board["a"]["reproduced"] == 1 and board["a"]["checks failed"] == 1
    assert board["b"]["not judged"] == 1 and board["b"]["failed"] == 1 and board["b"]["checks passed"] == 1
    assert board["all"]["notebooks"] == 2 and list(board)[-1] == "all"


def test_render_index_shows_scoreboard_and_claim_rows():
    page = render_index(build_index([_entry("x", [CLAIM], [{"name": "k", "ok": True, "statement": "id",
                                                            "numbers": {}}])]))
    assert "contradicted" in page and "a &lt;b&gt;" in page and "P 2020, §2" in page
    assert "-0.5 [-0.7, -0.3]" in page and "3 seeds" in page and 'href="x/n.html"' in page
    assert "checks passed" in page


def test_list_shows_parameters():
    proc = cli("list", str(START))
    assert proc.returncode == 0
    assert "00_start_here.ipynb" in proc.stdout and "SCALE='standard'" in proc.stdout.replace('"', "'")


def test_failed_check_marks_the_notebook_and_fails_the_run(tmp_path):
    code = main(["run", str(FIXTURES / "check_fails.ipynb"), "--scale", "smoke", "--out", str(tmp_path)])
    assert code == 1
    entry = json.loads((tmp_path / "index.json").read_text())["notebooks"][0]
    assert entry["status"] == "check failed" and "two_is_three" in entry["error"]
    assert [c["verdict"] for c in entry["claims"]] == ["reproduced"]
    assert "check failed" in (tmp_path / "index.html").read_text()


def test_check_params_bools_are_not_ints_and_ints_widen_to_float():
    assert check_params(TINY, {"X": 2, "SEED": 3}) == {"X": 2.0, "SEED": 3}
    assert isinstance(check_params(TINY, {"X": 2})["X"], float)
    for bad in ({"SEED": True}, {"X": False}, {"SEED": 1.0}):
        with pytest.raises(UsageError, match="expected"):
            check_params(TINY, bad)


def test_check_out(tmp_path):
    assert check_out(tmp_path / "new" / "out") == (tmp_path / "new" / "out").resolve()
    (tmp_path / "f").write_text("x")
    for bad in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(UsageError, match="is a file"):
            check_out(bad)
    src = tmp_path / "nbs" / "a.ipynb"
    src.parent.mkdir()
    src.write_text("{}")
    with pytest.raises(UsageError, match="would overwrite the source notebook"):
        check_out(tmp_path, [src])
    assert [p.name for p in (tmp_path / "new" / "out").iterdir()] == []


def test_unreadable_notebook_is_a_failed_entry_not_an_exception(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [')
    problem = read_problem(bad)
    assert problem.startswith("cannot read bad.ipynb as a notebook:") and "\n" not in problem
    assert read_problem(TINY) == ""
    entry = failed_result(bad, "smoke", problem)
    assert (entry.status, entry.error, entry.output, entry.theme) == ("failed", problem, "", tmp_path.name)
    listed = list_notebooks([str(bad), str(TINY)])
    assert listed[0]["error"] == problem and listed[1]["title"] == "Tiny sweep fixture"
