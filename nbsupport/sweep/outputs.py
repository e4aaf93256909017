"""What a sweep writes: ``points/<point>/`` (notebook, HTML, ``point.json``), ``results.csv``,
``results.parquet`` and ``index.html``, each atomically, the table rebuilt from every
``point.json`` under a lock after each point, so concurrent sweeps of one folder lose nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nbsupport.atomic import atomic_write, locked
from nbsupport.export import write_plotly_js
from nbsupport.record import effect_text
from nbsupport.sweep.grid import Point
from nbsupport.sweep.report import META, render


def save_point(point: Point, outcome: dict[str, Any], out: Path, stem: str) -> dict[str, Any]:
    """Write a finished point's notebook, HTML and (last) point.json; return point.json."""
    folder = out / "points" / point.name
    meta = {"key": point.key, "index": point.index, "scale": point.scale, "params": point.params,
            **{k: outcome[k] for k in ("status", "error", "seconds", "records", "claims", "worker")},
            "point": f"points/{point.name}", "output": "", "html": ""}
    if outcome["html"]:
        write_plotly_js(out)  # point pages find the one shared plotly.js a few folders up
    for kind, suffix in (("ipynb", ".ipynb"), ("html", ".html")):
        if outcome[kind]:
            atomic_write(folder / f"{stem}{suffix}", outcome[kind])
            meta["output" if kind == "ipynb" else "html"] = f"points/{point.name}/{stem}{suffix}"
    atomic_write(folder / "point.json", json.dumps(meta, indent=1))
    return meta


def stored_point(point: Point, out: Path) -> dict[str, Any] | None:
    """point.json of an earlier run of this exact point, else None."""
    try:
        meta = json.loads((out / "points" / point.name / "point.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("key") == point.key else None


def other_grid(out: Path, points: list[Point], stem: str) -> str:
    """What ``out`` holds besides these ``points`` of notebook ``stem``: finished points of
    another grid or notebook (their rows would leave the table), in a few words; "" when none.
    Failed points, and points of these parameters from an earlier version of the notebook,
    do not count."""
    from nbsupport.sweep.grid import same_key

    ours = {same_key([p.scale, p.params]) for p in points}
    others: list[dict[str, Any]] = []
    notebooks: set[str] = set()
    for meta_path in sorted((out / "points").glob("*/point.json")):
        try:
            meta = json.loads(meta_path.read_text())
            params, scale = dict(meta["params"]), str(meta["scale"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if meta.get("status") != "ok":
            continue
        name = Path(str(meta.get("output") or meta.get("html") or "")).stem
        if name and name != stem:
            notebooks.add(name)
        elif same_key([scale, params]) not in ours:
            others.append({**params, "SCALE": scale})
    if notebooks:
        return f"points of another notebook ({', '.join(sorted(notebooks))})"
    if not others:
        return ""
    names = list(dict.fromkeys(k for o in others for k in o))
    values = {k: list(dict.fromkeys(json.dumps(o.get(k), default=repr) for o in others)) for k in names}
    grid = " ".join(f"{k}={','.join(v)}" for k, v in values.items())
    return f"{len(others)} points of another grid ({grid[:200]})"


def finished_point(point: Point, out: Path) -> dict[str, Any] | None:
    """point.json of an earlier run of this exact point that succeeded, else None."""
    meta = stored_point(point, out)
    ok = meta is not None and meta.get("status") == "ok"
    return meta if ok and (out / meta.get("output", "-")).is_file() else None


def table(metas: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """One row per point: grid parameters, SCALE, status, seconds, error, records, and each
    claim's verdict (``claim:<name>``) and effect ± interval (``effect:<name>``)."""
    rows = []
    for m in sorted(metas, key=lambda m: m["index"]):
        row = {**{k: m["params"].get(k) for k in names if k != "SCALE"}, "SCALE": m["scale"],
               "status": m["status"], "seconds": m["seconds"], "error": m["error"]}
        for name, value in m["records"].items():
            row["record:" + name if name in row else name] = value
        for c in m["claims"]:
            row[f"claim:{c['name']}"] = c["verdict"]
            row[f"effect:{c['name']}"] = f"{effect_text(c)} n={c['n']}"
        row["point"] = m["html"] or m["output"] or m["point"]
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*names, *META, "point"])


def _object_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if df[c].dtype.kind == "O"]


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts as JSON text, for CSV and Parquet."""
    flat = df.copy()
    for col in _object_columns(flat):
        flat[col] = flat[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    return flat


def write_results(df: pd.DataFrame, out: Path, title: str, plot: tuple[str, str] | None,
                  grid: dict[str, list[Any]]) -> None:
    """results.csv, results.parquet (with pyarrow) and index.html, each atomically."""
    flat = _flat(df)
    atomic_write(out / "results.csv", flat.to_csv(index=False))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        try:
            data = flat.to_parquet(index=False)
        except Exception:  # noqa: BLE001 - a column mixes types: store it as text
            data = flat.astype({c: str for c in _object_columns(flat)}).to_parquet(index=False)
        atomic_write(out / "results.parquet", data)
    atomic_write(out / "index.html", render(df, title, plot, grid))


def update_results(points: list[Point], out: Path, title: str, plot: tuple[str, str] | None,
                   grid: dict[str, list[Any]]) -> pd.DataFrame:
    """Rebuild the table of ``points`` from their point.json files and write it, under a lock
    (another sweep of the same folder may be saving its points too); returns the table."""
    with locked(out / "results.csv"):
        df = table([{**m, "index": p.index} for p in points if (m := stored_point(p, out))], list(grid))
        write_results(df, out, title, plot, grid)
    return df
