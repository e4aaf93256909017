"""nbsupport.export: executed notebooks as HTML pages sharing one plotly.min.js."""

import json

import nbformat
import plotly.graph_objects as go

from nbsupport.export import PLOTLY_JS, notebook_html, write_plotly_js


def notebook_with_figure():
    fig = go.Figure(go.Scatter(y=[1, 3, 2], name="</script> in a name"))
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()), "text/plain": "Figure"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    return nb


def test_page_loads_the_shared_plotly_js(tmp_path):
    nb = notebook_with_figure()
    page = notebook_html(nb, tmp_path)
    shared = tmp_path / PLOTLY_JS
    assert shared.stat().st_size > 1_000_000  # the real plotly.js, written once
    assert len(page) < 500_000 and "Plotly.newPlot" in page and f'"{PLOTLY_JS}"' in page
    assert 'class="nbsupport-plotly"' in page and "<\\/script> in a name" in page
    assert "text/html" not in nb.cells[1].outputs[0].data  # the notebook itself is untouched
    mtime = shared.stat().st_mtime_ns
    notebook_html(nb, tmp_path)
    assert shared.stat().st_mtime_ns == mtime  # not rewritten
    assert write_plotly_js(tmp_path) == shared


def test_page_without_outputs_folder_stands_alone():
    page = notebook_html(notebook_with_figure())
    assert len(page) > 1_000_000 and "Plotly.newPlot" in page
