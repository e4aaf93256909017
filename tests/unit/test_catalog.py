"""nbsupport.catalog: the generated notebook table, learning path and timings."""

import json

import pytest

from nbsupport import catalog
from nbsupport.catalog import fmt_seconds, learning_path, merge_index, render, short_question
from nbsupport.report import build_index


def test_fmt_seconds():
    assert [fmt_seconds(s) for s in (None, 4.2, 89, 150, 3600, 7200)] == [
        "–", "4 s", "89 s", "2.5 min", "60 min", "2 h"]


def test_short_question_keeps_the_question_and_its_referent():
    assert short_question("Some context. Does A beat B? Why?") == "Does A beat B? Why?"
    assert short_question("Model X ranks items. Does it beat Y?") == "Model X ranks items. Does it beat Y?"
    assert short_question("(a) does A beat B?") == "Does A beat B?"
    assert short_question("No question here.") == "No question here."


def test_merge_index_keeps_other_scales_and_skips_failures(tmp_path):
    index = tmp_path / "index.json"
    entries = [
        {"notebook": "notebooks/a.ipynb", "scale": "smoke", "seconds": 3.0, "status": "ok", "theme": "t"},
        {"notebook": "notebooks/b.ipynb", "scale": "smoke", "seconds": 9.0, "status": "failed", "theme": "t"},
        {"notebook": "notebooks/c.ipynb", "scale": "full", "seconds": 9.0, "status": "ok", "theme": "t",
         "records": {"step_cap": {"max_steps": 2}}}]  # a capped run is not the scale's time
    index.write_text(json.dumps(build_index(entries)))  # what the runner writes
    old = {"standard": {"measured": "2026-01-01", "note": "n", "seconds": {"notebooks/a.ipynb": 60.0}},
           "smoke": {"measured": "2026-01-01", "note": "n", "seconds": {"notebooks/b.ipynb": 5.0}}}
    new = merge_index(old, index, "here")
    assert new["standard"] == old["standard"] and "full" not in new
    assert new["smoke"]["seconds"] == {"notebooks/a.ipynb": 3.0, "notebooks/b.ipynb": 5.0}
    assert new["smoke"]["note"] == "here" and old["smoke"]["seconds"] == {"notebooks/b.ipynb": 5.0}
    index.write_text(json.dumps(entries))  # an index.json from before the schema: a bare list
    assert merge_index(old, index, "here") == new
    index.write_text(json.dumps({"schema": 1, "notebooks": []}))
    with pytest.raises(ValueError, match="pass outputs/index.json of a run"):
        merge_index(old, index, "here")


def test_learning_path_order_and_prerequisites():
    nbs = [{"notebook": f"notebooks/{t}/{n}.ipynb", "theme": t, "title": f"{t}{n}", "question": "?"}
           for t, n in [("recsys", "01"), ("warmup", "02"), ("warmup", "01"), ("new", "01")]]
    nbs.append({"notebook": "notebooks/00_start_here.ipynb", "theme": "start", "title": "S", "question": "?"})
    path = learning_path(nbs)
    assert [e["title"] for e in path] == ["S", "warmup01", "warmup02", "recsys01", "new01"]
    assert [e["after"]["title"] if e["after"] else None for e in path] == [
        None, "S", "warmup01", "S", "S"]
    table = render(nbs, {"smoke": {"measured": "d", "note": "n", "seconds": {"notebooks/warmup/01.ipynb": 2}}}, "")
    assert "| 1 | warmup | [warmup01](warmup/01.ipynb) | ? | S | 2 s | – | – |" in table


def test_readme_and_start_page_tables_are_current():
    """If this fails: run `python -m nbsupport.catalog` (after adding a notebook or editing a
    question), or `python -m nbsupport.catalog --index outputs/index.json` after a run."""
    assert catalog.main(["--check"]) == 0
