"""Plotly styling and widgets that degrade to static figures when headless.

``setup()`` (called on ``import nbsupport``) picks a renderer that stores both the plotly
JSON and an offline HTML rendering, so executed notebooks show their figures in JupyterLab,
in nbconvert's HTML export and in the batch report without a network.

``interactive(fn, **controls)``: ``fn(**values)`` returns a plotly figure. In a live kernel
the controls are ipywidgets that redraw the figure; headless (``NBSUPPORT_HEADLESS=1``,
which the runner and the tests set) only the static figure at the default values is shown,
so no batch run ever waits on a widget.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "plotly_white"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")


def setup() -> None:
    """Set the house template and an offline renderer (plotly JSON + inline plotly.js HTML)."""
    pio.templates.default = TEMPLATE
    pio.renderers.default = "plotly_mimetype+notebook"


def headless() -> bool:
    """True in batch runs (runner, papermill, nbval tests), where widgets must not be used."""
    return os.environ.get("NBSUPPORT_HEADLESS", "") not in ("", "0")


def style(fig: go.Figure, title: str | None = None, x: str | None = None, y: str | None = None,
          log_x: bool = False, log_y: bool = False, height: int = 420) -> go.Figure:
    """Apply the house layout: title, axis labels, log axes, legend below the title."""
    fig.update_layout(template=TEMPLATE, title=title, height=height, margin=dict(l=60, r=20, t=60, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_xaxes(title_text=x, type="log" if log_x else None)
    fig.update_yaxes(title_text=y, type="log" if log_y else None)
    return fig


def lines(x_values: Sequence, ys: dict[str, Sequence], /, **style_kw: Any) -> go.Figure:
    """One line per entry of ``ys`` (label -> values) against ``x_values``; ``style_kw`` go to
    :func:`style` (``x=`` and ``y=`` are the axis titles)."""
    fig = go.Figure()
    for i, (name, y) in enumerate(ys.items()):
        fig.add_trace(go.Scatter(x=list(x_values), y=list(y), mode="lines", name=str(name),
                                 line=dict(color=COLORS[i % len(COLORS)])))
    return style(fig, **style_kw)


def _widget(name: str, spec: Any):
    """Build an ipywidget from a control spec and return (widget, default value)."""
    import ipywidgets as w

    if isinstance(spec, w.ValueWidget):
        return spec, spec.value
    if isinstance(spec, tuple) and len(spec) in (3, 4) and all(isinstance(v, (int, float)) for v in spec):
        lo, hi, step = spec[:3]
        default = spec[3] if len(spec) == 4 else lo
        cls = w.IntSlider if all(isinstance(v, int) for v in spec) else w.FloatSlider
        return cls(min=lo, max=hi, step=step, value=default, description=name,
                   continuous_update=False), default
    if isinstance(spec, (list, tuple)) and spec:
        return w.Dropdown(options=list(spec), value=spec[0], description=name), spec[0]
    if isinstance(spec, bool):
        return w.Checkbox(value=spec, description=name), spec
    raise TypeError(
        f"interactive: control {name}={spec!r} is not understood; use (min, max, step[, default]), "
        "a list of options, a bool, or an ipywidget"
    )


def interactive(fn: Callable[..., go.Figure], **controls: Any):
    """Controls driving a plotly figure live; a static figure at the defaults when headless.

    Controls: ``(min, max, step[, default])`` for a slider, a list for a dropdown (first is
    the default), a bool for a checkbox, or any ipywidget. Returns the widget box in a live
    kernel and the static figure when headless.
    """
    from IPython.display import display

    built = {name: _widget(name, spec) for name, spec in controls.items()}
    defaults = {name: default for name, (_, default) in built.items()}
    if headless():
        fig = fn(**defaults)
        display(fig)
        return fig
    import ipywidgets as w

    out = w.Output()

    def redraw(**values: Any) -> None:
        with out:
            out.clear_output(wait=True)
            display(fn(**values))

    widgets = {name: widget for name, (widget, _) in built.items()}
    w.interactive_output(redraw, widgets)
    box = w.VBox([w.HBox(list(widgets.values()), layout=w.Layout(flex_flow="row wrap")), out])
    display(box)
    return box
