"""mergekit-style merge configs: parsing, checking, and the plan of output tensors.

``parse_config(config)`` checks a YAML file (or dict) as mergekit reads it and returns it in
one shape: a list of output *slices*, each with its input sources. A ``models:`` config is one
slice covering every layer of every model; a ``slices:`` config (a passthrough frankenmerge,
or several sources merged per slice) lists them::

    merge_method: passthrough
    slices:
      - sources: [{model: path/to/a, layer_range: [0, 3]}]
      - sources: [{model: path/to/b, layer_range: [2, 4]}]
    dtype: float32

Every parameter may be a scalar, a gradient over the layers or a filter list
(:mod:`nbsupport.merging.settings`); precedence is mergekit's: a source's (model's)
``parameters``, then the slice's, then the config's.

``plan(cfg, layers)`` lists the output tensors in mergekit's order (the embeddings from the
first slice's sources, then each slice's layers renumbered from 0, then the final norm and
head from the last slice's sources), each with its input tensor names and its parameters
resolved for that tensor.

``dtype`` is the compute dtype, as in mergekit ("the data type used for the merging
operation"): every floating-point input tensor is cast to it before the method runs.
``out_dtype`` is the written dtype; without it the result is written in ``dtype`` (and
without either, in the inputs' dtype).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from nbsupport.merging.methods import GTA, LAYER_PATTERN, METHODS, NEEDS_BASE, layer_of
from nbsupport.merging.settings import check_setting, resolve
from nbsupport.merging.validate import MergeError, check_parameters

NAMED_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "float64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Per-model parameters (mergekit's NON_BASE / INPUT scope) and their defaults; all others are shared.
PER_MODEL = {"weight": 1.0, "density": 1.0, "gamma": 0.01, "epsilon": 0.15, "scale": None}
TOP_KEYS = {"models", "slices", "base_model", "merge_method", "parameters", "dtype", "out_dtype", "name",
            "tokenizer_source", "tokenizer", "chat_template"}
MODEL_KEYS = {"model", "parameters"}
SLICE_KEYS = {"sources", "base_model", "parameters"}
SOURCE_KEYS = {"model", "layer_range", "parameters"}


@dataclass(frozen=True)
class Source:
    """One input of a slice: a model path, its ``layer_range`` (None: all layers), its parameters."""

    path: Path
    layer_range: tuple[int, int] | None
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Slice:
    """One output slice: the non-base sources, the base source (or None) and shared parameters."""

    sources: tuple[Source, ...]
    base: Source | None
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Planned:
    """One output tensor: its name, the (model path, tensor name) of the base and of each
    model, and the parameters for :func:`nbsupport.merging.merge`."""

    name: str
    base: tuple[Path, str] | None
    models: tuple[tuple[Path, str], ...]
    params: dict[str, Any]


def load_config(config: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """The config as a dict and the folder relative paths are resolved against."""
    if isinstance(config, Mapping):
        return dict(config), Path.cwd()
    p = Path(config)
    if not p.is_file():
        raise MergeError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise MergeError(f"{p} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError:
        raise MergeError(f"{p} is not a text file (UTF-8 YAML expected)") from None
    if not isinstance(data, dict):
        raise MergeError(f"{p}: expected a mapping at the top level")
    return data, p.parent


def _resolve_path(ref: Any, root: Path) -> Path:
    if isinstance(ref, Mapping):  # mergekit also allows {model: path}
        ref = ref.get("model", ref.get("path"))
    if not isinstance(ref, (str, Path)) or not str(ref):
        raise MergeError(f"a model must be given as a path (or {{model: PATH}}), got {ref!r}")
    p = Path(str(ref))
    if not p.is_absolute() and not p.exists() and (root / p).exists():
        p = root / p
    return p


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MergeError(f"{where} must be a mapping like {{weight: 0.5}}, got {value!r}")
    return value


def _keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    bad = sorted(set(entry) - allowed)
    if bad:
        raise MergeError(f"{where}: unknown key(s) {', '.join(bad)}; allowed: {', '.join(sorted(allowed))}")


def _params(value: Any, where: str) -> Mapping[str, Any]:
    params = _mapping(value, where)
    for k, v in params.items():
        check_setting(v, f"{where}.{k}")
    return params


def _same(a: Path, b: Path | None) -> bool:
    return b is not None and a.resolve() == b.resolve()


def _layer_range(value: Any, where: str) -> tuple[int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value) or not 0 <= value[0] < value[1]):
        raise MergeError(f"{where}: layer_range must be [start, end) with 0 <= start < end, e.g. [0, 16]; got {value!r}")
    return int(value[0]), int(value[1])


def parse_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Check a mergekit-style config; returns ``method``, ``base`` (path or None), ``slices``
    (list of :class:`Slice`), ``mode`` (``"models"`` or ``"slices"``), ``params`` (the
    config's shared settings), ``dtype`` (compute) and ``out_dtype`` (written)."""
    cfg, root = load_config(config)
    _keys(cfg, TOP_KEYS, "config")
    method = cfg.get("merge_method")
    if method not in METHODS:
        raise MergeError(f"merge_method {method!r} is not one of {', '.join(METHODS)}")
    if method == "fisher":
        raise MergeError("fisher merging needs Fisher tensors; use nbsupport.merging.merge(..., fishers=...)")
    if ("models" in cfg) == ("slices" in cfg):
        raise MergeError("give exactly one of models (whole models) or slices (layer ranges), as in mergekit")
    base = _resolve_path(cfg["base_model"], root) if cfg.get("base_model") else None
    shared = _params(cfg.get("parameters"), "parameters")
    slices = _models_slice(cfg, root, base) if "models" in cfg else _slices(cfg, root, base, method)
    if method in NEEDS_BASE and any(s.base is None for s in slices):
        raise MergeError(f"merge_method {method!r} needs base_model" + (
            "" if "models" in cfg else " among each slice's sources (same layer_range length as the others)"))
    dtypes = {}
    for key in ("dtype", "out_dtype"):
        name = cfg.get(key)
        if name is not None and name not in NAMED_DTYPES:
            raise MergeError(f"{key} {name!r} is not one of {', '.join(NAMED_DTYPES)}")
        dtypes[key] = NAMED_DTYPES[name] if name else None
    return {"method": method, "base": base, "slices": slices, "mode": "models" if "models" in cfg else "slices",
            "params": shared, **dtypes}


