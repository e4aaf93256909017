"""record / check / claim / summary, and reading them back from a real notebook file."""

import importlib
import math

import nbformat
import numpy as np
import pytest
import torch

from nbsupport import check, claim, premise, read_checks, read_claims, read_records, record, summary
from nbsupport.record import CHECK_MIME, CLAIM_MIME, RECORD_MIME, _jsonable, claim_line

record_module = importlib.import_module("nbsupport.record")


def test_jsonable_converts_numpy_torch_and_non_finite():
    assert _jsonable(np.float32(1.5)) == 1.5
    assert _jsonable(torch.tensor([1.0, 2.0])) == [1.0, 2.0]
    assert _jsonable({"a": np.int64(3), "b": (1, 2)}) == {"a": 3, "b": [1, 2]}
    assert _jsonable(math.nan) == "nan" and _jsonable(-math.inf) == "-inf"
    with pytest.raises(TypeError, match="not JSON-serializable"):
        _jsonable(object())


def test_record_returns_nothing_to_display_and_validates_name():
    assert record("x_test", 3) is None
    assert record_module._RECORDS["x_test"] == 3
    with pytest.raises(ValueError, match="non-empty string"):
        record("", 1)


def test_check_stores_bool_and_never_raises():
    assert check("chk_false", np.bool_(False), "a failing identity", a=1.0) is None
    assert record_module._CHECKS["chk_false"]["ok"] is False
    check("chk_true", 2 > 1, "an identity that holds")
    assert record_module._CHECKS["chk_true"]["ok"] is True


def test_claim_and_check_are_keyed_by_name():
    for _ in range(3):
        claim("c_rerun", "A beats B", [0.1, 0.2, 0.15], margin=0.01)
        check("k_rerun", True, "identity")
    assert list(record_module._CLAIMS).count("c_rerun") == 1
    assert list(record_module._CHECKS).count("k_rerun") == 1
    claim("c_rerun", "A beats B", [-0.1, -0.2, -0.15], margin=0.01)
    assert record_module._CLAIMS["c_rerun"]["verdict"] == "contradicted"


def test_claim_fields_and_premise():
    claim("c_fields", "A beats B by more than 0.05", [0.3, 0.31, 0.29], margin=0.05, paper="X 2020, §3")
    c = record_module._CLAIMS["c_fields"]
    assert c["verdict"] == "reproduced" and c["n"] == 3 and c["unit"] == "seed" and c["paper"] == "X 2020, §3"
    assert c["lo"] < c["mean"] < c["hi"] and c["effect"] == [0.3, 0.31, 0.29]
    claim("c_premise", "A beats B", [0.3, 0.31, 0.29], margin=0.01,
          requires={"the model is above chance": premise(0.15, ">", 0.2)})
    c = record_module._CLAIMS["c_premise"]
    assert c["verdict"] == "not judged" and "above chance (0.15 > 0.2)" in c["reason"]
    assert "not judged" in claim_line(c) and "premise FAILED" in claim_line(c)


def test_claim_over_seeds_and_units_says_so():
    rows = np.array([[0.1, 0.2, 0.3], [0.2, 0.2, 0.2]])
    claim("c_2d", "A beats B", rows, margin=0.01, unit="user")
    c = record_module._CLAIMS["c_2d"]
    assert c["n"] == 2 and c["units_per_seed"] == 3 and "n = 2 seeds × 3 users" in claim_line(c)
    claim("c_one", "this model beats that one", np.linspace(0, 1, 40), margin=0.01, unit="example",
          about="the released checkpoint")
    assert "40 examples of the released checkpoint" in claim_line(record_module._CLAIMS["c_one"])


def test_claim_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        claim("c_nan", "s", [1.0, float("nan")], margin=0.1)
    with pytest.raises(ValueError, match="expect"):
        claim("c_exp", "s", [1.0, 2.0], expect=">=", margin=0.1)
    with pytest.raises(ValueError, match="margin"):
        claim("c_eq", "s", [1.0, 2.0], expect="≈")
    with pytest.raises(ValueError, match="unit="):
        claim("c_2d", "s", [[1.0, 2.0]], margin=0.01)
    with pytest.raises(ValueError, match="about="):
        claim("c_units", "s", [1.0, 2.0], margin=0.01, unit="example")
    with pytest.raises(ValueError, match="margin > 0"):
        claim("c_sign", "s", [1.0, 2.0])


def test_summary_displays_without_error():
    assert summary() is None


def test_read_back_from_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    first = {"name": "c", "statement": "old", "verdict": "inconclusive"}
    last = {"name": "c", "statement": "s", "verdict": "reproduced"}
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={RECORD_MIME: {"name": "acc", "value": 0.9}, "text/plain": ""}),
        nbformat.v4.new_output("display_data", data={RECORD_MIME: {"name": "acc", "value": 0.95}, "text/plain": ""}),
        nbformat.v4.new_output("display_data", data={CLAIM_MIME: first, "text/plain": ""}),
        nbformat.v4.new_output("display_data", data={CLAIM_MIME: last, "text/plain": ""}),
        nbformat.v4.new_output("display_data", data={CHECK_MIME: {"name": "k", "ok": False}, "text/plain": ""}),
    ]
    nb.cells = [cell]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert read_records(path) == {"acc": 0.95}  # last value wins
    assert read_claims(path) == [last]  # one entry per name
    assert read_checks(path) == [{"name": "k", "ok": False}]
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "missing.ipynb")
