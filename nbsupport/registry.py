"""The claims registry: every claim's definition, written before its run, with its history.

Each theme keeps ``notebooks/<theme>/claims.yaml``::

    notebooks:
      01_reliability_and_temperature_scaling.ipynb:
        seeds: 5                     # SEEDS at standard (the parameters cell)
        claims:
          ts_lowers_nll_mlp:
            statement: cross-fitted temperature scaling lowers the MLP's held-out NLL
            effect: raw minus scaled NLL per held-out example; rows are seeds
            expect: ">"
            margin: 0.01             # the smallest effect of interest
            unit: example            # the columns of a seeds x units effect ("seed": 1-D)
            paper: Guo et al. 2017, §4.2
            premises: [the MLP is above chance]
            call: 3f0c9a51d2e7       # fingerprint of the claim(...) call's source
            history:                 # every change after a run: what, why, the verdict before
              - {date: 2026-12-07, change: ..., why: ..., before: {verdict: ..., effect: ...}}
        retired:                     # claims removed or turned into checks: name -> what and why
          old_claim_name: ...

Two checks keep notebooks and registry together:

- at run time :func:`registered` compares each claim (name, expect, margin, unit) with the
  registry beside the notebook and stores the result and the history in the claim's entry, so
  the report marks an unregistered claim and one edited after a standard run;
- ``python -m nbsupport claims --check`` reads every notebook's ``claim(...)`` calls without
  running them and exits non-zero naming the notebook and claim when a call is missing from the
  registry, differs from it (a literal expect, margin or unit, or its source fingerprint), or
  a registered claim has no call; also when ``SEEDS`` differs from the registered one.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY = "claims.yaml"
HISTORY_KEYS = ("date", "change", "why", "before")


def load(path: Path) -> dict[str, Any]:
    """One theme's registry (``{"notebooks": {file name: {...}}}``); a clear error when malformed."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"claims registry {path}: not valid YAML ({exc})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("notebooks", {}), Mapping):
        raise ValueError(f"claims registry {path}: expected a mapping with a 'notebooks' mapping at the top")
    return dict(data)


