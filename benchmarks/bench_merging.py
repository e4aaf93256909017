"""Model merging benchmarks.

1. ``merge_files`` (``python -m nbsupport.merging``) against mergekit (``mergekit-yaml``) on the same
   three generated Llama-layout safetensors checkpoints of ~1.16 GB each (float32, sharded with an
   index), for linear, task_arithmetic, ties and breadcrumbs: wall time and peak resident memory of
   each command (``wait4`` rusage of the child process, the whole process including the
   interpreter), and the largest absolute difference between the two outputs, tensor by tensor.
   Checkpoints are generated once under ``data/cache/bench`` (gitignored). Results:
   ``results/merging_files.json`` / ``.md``.
2. The TIES / DARE / Breadcrumbs merge core on three 100M-element task vectors: the float32
   reference against the CPU fast path (and Triton on CUDA), through ``harness.run_cases``.
   Results: ``results/merge_core.json`` / ``.md``.

``BENCH_MERGING_SMALL=1`` runs part 1 on small checkpoints and part 2 on 1M elements (a quick check).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import torch
import yaml
from harness import RESULTS, devices, kernel_paths, run_cases

ROOT = Path(__file__).resolve().parent.parent
SMALL = os.environ.get("BENCH_MERGING_SMALL") == "1"
BENCH = ROOT / "data" / "cache" / ("bench_small" if SMALL else "bench")
# Llama layout mergekit knows; ~290M float32 parameters = 1.16 GB per checkpoint
CFG = dict(hidden=256, inter=704, vocab=1024, layers=2) if SMALL else dict(hidden=2048, inter=5632, vocab=8192, layers=5)
CORE_N = 1_000_000 if SMALL else 100_000_000
METHODS = {
    "linear": {"models": ["base", "a", "b"], "weights": [0.5, 0.3, 0.2], "base": False, "params": {}},
    "task_arithmetic": {"models": ["a", "b"], "weights": [0.7, 0.5], "base": True, "params": {}},
    "ties": {"models": ["a", "b"], "weights": [1.0, 0.8], "base": True, "params": {"density": 0.3}},
    "breadcrumbs": {"models": ["a", "b"], "weights": [1.0, 1.0], "base": True, "params": {"density": 0.5, "gamma": 0.01}},
}


def llama_shapes() -> dict[str, tuple[int, ...]]:
    h, f, v = CFG["hidden"], CFG["inter"], CFG["vocab"]
    out = {"model.embed_tokens.weight": (v, h)}
    for i in range(CFG["layers"]):
        p = f"model.layers.{i}."
        out.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)})
        for n in ("q", "k", "v", "o"):
            out[p + f"self_attn.{n}_proj.weight"] = (h, h)
        out.update({p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h), p + "mlp.down_proj.weight": (h, f)})
    out.update({"model.norm.weight": (h,), "lm_head.weight": (v, h)})
    return out


def make_checkpoints() -> dict[str, Path]:
    """base, a = base + 0.01·noise, b = base + 0.01·noise (two shards + index + config each)."""
    from safetensors.torch import save_file

    paths = {n: BENCH / n for n in ("base", "a", "b")}
    if all((p / "model.safetensors.index.json").exists() for p in paths.values()):
        return paths
    shapes = llama_shapes()
    names = list(shapes)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": CFG["hidden"],
              "intermediate_size": CFG["inter"], "num_hidden_layers": CFG["layers"], "num_attention_heads": 16,
              "num_key_value_heads": 16, "vocab_size": CFG["vocab"], "rms_norm_eps": 1e-5, "torch_dtype": "float32",
              "tie_word_embeddings": False, "max_position_embeddings": 2048}
    for j, path in enumerate(paths.values()):
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        halves = [names[: len(names) // 2], names[len(names) // 2:]]
        wm = {}
        for s, part in enumerate(halves):
            fname = f"model-{s + 1:05d}-of-00002.safetensors"
            tensors = {}
            for k in part:
                g = torch.Generator().manual_seed(zlib.crc32(k.encode()))
                t = torch.randn(shapes[k], generator=g) * 0.02
                if j > 0:
                    g2 = torch.Generator().manual_seed(zlib.crc32(k.encode()) + 7919 * j)
                    t += 0.01 * torch.randn(shapes[k], generator=g2)
                tensors[k] = t
                wm[k] = fname
            save_file(tensors, str(path / fname), metadata={"format": "pt"})
            del tensors
        total = sum(torch.Size(s).numel() * 4 for s in shapes.values())
        (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": wm}))
        (path / "config.json").write_text(json.dumps(config))
    return paths


def config_for(method: str, paths: dict[str, Path]) -> dict:
    m = METHODS[method]
    cfg = {"merge_method": method, "dtype": "float32",
           "models": [{"model": str(paths[n]), "parameters": {"weight": w, **m["params"]}}
                      for n, w in zip(m["models"], m["weights"], strict=True)]}
    if m["base"]:
        cfg["base_model"] = str(paths["base"])
    return cfg


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def max_abs_diff(a: Path, b: Path) -> float:
    from nbsupport.merging.files import Checkpoint

    ca, cb = Checkpoint(a), Checkpoint(b)
    if set(ca.names()) != set(cb.names()):
        return float("inf")
    return max(float((ca.read(k).float() - cb.read(k).float()).abs().max()) for k in ca.names())


def bench_files() -> list[dict]:
    paths = make_checkpoints()
    work = BENCH / "runs"
    bin_dir = Path(sys.executable).parent
    rows = []
    for method in METHODS:
        cfg_path = work / f"{method}.yaml"
        work.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(yaml.safe_dump(config_for(method, paths)))
        outs = {"nbsupport": work / f"out_nbsupport_{method}", "mergekit": work / f"out_mergekit_{method}"}
        cmds = {"nbsupport": [sys.executable, "-m", "nbsupport.merging", str(cfg_path), str(outs["nbsupport"]),
                              "--overwrite", "--quiet"],
                "mergekit": [str(bin_dir / "mergekit-yaml"), str(cfg_path), str(outs["mergekit"]), "--no-cuda",
                             "--quiet", "--no-copy-tokenizer", "--no-write-model-card", "--lazy-unpickle"]}
        measured = {}
        for tool in ("mergekit", "nbsupport"):
            shutil.rmtree(outs[tool], ignore_errors=True)
            try:
                wall, rss = run_measured(cmds[tool])
                measured[tool] = {"case": f"{method} (3 x {sum(torch.Size(s).numel() for s in llama_shapes().values()) * 4 / 1e9:.2f} GB)",
                                  "impl": tool, "seconds": wall, "peak_mb": rss}
            except Exception as e:  # noqa: BLE001 - reported in the table
                measured[tool] = {"case": method, "impl": tool, "error": str(e)}
        if all("seconds" in r for r in measured.values()):
            measured["nbsupport"]["max_abs_diff_vs_mergekit"] = max_abs_diff(outs["nbsupport"], outs["mergekit"])
        rows += [measured["mergekit"], measured["nbsupport"]]
        for tool in outs:
            shutil.rmtree(outs[tool], ignore_errors=True)
        print(rows[-2], rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "merging_files.json").write_text(json.dumps(rows, indent=1))
    head = ("### merging_files\n\nWhole-process wall time and peak RSS of one merge command; the difference is the "
            "largest |nbsupport - mergekit| over all output tensors (float32).\n\n"
            "| case | tool | wall (s) | peak RSS (MB) | speed-up vs mergekit | max abs diff |\n|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['impl']} | error: {r['error']} | | | |")
            continue
        ref = next(x for x in rows if x["case"] == r["case"] and x["impl"] == "mergekit")
        speed = ref["seconds"] / r["seconds"] if "seconds" in ref else float("nan")
        diff = r.get("max_abs_diff_vs_mergekit")
        lines.append(f"| {r['case']} | {r['impl']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {speed:.2f}x | "
                     f"{'' if diff is None else f'{diff:.2e}'} |")
    (RESULTS / "merging_files.md").write_text(head + "\n".join(lines) + "\n")
    return rows


def make_core(impl: str, method: str, device: str = "cpu"):
    """A zero-argument merge of three CORE_N-element task vectors through one path."""
    from nbsupport.kernels.merge_core import merge_core
    from nbsupport.merging.selection import magnitude_bounds, stream_seeds

    g = torch.Generator().manual_seed(0)
    d = torch.randn(3, CORE_N, generator=g).to(device)
    bounds = [(0.0, float("inf"))] * 3
    drop, consensus = [0.0] * 3, "sum"
    if method == "ties":
        bounds = [magnitude_bounds(d[i], 0.2) for i in range(3)]
    elif method == "breadcrumbs":
        bounds = [magnitude_bounds(d[i], 0.5, 0.01) for i in range(3)]
        consensus = None
    elif method == "dare_ties":
        drop = [0.9] * 3
    lo, hi = [b[0] for b in bounds], [b[1] for b in bounds]
    args = dict(weights=[1.0, 0.8, 0.6], lo=lo, hi=hi, drop=drop, seeds=stream_seeds(0, 3, "x"),
                consensus=consensus, normalize=True)
    return lambda: merge_core(d, impl=impl, **args)


def bench_core() -> None:
    devs = devices()
    cases = []
    for dev in devs:
        impls = kernel_paths(dev)
        for method in ("ties", "dare_ties", "breadcrumbs"):
            cases += [{"case": f"{method} 3x{CORE_N / 1e6:g}M {dev}", "impl": i, "make": "make_core",
                       "params": {"impl": i, "method": method, "device": dev}} for i in impls]
    run_cases("merge_core", __file__, cases, repeat=1 if not SMALL else 3, timeout=1800)


def main() -> None:
    bench_core()
    bench_files()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
