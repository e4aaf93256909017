"""Plotly figures and controls that display once, save small and reopen with their figures.

Importing this module (every notebook does) calls :func:`setup`: the house template and the
``plotly_mimetype`` renderer, so a figure is stored in the notebook as plotly JSON only.
JupyterLab draws it with the plotly extension (which also saves a PNG of each figure it
drew, so GitHub, nbviewer and a reopened notebook show the image), and no copy of plotly.js
goes into any notebook; the runner's HTML export draws the same JSON with one shared
``plotly.min.js`` beside the pages (:mod:`nbsupport.export`). ``import nbsupport`` alone
changes no plotly setting.

``interactive(fn, **controls)``: ``fn(**values)`` returns a plotly figure. In a live kernel
it displays a static copy of the figure at the default values, then the controls with the
live figure; while the controls are alive they hide the static copy, so the figure shows
once, and a saved notebook reopened later (or read without a kernel) still shows the static
copy. Headless (``NBSUPPORT_HEADLESS=1``: the runner, papermill, the tests) only the static
figure is displayed. It returns None, so a cell that ends with it shows nothing twice.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "plotly_white"
RENDERER = "plotly_mimetype"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")
#: CSS class on every live control box (the browser test looks for it).
BOX_CLASS = "nbsupport-interactive"
_ids = itertools.count()


def setup() -> None:
    """Use the house template and store figures as plotly JSON (no plotly.js in the notebook)."""
    pio.templates.default = TEMPLATE
    pio.renderers.default = RENDERER


def headless() -> bool:
    """True in batch runs (runner, papermill, nbval tests), where widgets must not be used."""
    return os.environ.get("NBSUPPORT_HEADLESS", "") not in ("", "0")


def _log_axis() -> dict[str, Any]:
    """A log axis ticked at every decade and labelled 1e-3, 1e-2, ... (no minor-digit labels)."""
    return dict(type="log", dtick=1, exponentformat="e", showexponent="all", minorloglabels="none")


def style(fig: go.Figure, title: str | None = None, x: str | None = None, y: str | None = None,
          log_x: bool = False, log_y: bool = False, height: int = 420) -> go.Figure:
    """Apply the house layout: title at the top left, legend at the right (never over the
    title), axis titles, log axes labelled by decade. Returns ``fig`` for chaining."""
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(l=60, r=20, t=60, b=50),
                      title=dict(text=title, x=0.01, xanchor="left"),
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    fig.update_xaxes(title_text=x, **(_log_axis() if log_x else {}))
    fig.update_yaxes(title_text=y, **(_log_axis() if log_y else {}))
    return fig


def lines(x_values: Sequence, ys: dict[str, Sequence], /, **style_kw: Any) -> go.Figure:
    """One line per entry of ``ys`` (label -> values) against ``x_values``; ``style_kw`` go to
    :func:`style` (``x=`` and ``y=`` are the axis titles)."""
    fig = go.Figure()
    for i, (name, y) in enumerate(ys.items()):
        fig.add_trace(go.Scatter(x=list(x_values), y=list(y), mode="lines", name=str(name),
                                 line=dict(color=COLORS[i % len(COLORS)])))
    return style(fig, **style_kw)


def show(fig: go.Figure) -> None:
    """Display ``fig`` once (plotly JSON); returns None so nothing is displayed twice."""
    from IPython.display import display

    display(fig)


_LABEL = {"description_width": "initial"}  # the whole label, never "temperat…"


def _widget(name: str, spec: Any):
    """Build an ipywidget from a control spec and return (widget, default value)."""
    import ipywidgets as w

    if isinstance(spec, w.ValueWidget):
        return spec, spec.value
    if isinstance(spec, tuple) and len(spec) in (3, 4) and all(isinstance(v, (int, float)) for v in spec):
        lo, hi, step = spec[:3]
        default = spec[3] if len(spec) == 4 else lo
        cls = w.IntSlider if all(isinstance(v, int) for v in spec) else w.FloatSlider
        return cls(min=lo, max=hi, step=step, value=default, description=name, style=_LABEL,
                   continuous_update=False), default
    if isinstance(spec, (list, tuple)) and spec:
        return w.Dropdown(options=list(spec), value=spec[0], description=name, style=_LABEL), spec[0]
    if isinstance(spec, bool):
        return w.Checkbox(value=spec, description=name, style=_LABEL, indent=False), spec
    raise TypeError(
        f"interactive: control {name}={spec!r} is not understood; use (min, max, step[, default]), "
        "a list of options, a bool, or an ipywidget"
    )


def _hide_static_copy(tag: str) -> str:
    """CSS, rendered only by the live widget, hiding the output just before the box (the
    static copy) once the box shows its own plotly figure."""
    box = f".{BOX_CLASS}.{tag}"
    return (f"<style>.jp-OutputArea-child:has(+ .jp-OutputArea-child {box} .js-plotly-plot)"
            "{display:none}</style>")


def interactive(fn: Callable[..., go.Figure], **controls: Any) -> None:
    """Controls driving a plotly figure live; the static figure at the defaults when headless.

    Controls: ``(min, max, step[, default])`` for a slider, a list for a dropdown (first is
    the default), a bool for a checkbox, or any ipywidget. In a live kernel the figure at
    the defaults is displayed first (the copy a saved notebook keeps), then the controls
    and the live figure, which hide that copy while they run. Returns None.
    """
    from IPython.display import display

    setup()
    built = {name: _widget(name, spec) for name, spec in controls.items()}
    defaults = {name: default for name, (_, default) in built.items()}
    fig = fn(**defaults)
    display(fig)
    if headless():
        return None
    import ipywidgets as w

    out = w.Output()
    with out:
        display(fig)

    drawn = [True]  # the figure at the defaults is in ``out`` already

    def redraw(**values: Any) -> None:
        if drawn[0]:  # interactive_output calls once at once, with the defaults
            drawn[0] = False
            return
        with out:
            out.clear_output(wait=True)
            display(fn(**values))

    widgets = {name: widget for name, (widget, _) in built.items()}
    w.interactive_output(redraw, widgets)
    tag = f"nbsupport-box-{os.getpid()}-{next(_ids)}"
    box = w.VBox([w.HTML(_hide_static_copy(tag)),
                  w.HBox(list(widgets.values()), layout=w.Layout(flex_flow="row wrap")), out])
    box.add_class(BOX_CLASS)
    box.add_class(tag)
    display(box)
    return None


setup()
