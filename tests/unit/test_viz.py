"""nbsupport.viz: house layout, figures displayed once, a static copy beside live controls;
nbsupport.progress: plain-text bars."""

import subprocess
import sys

import ipywidgets as w
import plotly.graph_objects as go
import pytest

from nbsupport import viz
from nbsupport.progress import progress
from nbsupport.viz import BOX_CLASS, interactive, lines, show, style


@pytest.fixture
def shown(monkeypatch):
    """Everything passed to IPython's display, in order."""
    out = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: out.extend(objs))
    return out


def test_import_nbsupport_leaves_plotly_alone_and_viz_sets_it_up():
    code = ("import plotly.io as pio; before = pio.renderers.default; import nbsupport; "
            "assert pio.renderers.default == before, pio.renderers.default; "
            "import nbsupport.viz; assert pio.renderers.default == 'plotly_mimetype'; "
            "assert pio.templates.default == 'plotly_white'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figures_are_stored_as_json_without_plotly_js():
    viz.setup()
    bundle = go.Figure(go.Scatter(y=[1, 2]))._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.plotly.v1+json"}


def test_lines_and_style_house_layout():
    fig = lines([0, 1, 2], {"a": [1, 2, 3], "b": [3, 2, 1]}, title="t", x="step", y="loss", log_y=True)
    assert [tr.name for tr in fig.data] == ["a", "b"]
    assert fig.layout.xaxis.title.text == "step" and fig.layout.title.text == "t"
    # the legend sits right of the plot, never over the title
    assert fig.layout.legend.x >= 1 and fig.layout.legend.xanchor == "left"
    # log axes: one tick per decade, labelled 1e-3, 1e-2, ... (no "2 ... 7" minor labels)
    y = fig.layout.yaxis
    assert (y.type, y.dtick, y.exponentformat, y.minorloglabels) == ("log", 1, "e", "none")
    assert fig.layout.xaxis.type != "log"
    assert style(go.Figure(), title="x").layout.title.text == "x"


def test_show_displays_once_and_returns_none(shown):
    fig = go.Figure()
    assert show(fig) is None and shown == [fig]


def test_interactive_headless_shows_static_figure_once(monkeypatch, shown):
    monkeypatch.setenv("NBSUPPORT_HEADLESS", "1")
    calls = []

    def fn(a, b, c):
        calls.append((a, b, c))
        return go.Figure(go.Scatter(y=[a]))

    assert interactive(fn, a=(0.0, 1.0, 0.1, 0.5), b=["x", "y"], c=True) is None
    assert calls == [(0.5, "x", True)]
    assert len(shown) == 1 and isinstance(shown[0], go.Figure)


def test_interactive_live_static_copy_then_box_and_redraw(monkeypatch, shown):
    monkeypatch.setenv("NBSUPPORT_HEADLESS", "0")
    calls = []

    def fn(n, k):
        calls.append((n, k))
        return go.Figure(go.Bar(y=[n] * k))

    assert interactive(fn, n=(1, 10, 1, 3), k=w.IntSlider(value=2)) is None
    static, box = shown[0], shown[-1]
    assert isinstance(static, go.Figure) and isinstance(box, w.VBox)
    assert calls == [(3, 2)]  # the default figure is computed once
    assert BOX_CLASS in box._dom_classes
    css, controls, _ = box.children
    assert "<style>" in css.value and "display:none" in css.value
    slider = controls.children[0]
    assert isinstance(slider, w.IntSlider) and slider.value == 3
    assert slider.style.description_width == "initial"  # labels never cut off
    slider.value = 5
    assert calls == [(3, 2), (5, 2)]


def test_interactive_bad_control():
    with pytest.raises(TypeError, match="not understood"):
        interactive(lambda x: go.Figure(), x=object())


def test_progress_is_plain_text_on_stdout(capsys):
    assert list(progress(range(3), desc="steps")) == [0, 1, 2]
    out = capsys.readouterr()
    assert out.err == "" and "steps" in out.out and "3/3" in out.out
