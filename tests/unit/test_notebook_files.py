"""Every notebook: one `parameters` cell defining SCALE, outputs stripped, a title."""

from pathlib import Path

import nbformat
import pytest

from nbsupport.runner import title_of

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged `parameters`"
    assert params[0].cell_type == "code"
    assert any(line.startswith("SCALE = ") for line in params[0].source.splitlines()), "parameters cell sets SCALE"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, "outputs must be stripped before committing"
            assert cell.execution_count is None
    assert title_of(nb), "first markdown cell has a # title"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_notebook_names_are_numbered():
    for path in NOTEBOOKS:
        assert path.name[:2].isdigit() and path.name[2] == "_", path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_findings_end_in_a_reproducible_summary(path):
    """The findings cell (the one calling ``summary()``) is tagged ``nbval-check-output``, so
    `make test` re-executes the notebook and compares that cell's records, checks and claims;
    no notebook reads the record module's private state."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    summaries = [c for c in code if "summary()" in c.source]
    assert len(summaries) == 1, "exactly one findings cell calls summary()"
    assert "nbval-check-output" in summaries[0].metadata.get("tags", []), "tag the findings cell nbval-check-output"
    for c in code:
        assert "record.CLAIMS" not in c.source and "import CLAIMS" not in c.source and "_CLAIMS" not in c.source
        assert "check_claim" not in c.source, "use check() or claim()"
