"""Plotly figures for calibration: reliability diagrams and metric curves."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from nbsupport.viz import COLORS, style


def reliability_figure(tables: dict[str, pd.DataFrame], title: str = "Reliability diagram",
                       height: int = 420) -> go.Figure:
    """Accuracy against mean confidence per bin (marker size ~ bin count) for each
    :func:`~nbsupport.calibration.reliability` table, with the diagonal of perfect calibration."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(color="#999", dash="dash")))
    for i, (name, t) in enumerate(tables.items()):
        t = t[t["count"] > 0]
        size = 6 + 24 * (t["count"] / t["count"].max()) ** 0.5
        fig.add_trace(go.Scatter(
            x=t["confidence"], y=t["accuracy"], mode="lines+markers", name=str(name),
            marker=dict(size=size, color=COLORS[i % len(COLORS)]), line=dict(color=COLORS[i % len(COLORS)]),
            customdata=t[["count", "lo", "hi"]].to_numpy(),
            hovertemplate="bin [%{customdata[1]:.2f}, %{customdata[2]:.2f}) n=%{customdata[0]}<br>"
                          "confidence %{x:.3f}<br>accuracy %{y:.3f}",
        ))
    fig = style(fig, title=title, x="mean confidence in bin", y="accuracy in bin", height=height)
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(range=[0, 1.02])
    return fig
