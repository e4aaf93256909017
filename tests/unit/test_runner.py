"""The batch runner: bad arguments, a failing notebook, the report, `list`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    render_index,
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
    entry = index[0]
    assert entry["status"] == "failed" and "deliberate failure" in entry["error"]
    assert entry["records"] == {"before_failure": 1}
    html = (tmp_path / "index.html").read_text()
    assert "deliberate failure" in html and "1 failed" in html
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
    assert len(json.loads((tmp_path / "index.json").read_text())) == 1


def test_render_index_shows_claims():
    html = render_index([{"notebook": "n.ipynb", "title": "T", "theme": "x", "scale": "smoke", "seconds": 1.0,
                          "status": "ok", "error": "", "html": "x/n.html", "output": "x/n.ipynb", "records": {},
                          "claims": [{"statement": "a <b>", "held": False, "numbers": {"v": 0.5}}]}])
    assert "not reproduced" in html and "a &lt;b&gt;" in html and "v=0.5" in html


def test_list_shows_parameters():
    proc = cli("list", str(START))
    assert proc.returncode == 0
    assert "00_start_here.ipynb" in proc.stdout and "SCALE='standard'" in proc.stdout.replace('"', "'")


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
