"""JupyterLab in Debian's Chromium (driven by Playwright), as a reader uses it.

For three notebooks at the smoke scale: Run All; no cell writes to stderr or fails; every
``viz.interactive`` box is displayed once and hides its static copy; moving a control
redraws the figure; then save, shut the kernel down, reload, and the saved notebook (under
1 MB) shows the static figures. Also: an HTML export draws its figures offline from the
shared ``plotly.min.js``.

The notebooks are served from a temporary copy, so JupyterLab's autosave never touches the
sources. The system browser is launched; nothing is downloaded from a browser CDN. The test
relies only on the boxes that ``nbsupport.viz.interactive`` draws, never on particular cells.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOKS = ["00_start_here.ipynb", "warmup/01_schedule_gallery.ipynb",
             "calibration/01_reliability_and_temperature_scaling.ipynb"]
BOX = ".nbsupport-interactive"
TOKEN = "warmstart-test"
PLOTLY, WIDGET = "application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed "
                                                      "(apt-get install chromium; .ci/run does this)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, served folder) of a JupyterLab serving a copy of notebooks/."""
    tmp = tmp_path_factory.mktemp("lab")
    served = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", served, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (JupyterLab 4 otherwise detaches cells scrolled out of view)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port = free_port()
    env = {**os.environ, "NBSUPPORT_SCALE": "smoke", "NBSUPPORT_HEADLESS": "0",
           "JUPYTER_CONFIG_DIR": str(tmp / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "ws")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={served}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start: " + proc.stdout.read().decode()[-2000:])
    yield url, served
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


# Every code cell's outputs (nbformat JSON) of the notebook in the current tab.
OUTPUTS = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .filter(c => c.model.type === 'code').map(c => c.model.outputs.toJSON())"""
# "done" when every code cell ran and the kernel is idle; "error" as soon as a cell failed.
FINISHED = """() => {
    const nb = window.jupyterapp.shell.currentWidget, kernel = nb?.sessionContext?.session?.kernel;
    if (!kernel) return false;
    const cells = nb.content.widgets.filter(c => c.model.type === 'code');
    if (cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'))) return 'error';
    return kernel.status === 'idle' && cells.every(c => c.model.executionCount !== null) && 'done';
}"""
# For every box: is the output just before it a plotly figure, hidden while the box is live?
STATIC_COPIES = """(box) => [...document.querySelectorAll(box)].map(b => {
    const prev = b.closest('.jp-OutputArea-child').previousElementSibling;
    return {static: !!prev?.querySelector('.js-plotly-plot'), hidden: prev ? getComputedStyle(prev).display === 'none' : null,
            live: !!b.querySelector('.js-plotly-plot')};
})"""
# A signature of the first live figure of box i (changes when it is redrawn).
FIGURE = """([box, i]) => { const gd = document.querySelectorAll(box)[i]?.querySelector('.js-plotly-plot');
    return gd ? JSON.stringify([gd.data, gd.layout?.title]) : null; }"""


def open_notebook(page, url: str, name: str) -> None:
    page.goto(f"{url}/lab/tree/{name}?token={TOKEN}&reset", timeout=120_000)  # reset: only this tab
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    page.wait_for_function("window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel",
                           timeout=120_000)


def move_a_control(page) -> None:
    """Change the first slider (else dropdown) of some box; the box's figure must change."""
    boxes = page.locator(BOX)
    for i in range(boxes.count()):
        box = boxes.nth(i)
        before = page.evaluate(FIGURE, [BOX, i])
        if box.locator(".widget-slider .noUi-handle").count():
            handle = box.locator(".widget-slider .noUi-handle").first
            handle.scroll_into_view_if_needed()
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
        elif box.locator(".widget-dropdown select").count():
            select = box.locator(".widget-dropdown select").first
            options = select.locator("option").all_text_contents()
            if len(options) < 2:
                continue
            select.select_option(index=1 if select.input_value() == options[0] else 0)
        else:
            continue
        page.wait_for_function(f"([box, i, before]) => ({FIGURE})([box, i]) !== before && "
                               f"({FIGURE})([box, i]) !== null", arg=[BOX, i, before], timeout=120_000)
        return
    pytest.fail("no interactive box has a slider or a dropdown")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_interact_save_reopen(lab, browser, name):
    url, served = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        open_notebook(page, url, name)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        handle = page.wait_for_function(FINISHED, timeout=300_000, polling=1000)
        outputs = page.evaluate(OUTPUTS)
        errors = [o for cell in outputs for o in cell if o["output_type"] == "error"]
        assert handle.json_value() == "done" and not errors, errors[:1]
        stderr = [o["text"] for cell in outputs for o in cell if o.get("name") == "stderr"]
        assert not stderr, f"stderr in a cell: {stderr[0][:500]}"

        # each box displayed once (no second view of the same widget), its static copy hidden
        page.wait_for_function(f"[...document.querySelectorAll('{BOX}')].length > 0 && [...document."
                               f"querySelectorAll('{BOX}')].every(b => b.querySelector('.js-plotly-plot'))",
                               timeout=120_000)
        views = [o["data"][WIDGET]["model_id"] for cell in outputs for o in cell if WIDGET in o.get("data", {})]
        assert len(views) == len(set(views)), "a widget is displayed twice"
        copies = page.evaluate(STATIC_COPIES, BOX)
        assert copies and all(c == {"static": True, "hidden": True, "live": True} for c in copies), copies

        move_a_control(page)

        # save, stop the kernel, reopen: the static figures are what a reader sees
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("!window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=60_000)
        page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        saved = served / name
        assert saved.stat().st_size < 1_000_000, f"saved notebook is {saved.stat().st_size} bytes"
        nb = json.loads(saved.read_text())
        assert not any(o.get("name") == "stderr" for c in nb["cells"] for o in c.get("outputs", []))
        # JupyterLab's plotly renderer saved a PNG beside each figure's JSON: the reopened
        # notebook (and GitHub, nbviewer) shows that image
        figures = [o for c in nb["cells"] for o in c.get("outputs", []) if PLOTLY in o.get("data", {})]
        assert len(figures) >= len(copies) and all("image/png" in o["data"] for o in figures)
        views = [o for c in nb["cells"] for o in c.get("outputs", []) if WIDGET in o.get("data", {})]
        assert len(views) == len(copies), "a widget other than the interactive boxes (a tqdm bar?) was saved"
        open_notebook(page, url, name)
        page.wait_for_function(f"[...document.querySelectorAll('.jp-RenderedPlotly img')].filter("
                               f"i => i.naturalWidth > 1 && i.offsetParent !== null).length >= {len(copies)}",
                               timeout=60_000)
        assert page.evaluate(STATIC_COPIES, BOX) == []  # no box comes back without its kernel
    except Exception:
        shot = Path(os.environ.get("BROWSER_SCREENSHOT", "/tmp/lab-failure.png"))
        page.screenshot(path=str(shot.with_stem(f"{shot.stem}-{Path(name).stem}")), full_page=True)
        raise
    finally:
        page.close()


def test_html_export_draws_figures_offline(browser, tmp_path):
    """A runner page, opened from disk, draws its figure with the shared plotly.min.js."""
    import nbformat
    import plotly.graph_objects as go

    from nbsupport.export import notebook_html

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.plotly.v1+json": json.loads(go.Figure(go.Scatter(y=[1, 3, 2])).to_json())})]
    nb.cells = [cell]
    page_path = tmp_path / "theme" / "n.html"
    page_path.parent.mkdir()
    page_path.write_text(notebook_html(nb, tmp_path))
    page = browser.new_page()
    page.route("http*://**", lambda route: route.abort())  # offline
    page.goto(page_path.as_uri())
    page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=30_000)
    page.close()
