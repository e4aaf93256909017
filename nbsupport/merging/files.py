"""Streaming merges of safetensors checkpoints, configured like mergekit.

``merge_files(config, out_dir)`` reads one tensor of every input model at a time (plain
file reads at the offsets in each safetensors header, no memory map, so resident memory
stays near one tensor per input model), merges it with :func:`nbsupport.merging.merge`, and
streams it into sharded safetensors files whose headers are written first (the output
shapes are known from the base). Everything is checked before anything is written; the
output is assembled in a hidden sibling folder and renamed into place at the end, so an
interrupted merge leaves nothing half-written at ``out_dir``.

The YAML (or dict) follows mergekit::

    merge_method: ties
    base_model: path/to/base          # a folder with *.safetensors (+ index) or one file
    models:
      - model: path/to/a
        parameters: {weight: 0.5, density: 0.5}
      - model: path/to/b
        parameters: {weight: 0.5, density: 0.5}
    parameters: {normalize: true, lambda: 1.0}   # shared, and defaults for per-model ones
    dtype: float32                    # output dtype (out_dtype also accepted)
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from nbsupport.merging.methods import (
    GTA,
    LAYER_PATTERN,
    METHODS,
    NEEDS_BASE,
    MergeError,
    check_density,
    layer_of,
    merge,
)

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
CODES = {v: k for k, v in DTYPES.items()}
NAMED_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "float64": torch.float64, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PER_MODEL = ("weight", "density", "gamma")
TOP_KEYS = {"models", "base_model", "merge_method", "parameters", "dtype", "out_dtype", "name",
            "tokenizer_source", "tokenizer", "chat_template"}
COPY_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt")


# ---------------------------------------------------------------- reading
class SafetensorsFile:
    """Header and tensors of one safetensors file, read one tensor at a time (no mmap)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        self.metadata = header.pop("__metadata__", None)
        self.start = 8 + n
        self.header = header

    def info(self, name: str) -> tuple[torch.dtype, tuple[int, ...]]:
        h = self.header[name]
        if h["dtype"] not in DTYPES:
            raise MergeError(f"{self.path}: tensor {name!r} has unsupported dtype {h['dtype']}")
        return DTYPES[h["dtype"]], tuple(h["shape"])

    def read(self, name: str) -> torch.Tensor:
        dtype, shape = self.info(name)
        b, e = self.header[name]["data_offsets"]
        buf = bytearray(e - b)
        if e > b:
            with open(self.path, "rb") as f:
                f.seek(self.start + b)
                if f.readinto(buf) != e - b:
                    raise MergeError(f"{self.path} is truncated at tensor {name!r}")
            return torch.frombuffer(buf, dtype=dtype).reshape(shape)
        return torch.empty(shape, dtype=dtype)


class Checkpoint:
    """A model: a folder holding ``*.safetensors`` (sharded with an index or not) or one file."""

    def __init__(self, path: str | Path):
        p = Path(path)
        if not p.exists():
            raise MergeError(f"model not found: {p}")
        self.path = p
        if p.is_file():
            files = [p]
        elif (p / "model.safetensors.index.json").exists():
            index = json.loads((p / "model.safetensors.index.json").read_text())
            files = sorted({p / f for f in index["weight_map"].values()})
        else:
            files = sorted(p.glob("*.safetensors"))
        if not files:
            raise MergeError(f"no .safetensors files in {p}")
        self.where: dict[str, SafetensorsFile] = {}
        for f in files:
            st = SafetensorsFile(f)
            for k in st.header:
                self.where[k] = st

    def names(self) -> list[str]:
        return list(self.where)

    def info(self, name: str) -> tuple[torch.dtype, tuple[int, ...]]:
        return self.where[name].info(name)

    def read(self, name: str) -> torch.Tensor:
        return self.where[name].read(name)


# ---------------------------------------------------------------- writing
def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n * torch.empty((), dtype=dtype).element_size()


def plan_shards(specs: list[tuple[str, torch.dtype, tuple[int, ...]]], max_shard_bytes: int) -> list[list[int]]:
    """Consecutive groups of tensor indices, each at most ``max_shard_bytes`` (one tensor at least)."""
    shards, cur, size = [], [], 0
    for i, (_, dt, shape) in enumerate(specs):
        b = _nbytes(dt, shape)
        if cur and size + b > max_shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += b
    if cur:
        shards.append(cur)
    return shards