def _models_slice(cfg: Mapping[str, Any], root: Path, base: Path | None) -> list[Slice]:
    entries = cfg["models"]
    if not isinstance(entries, list):
        raise MergeError("models must be a list of entries like {model: PATH, parameters: {weight: 1.0}}")
    if not entries:
        raise MergeError("config lists no models")
    sources = []
    for e in entries:
        path = _resolve_path(e, root)
        if isinstance(e, Mapping):
            _keys(e, MODEL_KEYS, f"model {path}")
        if _same(path, base):
            continue  # mergekit lets the base appear among the models
        params = _params(e.get("parameters"), f"{path}: parameters") if isinstance(e, Mapping) else {}
        sources.append(Source(path, None, params))
    return [Slice(tuple(sources), None if base is None else Source(base, None, {}), {})]


def _slices(cfg: Mapping[str, Any], root: Path, base: Path | None, method: str) -> list[Slice]:
    entries = cfg["slices"]
    if not isinstance(entries, list) or not entries:
        raise MergeError("slices must be a non-empty list of entries like "
                         "{sources: [{model: PATH, layer_range: [0, 8]}]}")
    out = []
    for i, s in enumerate(entries):
        where = f"slices[{i}]"
        if not isinstance(s, Mapping):
            raise MergeError(f"{where} must be a mapping with sources (and optionally base_model, parameters)")
        _keys(s, SLICE_KEYS, where)
        srcs = s.get("sources")
        if not isinstance(srcs, list) or not srcs:
            raise MergeError(f"{where}: sources must be a non-empty list of {{model: PATH, layer_range: [a, b]}}")
        slice_base = _resolve_path(s["base_model"], root) if s.get("base_model") else base
        sources, base_src, lengths = [], None, []
        for j, src in enumerate(srcs):
            w = f"{where}.sources[{j}]"
            if not isinstance(src, Mapping):
                raise MergeError(f"{w} must be a mapping like {{model: PATH, layer_range: [0, 8]}}")
            _keys(src, SOURCE_KEYS, w)
            lr = _layer_range(src.get("layer_range"), w)
            lengths.append(lr[1] - lr[0])
            entry = Source(_resolve_path(src.get("model"), root), lr, _params(src.get("parameters"), f"{w}.parameters"))
            if _same(entry.path, slice_base) and base_src is None and method in NEEDS_BASE | {"nuslerp"}:
                base_src = entry
            else:
                sources.append(entry)
        if len(set(lengths)) > 1:
            raise MergeError(f"{where}: its sources cover different numbers of layers {lengths}; give every "
                             "source a layer_range of the same length")
        if not sources:
            raise MergeError(f"{where} has only the base model as a source: add the models to merge")
        out.append(Slice(tuple(sources), base_src, _params(s.get("parameters"), f"{where}.parameters")))
    return out


# ---------------------------------------------------------------- the plan
def _renumber(name: str, layer: int, pattern: str = LAYER_PATTERN) -> str:
    m = re.search(pattern, name)
    return name[:m.start(1)] + str(layer) + name[m.end(1):]


def _is_pre(name: str) -> bool:
    """Tensors outside the layers that come before them (mergekit's pre-weights: token and
    position embeddings); the others (final norm, head) come after them."""
    return any(part in name for part in ("embed", "wte", "wpe"))


def _checked(key: str, value: Any, scopes: tuple[Mapping[str, Any] | None, ...], where: str, tensor: str) -> Any:
    """``value`` parsed and range-checked; the error names ``where`` and, when the setting is a
    gradient or filter list, the tensor it was resolved for."""
    try:
        return check_parameters({key: value})[key]
    except MergeError as exc:
        varies = any(s and key in s and isinstance(s[key], (list, tuple, Mapping)) for s in scopes)
        raise MergeError(f"{where}{exc}" + (f" (for tensor {tensor!r})" if varies else "")) from None


