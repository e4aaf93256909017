"""Replication on fresh seeds: the notebook runs on disjoint seeds, both verdicts are written
per claim, and the report shows the replication column."""

import json
from pathlib import Path

from nbsupport.replicate import compare, replicate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_compare_pairs_claims_by_name():
    o = [{"name": "a", "statement": "s", "verdict": "reproduced", "mean": 0.5, "lo": 0.4, "hi": 0.6, "n": 3}]
    f = [{"name": "a", "statement": "s", "verdict": "inconclusive", "mean": 0.7, "lo": -1.0, "hi": 2.0, "n": 3}]
    (row,) = compare(o, f)
    assert row["same_verdict"] is False and row["inside_original_interval"] is False
    assert row["original"]["verdict"] == "reproduced" and row["fresh"]["verdict"] == "inconclusive"


def test_replicate_runs_fresh_seeds_and_the_report_shows_them(tmp_path):
    data = replicate([str(FIXTURES / "seeded.ipynb")], 1000, scale="smoke", out=tmp_path, progress=False)
    (entry,) = data["notebooks"].values()
    (row,) = entry["claims"]
    assert row["name"] == "a_beats_b" and row["original"]["n"] == row["fresh"]["n"] == 4
    assert row["original"]["mean"] != row["fresh"]["mean"]  # other seeds, other trained models
    assert (tmp_path / "replication-1000" / "fixtures" / "seeded.ipynb").exists()
    assert json.loads((tmp_path / "replication.json").read_text())["seed_base"] == 1000
    page = (tmp_path / "index.html").read_text()
    assert "fresh seeds from 1000" in page and "replication.html" in page