class ShardWriter:
    """Writes one safetensors file whose header is known before its tensors arrive."""

    def __init__(self, path: Path, specs: list[tuple[str, torch.dtype, tuple[int, ...]]]):
        header, off = {}, 0
        for name, dt, shape in specs:
            b = _nbytes(dt, shape)
            header[name] = {"dtype": CODES[dt], "shape": list(shape), "data_offsets": [off, off + b]}
            off += b
        header["__metadata__"] = {"format": "pt"}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self.expected = [(name, dt, tuple(shape)) for name, dt, shape in specs]
        self.f = open(path, "wb")
        self.f.write(struct.pack("<Q", len(raw)))
        self.f.write(raw)
        self.i = 0

    def write(self, name: str, t: torch.Tensor) -> None:
        ename, dt, shape = self.expected[self.i]
        if name != ename or t.dtype != dt or tuple(t.shape) != shape:
            raise RuntimeError(f"writer expected {ename} {dt} {shape}, got {name} {t.dtype} {tuple(t.shape)}")
        if t.numel():
            self.f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self.i += 1

    def close(self) -> None:
        self.f.close()


# ---------------------------------------------------------------- config
def load_config(config: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """The config as a dict and the folder relative paths are resolved against."""
    if isinstance(config, Mapping):
        return dict(config), Path.cwd()
    p = Path(config)
    if not p.exists():
        raise MergeError(f"config file not found: {p}")
    data = yaml.safe_load(p.read_text())
    if not isinstance(data, dict):
        raise MergeError(f"{p}: expected a mapping at the top level")
    return data, p.parent


def _resolve(ref: Any, root: Path) -> Path:
    if isinstance(ref, Mapping):  # mergekit also allows {model: path}
        ref = ref.get("model", ref.get("path"))
    p = Path(str(ref))
    if not p.is_absolute() and not p.exists() and (root / p).exists():
        p = root / p
    return p


def _scalar(v: Any, where: str) -> Any:
    if isinstance(v, (list, tuple, Mapping)):
        raise MergeError(f"{where}: per-layer gradients and filters are not supported; give a number")
    return v


def parse_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a mergekit-style config: method, paths, per-model and shared parameters."""
    cfg, root = load_config(config)
    unknown = set(cfg) - TOP_KEYS
    if "slices" in cfg:
        raise MergeError("'slices' configs are not supported; list whole models under 'models'")
    if unknown:
        raise MergeError(f"unknown config keys {sorted(unknown)}")
    method = cfg.get("merge_method")
    if method not in METHODS:
        raise MergeError(f"merge_method {method!r} is not one of {', '.join(METHODS)}")
    if method == "fisher":
        raise MergeError("fisher merging needs Fisher tensors; use nbsupport.merging.merge(..., fishers=...)")
    base = _resolve(cfg["base_model"], root) if cfg.get("base_model") else None
    if method in NEEDS_BASE and base is None:
        raise MergeError(f"merge_method {method!r} needs base_model")
    shared = {k: _scalar(v, f"parameters.{k}") for k, v in (cfg.get("parameters") or {}).items()}
    if shared.get("trim_scope", "tensor") != "tensor":
        raise MergeError("trim_scope='model' needs the whole model in memory; use merge() instead")
    entries = cfg.get("models") or []
    if not entries:
        raise MergeError("config lists no models")
    models, per = [], {k: [] for k in PER_MODEL}
    for e in entries:
        path = _resolve(e, root)
        if base is not None and path.resolve() == base.resolve():
            continue  # mergekit lets the base appear among the models
        params = (e.get("parameters") or {}) if isinstance(e, Mapping) else {}
        models.append(path)
        for k in PER_MODEL:
            v = params.get(k, shared.get(k))
            per[k].append(None if v is None else float(_scalar(v, f"{path}: {k}")))
    params = {k: v for k, v in shared.items() if k not in PER_MODEL}
    for k, vals in per.items():
        if any(v is not None for v in vals):
            if k == "weight" and any(v is None for v in vals) and method in GTA:
                raise MergeError(f"every model needs a weight for {method!r} (as in mergekit)")
            default = {"weight": 1.0, "density": 1.0, "gamma": 0.01}[k]
            params[k] = [default if v is None else v for v in vals]
    if "density" in params:
        check_density(params["density"])
    dtype = cfg.get("out_dtype") or cfg.get("dtype")
    if dtype is not None and dtype not in NAMED_DTYPES:
        raise MergeError(f"dtype {dtype!r} is not one of {', '.join(NAMED_DTYPES)}")
    return {"method": method, "base": base, "models": models, "params": params,
            "dtype": NAMED_DTYPES.get(dtype) if dtype else None}


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    s = str(size).strip().upper().rstrip("B")
    mult = {"K": 1e3, "M": 1e6, "G": 1e9}.get(s[-1:], 1)
    return int(float(s[:-1] if s[-1:] in "KMG" else s) * mult)


# ---------------------------------------------------------------- merge_files
def merge_files(
    config: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    max_shard_size: int | str = "2GB",
    overwrite: bool = False,
    impl: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Merge safetensors checkpoints one tensor at a time; returns a summary dict.

    Writes ``model-0000i-of-0000n.safetensors`` plus ``model.safetensors.index.json`` (and
    copies ``config.json`` / tokenizer files from the base) into ``out_dir``. Raises
    :class:`MergeError` before writing anything when names, shapes or parameters do not fit.
    """
    cfg = parse_config(config)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise MergeError(f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)")
    base = Checkpoint(cfg["base"]) if cfg["base"] is not None else None
    models = [Checkpoint(p) for p in cfg["models"]]
    ref = base or models[0]
    names = ref.names()
    for ck in models + ([base] if base else []):
        if set(ck.names()) != set(names):
            diff = sorted(set(names) ^ set(ck.names()))
            raise MergeError(f"{ck.path}: tensor names differ from {ref.path}: {diff[:5]}")
        for k in names:
            if ck.info(k)[1] != ref.info(k)[1]:
                raise MergeError(f"{ck.path}: tensor {k!r} has shape {ck.info(k)[1]}, {ref.path} has {ref.info(k)[1]}")
    params = dict(cfg["params"])
    if impl:
        params["impl"] = impl
    if cfg["method"] == "layer_swap":
        pattern = params.get("layer_pattern", LAYER_PATTERN)
        layers = [v for v in (layer_of(k, pattern) for k in names) if v is not None]
        params["n_layers"] = max(layers) + 1 if layers else 0
    # a dry run of the method on the first tensor's metadata catches bad parameters early
    if cfg["method"] != "layer_swap":
        merge(cfg["method"], {"x": torch.zeros(2)} if base else None, [{"x": torch.zeros(2)}] * len(models),
              **{k: v for k, v in params.items() if k != "impl"})

    def out_dtype(k: str) -> torch.dtype:
        dt = ref.info(k)[0]
        return cfg["dtype"] if cfg["dtype"] is not None and dt.is_floating_point else dt

    specs = [(k, out_dtype(k), ref.info(k)[1]) for k in names]
    shards = plan_shards(specs, _parse_size(max_shard_size))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    weight_map, total = {}, 0
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), desc=f"merge {cfg['method']}", disable=not progress)
        for si, idx in enumerate(shards):
            fname = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
            w = ShardWriter(tmp / fname, [specs[i] for i in idx])
            for i in idx:
                k, dt, _ = specs[i]
                b = {k: base.read(k)} if base else None
                ms = [{k: m.read(k)} for m in models]
                t = merge(cfg["method"], b, ms, **params)[k]
                del b, ms
                w.write(k, t.to(dt))
                weight_map[k] = fname
                total += _nbytes(dt, tuple(t.shape))
                bar.update()
            w.close()
        bar.close()
        (tmp / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        src = ref.path if ref.path.is_dir() else ref.path.parent
        for f in COPY_FILES:
            if (src / f).exists():
                shutil.copy2(src / f, tmp / f)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"method": cfg["method"], "out_dir": str(out_dir), "tensors": len(names), "shards": len(shards),
            "bytes": total}
