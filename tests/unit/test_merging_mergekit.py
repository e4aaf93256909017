"""merge_files against mergekit itself on tiny Llama-layout checkpoints (4 layers, hidden 16).

Every config runs through ``mergekit.merge.run_merge`` in-process (CPU, no lazy unpickling)
and through ``nbsupport.merging.merge_files``; the written tensors are compared. float32:
bit-equal, except SLERP, Karcher and SCE, equal to 1e-6 (see ``ROUNDED``; measured 5e-7). float16 / bfloat16 compute: mergekit runs every op in that dtype; we cast the inputs to
it (so the same inputs) and compute in float32, then cast. The results then differ where
mergekit's half-precision arithmetic rounds (a task vector's difference, a sum), and a
rounding can move an entry across TIES' trim threshold or arcee_fusion's importance cut (in
float16, 5 % of TIES' entries differ from mergekit's, by up to a trimmed task-vector entry).
So the test is that, over the whole model, our result has no more entries off mergekit's
float32 merge (by more than four half-precision roundings) than mergekit's own half-precision
result has, and an L2 error within 5 % of its: within what mergekit's compute dtype gives. DARE and
DELLA draw their masks from mergekit's global torch RNG in its task order, which a
tensor-at-a-time merge cannot reproduce: they are compared exactly at density 1 (no draw) and
by the kept fraction at density < 1.
"""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from nbsupport.merging import merge_files

SKIP = "mergekit is not importable (it is in the dev extra: pip install -e '.[dev]')"
mk_config = pytest.importorskip("mergekit.config", reason=SKIP, exc_type=ImportError)
mk_merge = pytest.importorskip("mergekit.merge", reason=SKIP, exc_type=ImportError)

L, H, V, I = 4, 16, 32, 24
LAYER = {"self_attn.q_proj.weight": (H, H), "self_attn.k_proj.weight": (H, H), "self_attn.v_proj.weight": (H, H),
         "self_attn.o_proj.weight": (H, H), "mlp.gate_proj.weight": (I, H), "mlp.up_proj.weight": (I, H),
         "mlp.down_proj.weight": (H, I), "input_layernorm.weight": (H,), "post_attention_layernorm.weight": (H,)}


def llama(seed, base=None, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    shapes = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,), "lm_head.weight": (V, H)}
    shapes.update({f"model.layers.{i}.{k}": s for i in range(L) for k, s in LAYER.items()})
    sd = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    return sd if base is None else {k: base[k] + scale * sd[k] for k in sd}


def write(sd, folder):
    folder.mkdir(parents=True)
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
        "num_hidden_layers": L, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": V,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
        "torch_dtype": "float32"}))
    return str(folder)


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama")
    base = llama(0)
    return {"base": write(base, root / "base"),
            **{k: write(llama(i + 1, base), root / k) for i, k in enumerate(("a", "b", "c"))}}