def claims_of(data: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(notebook file, claim name, definition) for every registered claim."""
    for nb, spec in (data.get("notebooks") or {}).items():
        for name, definition in ((spec or {}).get("claims") or {}).items():
            yield nb, name, dict(definition or {})


def registered(name: str, entry: Mapping[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """How a claim made at run time stands against the registry in ``folder`` (default: the
    working directory, the notebook's own folder under papermill and JupyterLab).

    ``status`` is ``registered``, ``differs`` (``problems`` says how), ``unregistered`` or
    ``no registry``; ``history`` is the registered history."""
    path = Path(folder or Path.cwd()) / REGISTRY
    if not path.exists():
        return {"status": "no registry", "problems": [], "history": []}
    try:
        data = load(path)
    except ValueError as exc:
        return {"status": "differs", "problems": [str(exc)], "history": []}
    found = [(nb, d) for nb, n, d in claims_of(data) if n == name]
    if not found:
        return {"status": "unregistered", "history": [],
                "problems": [f"{name} is not in {path.name}: register it before its first run"]}
    nb, d = found[0]
    problems = [f"{key} is {entry[key]!r} here, {d.get(key)!r} in the registry"
                for key in ("expect", "unit") if key in d and str(d[key]) != str(entry[key])]
    if "margin" in d and not math.isclose(float(d["margin"]), float(entry["margin"]), rel_tol=1e-9, abs_tol=1e-12):
        problems.append(f"margin is {entry['margin']!r} here, {d['margin']!r} in the registry")
    return {"status": "differs" if problems else "registered", "notebook": nb, "problems": problems,
            "history": list(d.get("history") or [])}


def edits(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history entries of a claim (read from a notebook) that changed it after a run."""
    reg = entry.get("registry") or {}
    return [h for h in reg.get("history") or [] if isinstance(h, Mapping) and h.get("before")]


# --- the static check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One ``claim(...)`` call in a notebook's source."""

    pattern: str  # a regular expression matching the names it makes (f-strings: any text for a field)
    name: str  # the name as written
    fingerprint: str
    literals: dict[str, Any]


def _code(nb_path: Path) -> Iterator[str]:
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            src = "".join(cell.get("source", []))
            yield "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())


def _is_claim(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "claim") or (isinstance(f, ast.Attribute) and f.attr == "claim")


def _pattern(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values)
    return ".+"


def fingerprint(call: ast.Call) -> str:
    """12 hex digits of the SHA-256 of the call's normalized source (:func:`ast.unparse`)."""
    return hashlib.sha256(ast.unparse(call).encode()).hexdigest()[:12]


def calls(nb_path: Path) -> list[Call]:
    """Every ``claim(...)`` call in a notebook's code cells, in order."""
    found = []
    for src in _code(nb_path):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not _is_claim(node):
                continue
            name_node = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
            if name_node is None:
                continue
            literals = {}
            for k in node.keywords:
                if k.arg in ("expect", "margin", "unit"):
                    try:
                        literals[k.arg] = ast.literal_eval(k.value)
                    except ValueError:
                        pass
            found.append(Call(_pattern(name_node), ast.unparse(name_node), fingerprint(node), literals))
    return found


def seeds_parameter(nb_path: Path) -> Any:
    """The literal value of ``SEEDS`` in the notebook's parameters cell (None if absent or computed)."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            for node in ast.parse("".join(cell.get("source", []))).body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SEEDS" for t in node.targets):
                    try:
                        return ast.literal_eval(node.value)
                    except ValueError:
                        return None
    return None


def check_theme(folder: Path) -> list[str]:
    """Problems between the notebooks of one theme folder and its registry (empty: they agree)."""
    folder = Path(folder)
    notebooks = sorted(p for p in folder.glob("*.ipynb"))
    found = {nb.name: calls(nb) for nb in notebooks}
    path = folder / REGISTRY
    if not any(found.values()):
        return []
    if not path.exists():
        return [f"{folder.name}: no {REGISTRY}; register the claims of {', '.join(n for n, c in found.items() if c)}"]
    try:
        data = load(path)
    except ValueError as exc:
        return [str(exc)]
    problems: list[str] = []
    names_seen: dict[str, str] = {}
    for nb_name, name, d in claims_of(data):
        where = f"{folder.name}/{nb_name}: claim {name}"
        if name in names_seen:
            problems.append(f"{where}: registered twice in the theme (also in {names_seen[name]}); names are unique per theme")
        names_seen[name] = nb_name
        if nb_name not in found:
            problems.append(f"{where}: the registry names a notebook that does not exist")
            continue
        matches = [c for c in found[nb_name] if re.fullmatch(c.pattern, name)]
        if not matches:
            problems.append(f"{where}: registered but no claim(...) call in the notebook makes it")
            continue
        c = matches[0]
        for key, value in c.literals.items():
            if key == "margin":
                same = key in d and math.isclose(float(value), float(d[key]), rel_tol=1e-9, abs_tol=1e-12)
            else:
                same = str(value) == str(d.get(key))
            if not same:
                problems.append(f"{where}: {key} is {value!r} in the notebook, {d.get(key)!r} in the registry; "
                                "a change to a registered claim needs a history entry (date, change, why, before)")
        if d.get("call") != c.fingerprint:
            problems.append(f"{where}: its claim(...) call changed (fingerprint {c.fingerprint}, registered "
                            f"{d.get('call')}); add a history entry (date, change, why, before) and set call: {c.fingerprint}")
        for h in d.get("history") or []:
            if not isinstance(h, Mapping) or any(k not in h for k in HISTORY_KEYS):
                problems.append(f"{where}: a history entry needs {', '.join(HISTORY_KEYS)}")
    registered_names = {nb: [n for b, n, _ in claims_of(data) if b == nb] for nb in found}
    for nb_name, cs in found.items():
        for c in cs:
            if not any(re.fullmatch(c.pattern, n) for n in registered_names[nb_name]):
                problems.append(f"{folder.name}/{nb_name}: claim {c.name} is not registered in {path.name}")
        spec = (data.get("notebooks") or {}).get(nb_name) or {}
        seeds = seeds_parameter(folder / nb_name)
        if cs and "seeds" in spec and spec["seeds"] != seeds:
            problems.append(f"{folder.name}/{nb_name}: SEEDS is {seeds!r} in the parameters cell, {spec['seeds']!r} "
                            "in the registry; record the change in the registry")
    return problems


def check(root: Path) -> list[str]:
    """Problems across every theme folder under ``root`` (the notebooks folder)."""
    root = Path(root)
    return [p for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
            for p in check_theme(folder)]


def main_claims(args) -> int:
    from nbsupport.runner import NOTEBOOKS, discover

    if args.fingerprints:
        for nb in discover(args.fingerprints):
            for c in calls(nb):
                print(f"{nb.parent.name}/{nb.name}  {c.name}  call: {c.fingerprint}")
        return 0
    problems = check(Path(args.root) if args.root else NOTEBOOKS)
    for p in problems:
        print(p)
    if not problems:
        print("claims registry: every claim registered and unchanged")
    return 1 if problems else 0


def add_arguments(sub) -> None:
    p = sub.add_parser("claims", help="check the notebooks' claims against the claims registry")
    p.add_argument("--check", action="store_true", help="exit non-zero naming each claim that differs (the default)")
    p.add_argument("--root", help="notebooks folder (default: the repository's notebooks/)")
    p.add_argument("--fingerprints", nargs="+", metavar="PATH",
                   help="print the fingerprint of every claim(...) call in these notebooks or folders")
    p.set_defaults(func=main_claims, interrupted="stopped")
