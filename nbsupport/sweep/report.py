"""The sweep's ``index.html``: the grid, a plotly figure of one record against one parameter
(plotly.js inline, viewable offline) and the table with a link to each point's notebook."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from nbsupport.report import fmt

META = ("SCALE", "status", "seconds", "error")


def default_plot(df: pd.DataFrame, grid: dict[str, list[Any]]) -> tuple[str, str] | None:
    """The first numeric record that varies across points (else the first numeric record)
    against the first parameter that takes several values."""
    params = [k for k, v in grid.items() if len(v) > 1] or list(grid)
    skip = set(grid) | set(META) | {"point"}
    numeric = []
    for col in df.columns:
        if col not in skip and not col.startswith(("claim:", "effect:")):
            values = pd.to_numeric(df.loc[df.status == "ok", col], errors="coerce").dropna()
            if len(values):
                numeric.append((values.nunique() > 1, col))
    if not numeric:
        return None
    return next((col for varies, col in numeric if varies), numeric[0][1]), params[0]


def figure(df: pd.DataFrame, record: str, param: str, grid: dict[str, list[Any]]):
    """``record`` against ``param``, one line per combination of the other varying parameters."""
    import plotly.graph_objects as go

    from nbsupport.viz import COLORS, style

    ok = df[df.status == "ok"].copy() if record in df else df.iloc[:0]
    ok["_y"] = pd.to_numeric(ok[record], errors="coerce") if record in ok else []
    ok = ok[ok["_y"].notna()]
    others = [k for k, v in grid.items() if len(v) > 1 and k != param]
    fig = go.Figure()
    groups = ok.groupby(others, sort=False) if others else [((), ok)]
    for i, (values, rows) in enumerate(groups):
        values = values if isinstance(values, tuple) else (values,)
        label = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True)) or record
        rows = rows.sort_values(param)
        fig.add_trace(go.Scatter(x=rows[param].tolist(), y=rows["_y"].tolist(), mode="lines+markers",
                                 name=label, line=dict(color=COLORS[i % len(COLORS)])))
    xs = pd.to_numeric(ok[param], errors="coerce") if param in ok else pd.Series(dtype=float)
    log_x = bool(len(xs) and xs.notna().all() and xs.min() > 0 and xs.max() / xs.min() >= 50)
    return style(fig, title=f"{record} against {param}", x=param, y=record, log_x=log_x)


def render(df: pd.DataFrame, title: str, plot: tuple[str, str] | None,
           grid: dict[str, list[Any]]) -> str:
    """index.html: summary, the figure (plotly.js inline, viewable offline) and the table."""
    plot = plot or default_plot(df, grid)
    fig_html = ""
    if plot and plot[0] in df:
        fig_html = figure(df, *plot, grid).to_html(full_html=False, include_plotlyjs=True)
    elif plot:
        fig_html = f"<p class='bad'>No point recorded {html.escape(plot[0])}: nothing to plot.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for col, v in r.items():
            if col == "point":
                cells.append(f'<td><a href="{html.escape(str(v))}">notebook</a></td>')
            elif col == "status":
                cells.append(f'<td class="{"ok" if v == "ok" else "bad"}">{html.escape(str(v))}</td>')
            else:
                empty = v is None or (isinstance(v, float) and math.isnan(v))
                cells.append(f"<td>{'' if empty else fmt(v)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    failed = int((df.status != "ok").sum()) if len(df) else 0
    dims = " × ".join(f"{html.escape(k)} ({len(v)})" for k, v in grid.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sweep: {html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px}}.ok{{color:#17692c}}.bad{{color:#b00020}}</style>
</head><body><h1>Sweep: {html.escape(title)}</h1>
<p>Grid {dims}: {len(df)} points, {failed} failed. Files: <a href="results.csv">results.csv</a>.</p>
{fig_html}
<table><tr>{head}</tr>
{"".join(rows)}
</table></body></html>
"""