def load(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            out.update(load_file(os.path.join(folder, f)))
    return out


RESULTS = {}  # each config runs once per session (the float32 merges are also the half tests' reference)


def both(cfg, tmp_path):
    """(mergekit's tensors, ours, mergekit's config.json, ours) for one config."""
    key = json.dumps(cfg, sort_keys=True)
    if key not in RESULTS:
        RESULTS[key] = _both(cfg, tmp_path)
    return RESULTS[key]


def _both(cfg, tmp_path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    mk_merge.run_merge(mk_config.MergeConfiguration.model_validate(cfg), str(tmp_path / "mk"),
                       mk_merge.MergeOptions(lazy_unpickle=False, device="cpu", quiet=True, copy_tokenizer=False))
    merge_files(cfg, tmp_path / "ours")
    cfgs = [json.loads((tmp_path / d / "config.json").read_text()) for d in ("mk", "ours")]
    return load(tmp_path / "mk"), load(tmp_path / "ours"), *cfgs


def models(ck, params, names=("a", "b")):
    return [{"model": ck[n], "parameters": p} for n, p in zip(names, params, strict=True)]


GRADIENT = [0, 0.3, 0.7, 1]
FILTER_T = [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]}, {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
            {"value": 0.5}]


def configs(ck):
    b = ck["base"]
    w2 = [{"weight": 0.6}, {"weight": 0.4}]
    return {
        "linear": {"merge_method": "linear", "models": models(ck, [{"weight": GRADIENT}, {"weight": 0.5}])},
        "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": b, "models": models(ck, w2),
                            "parameters": {"lambda": [0.8, 1.2]}},
        "ties": {"merge_method": "ties", "base_model": b,
                 "models": models(ck, [{"weight": 1.0, "density": [0.3, 0.7]}, {"weight": 0.5, "density": 0.5}]),
                 "parameters": {"normalize": [True, False]}},  # a boolean gradient picks, it does not blend
        "ties_filter": {"merge_method": "ties", "base_model": b, "models": models(ck, [
            {"weight": 1.0, "density": [{"filter": "mlp", "value": [0.2, 0.8]}, {"filter": "self_attn", "value": 0.4}]},
            {"weight": 1.0}]), "parameters": {"density": 0.6}},
        "breadcrumbs": {"merge_method": "breadcrumbs", "base_model": b,
                        "models": models(ck, [{"weight": 1.0, "density": 0.6, "gamma": 0.05}] * 2)},
        "breadcrumbs_ties": {"merge_method": "breadcrumbs_ties", "base_model": b,
                             "models": models(ck, [{"weight": 1.0, "density": 0.6, "gamma": [0.02, 0.1]}] * 2)},
        "dare_ties_density1": {"merge_method": "dare_ties", "base_model": b, "models": models(ck, w2)},
        "dare_linear_density1": {"merge_method": "dare_linear", "base_model": b, "models": models(ck, w2)},
        "della_density1": {"merge_method": "della", "base_model": b, "models": models(ck, w2)},
        "della_linear_density1": {"merge_method": "della_linear", "base_model": b, "models": models(ck, w2)},
        "slerp": {"merge_method": "slerp", "base_model": b, "models": models(ck, [{}], ("a",)),
                  "parameters": {"t": FILTER_T}},
        "nuslerp": {"merge_method": "nuslerp", "models": models(ck, [{"weight": [0.2, 0.8]}, {"weight": 0.5}])},
        "nuslerp_base": {"merge_method": "nuslerp", "base_model": b, "models": models(ck, w2),
                         "parameters": {"nuslerp_row_wise": True}},
        "karcher": {"merge_method": "karcher", "models": models(ck, [{}, {}, {}], ("a", "b", "c"))},
        "sce": {"merge_method": "sce", "base_model": b, "models": models(ck, [{}, {}, {}], ("a", "b", "c")),
                "parameters": {"select_topk": 0.5}},
        "arcee_fusion": {"merge_method": "arcee_fusion", "base_model": b, "models": models(ck, [{}], ("a",))},
        "model_stock": {"merge_method": "model_stock", "base_model": b,
                        "models": models(ck, [{}, {}, {}], ("a", "b", "c"))},
        "passthrough_slices": {"merge_method": "passthrough", "slices": [
            {"sources": [{"model": ck["a"], "layer_range": [0, 3]}]},
            # a model's filter sees its own tensor names: "layers.1." is b's layer 1 (output layer 3)
            {"sources": [{"model": ck["b"], "layer_range": [1, 4], "parameters": {"scale": [
                {"filter": "layers.1.", "value": 2.0}, {"filter": "o_proj", "value": 0.0},
                {"filter": "down_proj", "value": 0.5}]}}]}]},
        "slerp_slices": {"merge_method": "slerp", "base_model": ck["a"], "slices": [
            {"sources": [{"model": ck["a"], "layer_range": [0, 2]}, {"model": ck["b"], "layer_range": [2, 4]}],
             "parameters": {"t": [0.1, 0.9]}},
            {"sources": [{"model": ck["a"], "layer_range": [1, 4]}, {"model": ck["b"], "layer_range": [0, 3]}]}],
            # a shared filter sees the output's names: "layers.4." exists only in the output
            "parameters": {"t": [{"filter": "layers.4.", "value": 0.9}, *FILTER_T]}},
        "ties_slices": {"merge_method": "ties", "base_model": b, "slices": [
            {"sources": [{"model": b, "layer_range": [0, 4]},
                         {"model": ck["a"], "layer_range": [0, 4], "parameters": {"weight": 1.0, "density": [0.2, 0.9]}},
                         {"model": ck["b"], "layer_range": [0, 4], "parameters": {"weight": 0.7}}],
             "parameters": {"density": 0.5}}]},
    }


CASES = ["linear", "task_arithmetic", "ties", "ties_filter", "breadcrumbs", "breadcrumbs_ties", "dare_ties_density1",
         "dare_linear_density1", "della_density1", "della_linear_density1", "slerp", "nuslerp", "nuslerp_base",
         "karcher", "sce", "arcee_fusion", "model_stock", "passthrough_slices", "slerp_slices", "ties_slices"]


#: float32 results equal to 1e-6, not bit for bit: a few scalars are Python floats (float64)
#: here where mergekit keeps float32 tensors: SLERP's angle and coefficients, Karcher's norms,
#: SCE's per-model weights. All other methods are bit-equal.
ROUNDED = {"slerp", "slerp_slices", "karcher", "sce"}


