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
