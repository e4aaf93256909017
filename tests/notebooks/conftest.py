"""``run_notebook(path, **params)``: execute a notebook at smoke scale with papermill.

Returns ``(records, claims)`` read back from the executed copy; the test fails with the
notebook's error if a cell raises. Outputs go to a temporary folder; the source is only read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbsupport.record import read_claims, read_records
from nbsupport.runner import ROOT, execute

NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture
def run_notebook(tmp_path):
    def run(path: str | Path, **params):
        path = Path(path)
        if not path.is_absolute():
            path = NOTEBOOKS / path
        before = path.read_bytes()
        result = execute(path, "smoke", params, tmp_path)
        assert path.read_bytes() == before, f"{path} was modified by its run"
        assert result.status == "ok", f"{path.name} failed at smoke scale: {result.error}"
        out = tmp_path / result.output
        return read_records(out), read_claims(out)

    os.environ["NBSUPPORT_HEADLESS"] = "1"
    return run