@pytest.mark.parametrize("case", CASES)
def test_float32_equals_mergekit(ck, tmp_path, case):
    cfg = {**configs(ck)[case], "dtype": "float32"}
    mk, ours, mk_cfg, our_cfg = both(cfg, tmp_path)
    assert list(ours) and set(ours) == set(mk)
    assert our_cfg["num_hidden_layers"] == mk_cfg["num_hidden_layers"]
    worst = max(float((ours[k] - mk[k]).abs().max()) for k in mk)
    assert all(ours[k].dtype == mk[k].dtype == torch.float32 for k in mk)
    assert worst <= (1e-6 if case in ROUNDED else 0.0), f"{case}: max |ours - mergekit| = {worst:.3g}"


HALF = ["linear", "task_arithmetic", "ties", "ties_filter", "slerp", "nuslerp", "karcher", "sce", "arcee_fusion",
        "model_stock", "della_density1", "passthrough_slices", "slerp_slices"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", HALF)
def test_half_compute_dtype_within_mergekits_own_rounding(ck, tmp_path, case, dtype):
    cfg = {**configs(ck)[case], "dtype": dtype}
    mk, ours, mk_cfg, our_cfg = both(cfg, tmp_path / "half")
    mk32, *_ = both({**cfg, "dtype": "float32"}, tmp_path / "full")
    half = getattr(torch, dtype)
    # written in dtype (mergekit's arcee_fusion returns float32 from a float mask: it writes float32)
    assert all(ours[k].dtype == half for k in ours) and our_cfg["dtype"] == dtype
    far_ours = far_mk = n = 0
    sq_ours = sq_mk = 0.0
    for k in mk32:
        tol = 4 * torch.finfo(half).eps * mk32[k].abs().clamp(min=0.01)  # four half-precision roundings
        d_ours, d_mk = ours[k].float() - mk32[k], mk[k].float() - mk32[k]
        far_ours, far_mk = far_ours + int((d_ours.abs() > tol).sum()), far_mk + int((d_mk.abs() > tol).sum())
        sq_ours, sq_mk, n = sq_ours + float(d_ours.square().sum()), sq_mk + float(d_mk.square().sum()), n + d_mk.numel()
    # no more entries off mergekit's float32 merge, and no larger error, than mergekit's own result
    assert far_ours <= far_mk + 0.001 * n, (case, dtype, far_ours, far_mk, n)
    assert sq_ours ** 0.5 <= 1.05 * sq_mk ** 0.5 + 1e-6, (case, dtype, sq_ours ** 0.5, sq_mk ** 0.5)


def test_out_dtype_is_the_written_dtype(ck, tmp_path):
    cfg = {**configs(ck)["ties"], "dtype": "float16", "out_dtype": "float32"}
    mk, ours, mk_cfg, our_cfg = both(cfg, tmp_path)
    assert all(v.dtype == torch.float32 for v in [*ours.values(), *mk.values()])
    assert our_cfg["dtype"] == mk_cfg["dtype"] == "float32"
    mk_half, ours_half, *_ = both({**cfg, "out_dtype": None}, tmp_path / "half")
    for k in ours:  # computed in float16, then widened
        assert torch.equal(ours[k], ours_half[k].float()) and torch.equal(mk[k], mk_half[k].float())


@pytest.mark.parametrize("method,params", [
    ("dare_linear", {"weight": 1.0, "density": 0.4}),
    ("dare_ties", {"weight": 1.0, "density": 0.4}),
    ("della", {"weight": 1.0, "density": 0.5, "epsilon": 0.1}),
    ("della_linear", {"weight": 1.0, "density": 0.5, "epsilon": 0.1}),
])
def test_random_drops_match_mergekit_in_distribution(ck, tmp_path, method, params):
    """Same kept fraction (density, within sampling error of ~4000 entries per layer) and the
    same L1 rescale (each tensor's task-vector L1 norm kept) as mergekit."""
    cfg = {"merge_method": method, "base_model": ck["base"], "dtype": "float32",
           "models": [{"model": ck["a"], "parameters": params}]}
    mk, ours, *_ = both(cfg, tmp_path)
    base, a = load(ck["base"]), load(ck["a"])
    for got in (mk, ours):
        kept = sum(int((got[k] != base[k]).sum()) for k in base) / sum(v.numel() for v in base.values())
        assert abs(kept - params["density"]) < 0.03, kept
        for k in base:
            l1, want = float((got[k] - base[k]).abs().sum()), float((a[k] - base[k]).abs().sum())
            assert l1 == pytest.approx(want, rel=1e-4), k
