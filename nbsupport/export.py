"""HTML pages of executed notebooks whose plotly figures share one ``plotly.min.js``.

Notebooks store each figure as plotly JSON (``application/vnd.plotly.v1+json``, see
:mod:`nbsupport.viz`). :func:`notebook_html` turns every such output into a placeholder that
one script at the end of the page draws with ``plotly.min.js``, so a run's pages work
offline and carry no copy of plotly.js each: the file is written once into the outputs
folder (``<out>/plotly.min.js``) and each page looks for it in its own folder and up to
four folders above, which covers ``<out>/<theme>/`` and a sweep's ``points/<key>/``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

from nbsupport.atomic import atomic_write

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"
_FIGURE = '<script type="application/json" class="nbsupport-plotly">{}</script>'
_LOADER = """<script>
(function () {
  var figures = document.querySelectorAll("script.nbsupport-plotly");
  if (!figures.length) return;
  var paths = ["", "../", "../../", "../../../", "../../../../"];
  function draw() {
    figures.forEach(function (s) {
      var fig = JSON.parse(s.textContent), div = document.createElement("div");
      s.parentNode.insertBefore(div, s);
      Plotly.newPlot(div, fig.data, fig.layout, Object.assign({responsive: true}, fig.config));
    });
  }
  function load(i) {
    if (window.Plotly) return draw();
    if (i >= paths.length) {
      figures.forEach(function (s) { s.insertAdjacentText("beforebegin",
        "(figure not drawn: %(js)s not found beside this page or in the folders above)"); });
      return;
    }
    var el = document.createElement("script");
    el.src = paths[i] + "%(js)s";
    el.onload = draw;
    el.onerror = function () { el.remove(); load(i + 1); };
    document.head.appendChild(el);
  }
  load(0);
})();
</script>"""


def write_plotly_js(folder: Path) -> Path:
    """Write plotly's bundled ``plotly.min.js`` into ``folder`` unless the same file is there."""
    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLY_JS
    js = get_plotlyjs().encode()
    if path.exists() and path.stat().st_size == len(js):
        return path
    atomic_write(path, js)
    return path


def _with_placeholders(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` where every plotly JSON output also carries its HTML placeholder."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            fig = output.get("data", {}).get(PLOTLY_MIME)
            if fig is not None:
                text = json.dumps(fig).replace("</", "<\\/")  # never close the script early
                output["data"]["text/html"] = _FIGURE.format(text)
    return nb


def notebook_html(nb: nbformat.NotebookNode, out: Path | None = None) -> str:
    """nbconvert's lab-template HTML of ``nb`` with its plotly figures drawn offline.

    With ``out`` (the run's outputs folder) the page loads the shared ``out/plotly.min.js``
    (written here if missing); without it, plotly.js is inlined into the page, which then
    stands alone (about 5 MB).
    """
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(_with_placeholders(nb))
    if out is None:
        from plotly.offline import get_plotlyjs

        loader = f"<script>{get_plotlyjs()}</script>\n" + _LOADER % {"js": PLOTLY_JS}
    else:
        write_plotly_js(Path(out))
        loader = _LOADER % {"js": PLOTLY_JS}
    return body.replace("</body>", loader + "\n</body>", 1)