def _resolve_params(method: str, sl: Slice, shared: Mapping[str, Any], out_name: str,
                    in_names: list[str], t: float) -> dict[str, Any]:
    """The parameters of one output tensor: per-model lists and shared scalars."""
    params: dict[str, Any] = {}
    for key in PER_MODEL:
        vals = []
        for src, n in zip(sl.sources, in_names, strict=True):
            scopes = (src.params, sl.params, shared)
            v = resolve(key, scopes, n, t)
            vals.append(None if v is None else _checked(key, v, scopes, f"{src.path}: ", out_name))
        if all(v is None for v in vals):
            continue
        if any(v is None for v in vals):
            if key == "weight" and method in GTA:
                raise MergeError(f"tensor {out_name!r}: every model needs a weight for {method!r} (as in mergekit)")
            if PER_MODEL[key] is None:
                raise MergeError(f"tensor {out_name!r}: {key} is set for some models only; set it for every model")
            vals = [PER_MODEL[key] if v is None else v for v in vals]
        params[key] = vals if len(vals) > 1 or key != "scale" else vals[0]
    for key in {*sl.params, *shared} - set(PER_MODEL):
        v = resolve(key, (sl.params, shared), out_name, t)
        if v is not None:
            params[key] = _checked(key, v, (sl.params, shared), "", out_name)
    if params.get("trim_scope", "tensor") != "tensor":
        raise MergeError("trim_scope='model' needs the whole model in memory; use merge() instead")
    return params


def plan(cfg: Mapping[str, Any], names: Mapping[Path, list[str]]) -> list[Planned]:
    """The output tensors of a parsed config, given each model's tensor names (in file order).

    Raises :class:`MergeError` when a ``layer_range`` exceeds a model's layers or an input
    tensor is missing."""
    method, shared, slices = cfg["method"], cfg["params"], cfg["slices"]
    present = {p: set(ks) for p, ks in names.items()}
    n_layers = {p: max((v for v in (layer_of(k) for k in ks) if v is not None), default=-1) + 1
                for p, ks in names.items()}

    def planned(sl: Slice, out_name: str, in_names: list[str], t: float) -> Planned:
        srcs = ([sl.base] if sl.base is not None else []) + list(sl.sources)
        for src, n in zip(srcs, in_names, strict=True):
            if n not in present[src.path]:
                raise MergeError(f"{src.path} has no tensor {n!r} (needed for {out_name!r})")
        b = (sl.base.path, in_names[0]) if sl.base is not None else None
        m_names = in_names[1:] if sl.base is not None else in_names
        params = _resolve_params(method, sl, shared, out_name, m_names, t)
        return Planned(out_name, b, tuple((s.path, n) for s, n in zip(sl.sources, m_names, strict=True)), params)

    first = slices[0].base or slices[0].sources[0]
    ref_names = names[first.path]
    out: list[Planned] = []
    if cfg["mode"] == "models":
        sl = slices[0]
        n = n_layers[first.path]
        for k in ref_names:
            layer = layer_of(k)
            t = 0.0 if layer is None else (layer / (n - 1) if n > 1 else 1.0)
            out.append(planned(sl, k, [k] * (len(sl.sources) + (sl.base is not None)), t))
        return out
    for sl in slices:
        for src in ([sl.base] if sl.base is not None else []) + list(sl.sources):
            if src.layer_range[1] > n_layers[src.path]:
                raise MergeError(f"layer_range {list(src.layer_range)} of {src.path} exceeds its "
                                 f"{n_layers[src.path]} layers; use an end of at most {n_layers[src.path]}")
    outside = [k for k in ref_names if layer_of(k) is None]
    n_src = [len(s.sources) + (s.base is not None) for s in slices]
    out += [planned(slices[0], k, [k] * n_src[0], 0.0) for k in outside if _is_pre(k)]
    layer_out = 0
    for sl in slices:
        srcs = ([sl.base] if sl.base is not None else []) + list(sl.sources)
        length = srcs[0].layer_range[1] - srcs[0].layer_range[0]
        for i in range(length):
            t = i / (length - 1) if length > 1 else 1.0
            lead = srcs[0]
            for k in names[lead.path]:
                if layer_of(k) != lead.layer_range[0] + i:
                    continue
                in_names = [_renumber(k, s.layer_range[0] + i) for s in srcs]
                out.append(planned(sl, _renumber(k, layer_out), in_names, t))
            layer_out += 1
    out += [planned(slices[-1], k, [k] * n_src[-1], 0.0) for k in outside if not _is_pre(k)]
    return out


def out_layers(cfg: Mapping[str, Any]) -> int | None:
    """The output's number of layers for a ``slices:`` config (None for a ``models:`` one)."""
    if cfg["mode"] != "slices":
        return None
    return sum(s.sources[0].layer_range[1] - s.sources[0].layer_range[0] for s in cfg["slices"])

