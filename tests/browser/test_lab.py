"""JupyterLab in Debian's Chromium (driven by Playwright): run 00_start_here, find a widget
slider and a plotly figure, move the slider, and see the figure change.

The notebook is served from a temporary copy, so JupyterLab's autosave never touches the
source. The system browser is launched; nothing is downloaded from a browser CDN.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed "
                                                      "(apt-get install chromium; .ci/run does this)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    shutil.copy(ROOT / "notebooks" / "00_start_here.ipynb", tmp_path)
    port, token = free_port(), "warmstart-test"
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (JupyterLab 4 otherwise detaches cells scrolled out of view)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**os.environ, "NBSUPPORT_SCALE": "smoke", "NBSUPPORT_HEADLESS": "0",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start: " + proc.stdout.read().decode()[-2000:])
    yield f"{url}/lab/tree/00_start_here.ipynb?token={token}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_start_here_widgets_drive_plotly(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab, timeout=120_000)
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
        # wait for the kernel, then run every cell
        page.wait_for_function(
            "document.querySelector('.jp-Notebook') && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel", timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        slider = page.locator(".widget-slider").first
        try:
            slider.wait_for(timeout=240_000)
            figure = page.locator(".widget-output .js-plotly-plot").first
            figure.wait_for(timeout=120_000)
        except Exception:
            page.screenshot(path=str(Path(os.environ.get("BROWSER_SCREENSHOT", "/tmp/lab-failure.png"))), full_page=True)
            raise
        assert page.locator(".js-plotly-plot").count() >= 2  # the training curve too
        title = figure.locator(".gtitle")
        before = title.text_content()
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        page.wait_for_function(
            "([before]) => { const t = document.querySelector('.widget-output .js-plotly-plot .gtitle');"
            " return t && t.textContent !== before; }", arg=[before], timeout=60_000)
        after = page.locator(".widget-output .js-plotly-plot .gtitle").first.text_content()
        assert before != after and "temperature" in after
        browser.close()
