"""record / check_claim / read_records round trip through a real notebook file."""

import math

import nbformat
import numpy as np
import pytest
import torch

from nbsupport import check_claim, read_claims, read_records, record
from nbsupport.record import CLAIM_MIME, RECORD_MIME, _jsonable


def test_jsonable_converts_numpy_torch_and_non_finite():
    assert _jsonable(np.float32(1.5)) == 1.5
    assert _jsonable(torch.tensor([1.0, 2.0])) == [1.0, 2.0]
    assert _jsonable({"a": np.int64(3), "b": (1, 2)}) == {"a": 3, "b": [1, 2]}
    assert _jsonable(math.nan) == "nan" and _jsonable(-math.inf) == "-inf"
    with pytest.raises(TypeError, match="not JSON-serializable"):
        _jsonable(object())


def test_record_returns_value_and_validates_name():
    assert record("x_test", 3) == 3
    with pytest.raises(ValueError):
        record("", 1)


def test_check_claim_never_raises_and_stores_bool():
    assert check_claim("c_false", np.bool_(False), "a claim that fails", a=1.0) is False
    assert check_claim("c_true", 2 > 1, "a claim that holds") is True


def test_read_back_from_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={RECORD_MIME: {"name": "acc", "value": 0.9}, "text/plain": ""}),
        nbformat.v4.new_output("display_data", data={RECORD_MIME: {"name": "acc", "value": 0.95}, "text/plain": ""}),
        nbformat.v4.new_output("display_data", data={CLAIM_MIME: {"name": "c", "statement": "s", "held": True,
                                                                   "numbers": {"acc": 0.95}}, "text/plain": ""}),
    ]
    nb.cells = [cell]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert read_records(path) == {"acc": 0.95}  # last value wins
    assert read_claims(path)[0]["held"] is True
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "missing.ipynb")
