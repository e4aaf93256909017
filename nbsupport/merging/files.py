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
        parameters: {weight: 0.5, density: [0.3, 0.7]}   # a gradient over the layers
    parameters: {normalize: true, lambda: 1.0}   # shared, and defaults for per-model ones
    dtype: float16                    # compute dtype: inputs are cast to it before merging
    out_dtype: float32                # written dtype (default: dtype)

``slices:`` configs, gradients and filter lists are described in
:mod:`nbsupport.merging.config` and :mod:`nbsupport.merging.settings`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import torch

from nbsupport.atomic import current_umask
from nbsupport.merging.config import out_layers, parse_config, plan
from nbsupport.merging.methods import layer_of, merge
from nbsupport.merging.validate import MergeError, check_finite

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
CODES = {v: k for k, v in DTYPES.items()}
COPY_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt")


# ---------------------------------------------------------------- reading
LFS_POINTER = b"version https://git-lfs"
MAX_HEADER = 100_000_000  # bytes; the safetensors library refuses larger headers too


class SafetensorsFile:
    """Header and tensors of one safetensors file, read one tensor at a time (no mmap).

    The header is checked against the file before anything is trusted: its length fits in
    the file, it is JSON, and every tensor's byte range lies inside the data and matches its
    dtype and shape; a git-lfs pointer (the usual wrong file) is named as such."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(max(8, len(LFS_POINTER)))
            if head.startswith(LFS_POINTER):
                raise MergeError(f"{self.path} is a git-lfs pointer, not the weights: run `git lfs pull` "
                                 "in its repository (or download the file itself)")
            if size < 8:
                raise MergeError(f"{self.path} has {size} bytes: not a safetensors file (empty or truncated)")
            (n,) = struct.unpack("<Q", head[:8])
            if n > min(size - 8, MAX_HEADER):
                raise MergeError(f"{self.path} is not a safetensors file: its header length {n} does not fit "
                                 f"in the file's {size} bytes (a truncated download?)")
            f.seek(8)
            try:
                header = json.loads(f.read(n))
            except (ValueError, UnicodeDecodeError):
                raise MergeError(f"{self.path} is not a safetensors file: its header is not JSON") from None
        if not isinstance(header, dict):
            raise MergeError(f"{self.path} is not a safetensors file: its header is not a JSON object")
        self.metadata = header.pop("__metadata__", None)
        self.start = 8 + n
        self.header = header
        for name in header:
            self._check_entry(name, size - self.start)

    def _check_entry(self, name: str, data_bytes: int) -> None:
        h = self.header[name]
        try:
            b, e = h["data_offsets"]
            shape = tuple(int(s) for s in h["shape"])
            ok = isinstance(h["dtype"], str) and 0 <= b <= e <= data_bytes and all(s >= 0 for s in shape)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise MergeError(f"{self.path}: tensor {name!r} has a broken header entry {h!r} "
                             f"(the data holds {data_bytes} bytes; a truncated file?)")
        if h["dtype"] in DTYPES and e - b != _nbytes(DTYPES[h["dtype"]], shape):
            raise MergeError(f"{self.path}: tensor {name!r} spans {e - b} bytes, its dtype and shape need "
                             f"{_nbytes(DTYPES[h['dtype']], shape)}")

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
            files = _indexed_files(p / "model.safetensors.index.json")
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


def _indexed_files(index_path: Path) -> list[Path]:
    """The shard files a ``model.safetensors.index.json`` lists (each must exist)."""
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        files = sorted({index_path.parent / f for f in weight_map.values()})
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise MergeError(f"{index_path} is not a safetensors index (JSON with a weight_map)") from None
    for f in files:
        if not f.is_file():
            raise MergeError(f"{index_path} lists {f.name}, which is missing")
    return files


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


# ---------------------------------------------------------------- output
def parse_size(size: int | str) -> int:
    """``2GB``, ``500MB``, ``64KB`` or a byte count -> bytes (decimal units, as mergekit)."""
    s = str(size).strip().upper().removesuffix("B")
    mult = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}.get(s[-1:], 1)
    try:
        n = int(float(s[:-1] if mult > 1 else s) * mult)
    except ValueError:
        n = 0
    if isinstance(size, bool) or n < 1:
        raise MergeError(f"max shard size {size!r}: give a positive size like 2GB, 500MB or a byte count")
    return n


def check_output(out_dir: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output folder that is a file, is not empty (without ``overwrite``), or is,
    contains or lies inside an input model: replacing it would destroy that input."""
    if out_dir.exists() and not out_dir.is_dir():
        raise MergeError(f"{out_dir} is a file; give a folder for the merged model")
    out = out_dir.resolve()
    for p in inputs:
        q = p.resolve()
        if out == q or q.is_relative_to(out) or out.is_relative_to(q):
            raise MergeError(f"output folder {out_dir} overlaps the input {p}: choose a folder outside every input")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise MergeError(f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)")


