"""The grid of a sweep: parsing ``-p NAME=V1,V2``, checking it against the notebook, its points."""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from nbsupport.runner import UsageError, check_params, parse_params
from nbsupport.scales import SCALES


@dataclass(frozen=True)
class Point:
    """One grid point: its position in the grid, scale, parameters and resume key."""

    index: int
    scale: str
    params: dict[str, Any]
    key: str

    @property
    def name(self) -> str:
        """Folder name under ``points/``: readable parameters, then the key."""
        slug = "_".join([self.scale] + [f"{k}={v}" for k, v in self.params.items()])
        return f"{re.sub(r'[^A-Za-z0-9=.+_-]+', '-', slug)[:80]}-{self.key}"


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """``["LR=3e-4,1e-3", "SEED=0,1"]`` -> ``{"LR": [0.0003, 0.001], "SEED": [0, 1]}``.

    Values parse as Python literals (a comma-separated literal gives several values), else
    they are split on commas and each one parses like ``-p`` of ``nbsupport run``."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"bad grid {pair!r}: write NAME=V1,V2,..., e.g. -p SEED=0,1,2")
        if name in grid:
            raise UsageError(f"parameter {name} given twice: list all its values in one -p {name}=...")
        if not raw:
            raise UsageError(f"-p {name}= has no values: give at least one, e.g. -p {name}=0,1")
        try:
            parsed = ast.literal_eval(raw)
            grid[name] = list(parsed) if isinstance(parsed, tuple) else [parsed]
        except (ValueError, SyntaxError):
            items = [item.strip() for item in raw.split(",")]
            if "" in items:
                raise UsageError(f"-p {name}={raw}: empty value between commas") from None
            grid[name] = [parse_params([f"{name}={item}"])[name] for item in items]
    return grid


def same_key(value: Any) -> str:
    """Equal values get equal keys: 1 and 1.0 are one value, True is not 1 (also inside lists
    and dicts)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(same_key(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{same_key(value[k])}" for k in sorted(value, key=str)) + "}"
    return json.dumps(value, sort_keys=True, default=repr)


def grid_values(name: str, values: Any) -> list[Any]:
    """A grid entry as a list of plain Python values (a scalar is one value); raises
    :class:`UsageError` for an empty list or a repeated value."""
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__iter__"):
        values = [values]
    out = [v.item() if hasattr(v, "item") and not isinstance(v, (list, dict)) else v for v in values]
    if not out:
        raise UsageError(f"parameter {name} has an empty list of values")
    keys = [same_key(v) for v in out]
    if len(set(keys)) < len(keys):
        raise UsageError(f"parameter {name} repeats a value: {out}")
    return out


def check_grid(path: Path, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Raise one :class:`UsageError` for an unknown parameter, an empty grid or a value whose
    type does not match the parameter's default (checked by the runner); returns the grid
    with ints widened to float for float parameters."""
    if not grid:
        raise UsageError("empty grid: give at least one -p NAME=V1,V2")
    for value in grid.get("SCALE", []):
        if value not in SCALES:
            raise UsageError(f"unknown scale {value!r} in the grid: choose from {', '.join(SCALES)}")
    checked = {k: list(v) for k, v in grid.items()}
    others = [k for k in grid if k != "SCALE"]
    for i in range(max((len(grid[k]) for k in others), default=0)):
        row = check_params(path, {k: grid[k][i] for k in others if i < len(grid[k])})
        for k, v in row.items():
            checked[k][i] = v
    return checked


def notebook_digest(path: Path) -> str:
    """Hash of the notebook's cell types and sources (outputs and metadata do not count)."""
    nb = nbformat.read(path, as_version=4)
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def grid_points(grid: dict[str, list[Any]], scale: str, digest: str) -> list[Point]:
    """The Cartesian product of ``grid`` (first parameter varies slowest)."""
    names = list(grid)
    points = []
    for i, values in enumerate(itertools.product(*grid.values())):
        params = dict(zip(names, values, strict=True))
        point_scale = str(params.pop("SCALE", scale))
        blob = json.dumps([digest, point_scale, params], sort_keys=True, default=repr)
        points.append(Point(i, point_scale, params, hashlib.sha256(blob.encode()).hexdigest()[:12]))
    return points