def _reap_stale(out_dir: Path) -> None:
    """Remove hidden ``.NAME.partial-PID-*`` / ``.NAME.old-PID-*`` folders of ``out_dir`` whose
    merge process is gone (a killed merge leaves them; a running one keeps its own)."""
    for d in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*-*"):
        kind, _, rest = d.name[len(out_dir.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind in ("partial", "old") and d.is_dir() and not (pid.isdigit() and psutil.pid_exists(int(pid))):
            shutil.rmtree(d, ignore_errors=True)


def _hidden_dir(out_dir: Path, kind: str) -> Path:
    """A hidden sibling of ``out_dir`` named with this process's id, with the umask's mode."""
    try:
        d = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{kind}-{os.getpid()}-", dir=out_dir.parent))
    except OSError as exc:
        raise MergeError(f"cannot write next to {out_dir} ({exc.strerror}): choose a writable folder") from None
    os.chmod(d, 0o777 & ~current_umask())  # mkdtemp makes 0700
    return d


# ---------------------------------------------------------------- merge_files
def _n_layers_key(config: dict[str, Any]) -> str | None:
    return next((k for k in ("num_hidden_layers", "n_layer", "num_layers") if k in config), None)


def _write_model_config(src: Path, tmp: Path, layers: int | None, dtype: torch.dtype | None) -> None:
    """``config.json`` of ``src`` with mergekit's edits: the layer count of a ``slices:`` merge
    and the written dtype; copied as it is when neither applies."""
    if not (src / "config.json").exists():
        return
    if layers is None and dtype is None:
        shutil.copy2(src / "config.json", tmp / "config.json")
        return
    try:
        config = json.loads((src / "config.json").read_text())
    except (ValueError, UnicodeDecodeError):
        raise MergeError(f"{src / 'config.json'} is not JSON: fix it or remove it") from None
    if layers is not None:
        config[_n_layers_key(config) or "num_hidden_layers"] = layers
    if dtype is not None:  # "dtype" (transformers >= 5, as mergekit writes); "torch_dtype" kept in step
        for key in ("dtype", *(("torch_dtype",) if "torch_dtype" in config else ())):
            config[key] = str(dtype).removeprefix("torch.")
    (tmp / "config.json").write_text(json.dumps(config, indent=2))


def _check_same_names(ref: Checkpoint, cks: list[Checkpoint]) -> None:
    names = ref.names()
    for ck in cks:
        if set(ck.names()) != set(names):
            diff = sorted(set(names) ^ set(ck.names()))
            raise MergeError(f"{ck.path}: tensor names differ from {ref.path}: {diff[:5]}")


def merge_files(
    config: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    max_shard_size: int | str = "2GB",
    overwrite: bool = False,
    impl: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Merge safetensors checkpoints one tensor at a time; returns a summary dict.

    Accepts mergekit's ``models:`` and ``slices:`` configs, parameters as scalars, gradients
    over the layers and filter lists (:mod:`nbsupport.merging.config`). Floating-point inputs
    are cast to ``dtype`` (the compute dtype) before the method runs; the result is written in
    ``out_dtype`` (default: ``dtype``; without either, the inputs' dtype), as mergekit does.
    Writes ``model-0000i-of-0000n.safetensors`` plus ``model.safetensors.index.json`` (and
    ``config.json`` / tokenizer files from the base or the first model; a ``slices:`` merge
    gets its layer count) into ``out_dir``. Raises :class:`MergeError` before writing
    anything when names, shapes, layer ranges or parameters do not fit.
    """
    cfg = parse_config(config)
    shard_bytes = parse_size(max_shard_size)
    out_dir = Path(out_dir)
    paths = {s.path for sl in cfg["slices"] for s in ((sl.base,) if sl.base else ()) + sl.sources}
    check_output(out_dir, sorted(paths), overwrite)
    cks = {p: Checkpoint(p) for p in sorted(paths)}
    first = cfg["slices"][0].base or cfg["slices"][0].sources[0]
    ref = cks[first.path]
    if cfg["mode"] == "models":
        _check_same_names(ref, list(cks.values()))
    tensors = plan(cfg, {p: ck.names() for p, ck in cks.items()})
    method = cfg["method"]
    layers = [v for v in (layer_of(k) for k in ref.names()) if v is not None]
    checked: set[str] = set()
    for t in tensors:
        (p0, n0), *rest = ((t.base,) if t.base else ()) + t.models
        for p, n in rest:
            if cks[p].info(n)[1] != cks[p0].info(n0)[1]:
                raise MergeError(f"{p}: tensor {n!r} has shape {cks[p].info(n)[1]}, {p0} has {cks[p0].info(n0)[1]} "
                                 f"(for the output tensor {t.name!r})")
        if method == "layer_swap":
            t.params["n_layers"] = max(layers) + 1 if layers else 0
        key = repr(sorted(t.params.items()))
        if key not in checked:  # a dry run on a tiny tensor catches bad parameters before writing
            checked.add(key)
            x = {"x": torch.zeros(2)}
            try:
                merge(method, x if t.base else None, [x] * len(t.models), **t.params)
            except MergeError as exc:
                raise MergeError(f"tensor {t.name!r}: {exc}") from None
        if impl:
            t.params["impl"] = impl

    def out_dtype(p: Path, n: str) -> torch.dtype:
        dt = cks[p].info(n)[0]
        want = cfg["out_dtype"] or cfg["dtype"]
        return want if want is not None and dt.is_floating_point else dt

    def read(p: Path, n: str) -> torch.Tensor:
        x = check_finite(cks[p].read(n), f"{p}: tensor {n!r}")
        return x.to(cfg["dtype"]) if cfg["dtype"] is not None and x.is_floating_point() else x

    lead = [t.base or t.models[0] for t in tensors]
    specs = [(t.name, out_dtype(*src), cks[src[0]].info(src[1])[1]) for t, src in zip(tensors, lead, strict=True)]
    shards = plan_shards(specs, shard_bytes)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MergeError(f"cannot make {out_dir.parent} ({exc.strerror}): choose a writable folder") from None
    _reap_stale(out_dir)
    tmp = _hidden_dir(out_dir, "partial")
    weight_map, total = {}, 0
    try:
        from nbsupport.progress import progress as tqdm

        bar = tqdm(total=len(tensors), desc=f"merge {method}", disable=not progress)
        for si, idx in enumerate(shards):
            fname = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
            w = ShardWriter(tmp / fname, [specs[i] for i in idx])
            for i in idx:
                t, (k, dt, _) = tensors[i], specs[i]
                b = {k: read(*t.base)} if t.base else None
                ms = [{k: read(*m)} for m in t.models]
                merged = check_finite(merge(method, b, ms, **t.params)[k].to(dt),
                                      f"the merged tensor {k!r} (overflow in {dt}?)")
                del b, ms
                w.write(k, merged)
                weight_map[k] = fname
                total += _nbytes(dt, tuple(merged.shape))
                bar.update()
            w.close()
        bar.close()
        (tmp / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        src = ref.path if ref.path.is_dir() else ref.path.parent
        _write_model_config(src, tmp, out_layers(cfg), cfg["out_dtype"] or cfg["dtype"])
        for f in COPY_FILES:
            if f != "config.json" and (src / f).exists():
                shutil.copy2(src / f, tmp / f)
        if out_dir.exists():
            old = _hidden_dir(out_dir, "old")
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"method": method, "out_dir": str(out_dir), "tensors": len(tensors), "shards": len(shards),
            "bytes": total}
