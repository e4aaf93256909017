"""merge_files / the CLI: same tensors as merge(), sharding + index, YAML, errors, atomic output."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from nbsupport.merging import MergeError, merge, merge_files
from nbsupport.merging import files as files_mod
from nbsupport.merging.__main__ import main

SHAPES = {"embed.weight": (50, 8), "layers.0.w": (8, 8), "layers.0.b": (8,), "layers.1.w": (8, 8), "head.w": (3, 8)}


def sd(seed, base=None, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    return out if base is None else {k: base[k] + scale * out[k] for k in out}


def save(state, folder, shards=1):
    folder.mkdir(parents=True)
    names = list(state)
    if shards == 1:
        save_file(state, str(folder / "model.safetensors"))
    else:
        wm = {}
        for i in range(shards):
            part = names[i::shards]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: state[k].contiguous() for k in part}, str(folder / fname))
            wm.update({k: fname for k in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    (folder / "config.json").write_text("{}")
    return folder


def load_dir(folder):
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    out = {}
    for f in set(index["weight_map"].values()):
        out.update(load_file(str(folder / f)))
    assert set(out) == set(index["weight_map"])
    return out


@pytest.fixture
def ckpts(tmp_path):
    base = sd(0)
    models = [sd(i + 1, base) for i in range(2)]
    paths = {"base": save(base, tmp_path / "base"), "a": save(models[0], tmp_path / "a", shards=2),
             "b": save(models[1], tmp_path / "b")}
    return base, models, paths


@pytest.mark.parametrize("method,params", [
    ("linear", {"weight": [0.3, 0.7]}),
    ("task_arithmetic", {"weight": [1.0, 0.5], "lambda": 0.8}),
    ("ties", {"weight": [1.0, 1.0], "density": [0.5, 0.3]}),
    ("breadcrumbs", {"weight": [1.0, 1.0], "density": [0.5, 0.5], "gamma": [0.05, 0.05]}),
    ("dare_ties", {"weight": [1.0, 1.0], "density": [0.4, 0.4], "seed": 5}),
])
def test_merge_files_matches_merge(ckpts, tmp_path, method, params):
    base, models, p = ckpts
    per = {k: params[k] for k in ("weight", "density", "gamma") if k in params}
    shared = {k: v for k, v in params.items() if k not in per}
    cfg = {"merge_method": method, "base_model": str(p["base"]), "dtype": "float32", "parameters": shared,
           "models": [{"model": str(p[m]), "parameters": {k: v[i] for k, v in per.items()}} for i, m in enumerate("ab")]}
    info = merge_files(cfg, tmp_path / "out", max_shard_size=1500)
    got = load_dir(tmp_path / "out")
    want = merge(method, base, models, **params)
    assert info["shards"] > 1 and (tmp_path / "out" / "config.json").exists()
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6, rtol=0), k


def test_yaml_cli_and_base_in_models(ckpts, tmp_path, capsys):
    base, models, p = ckpts
    cfg = {"merge_method": "ties", "base_model": "base", "parameters": {"density": 0.5, "weight": 1.0},
           "models": [{"model": "base"}, {"model": "a"}, {"model": "b", "parameters": {"density": 0.2}}]}
    path = tmp_path / "cfg.yaml"  # relative model paths resolve against the config's folder
    path.write_text(yaml.safe_dump(cfg))
    assert main([str(path), str(tmp_path / "out"), "--quiet"]) == 0
    got = load_dir(tmp_path / "out")
    want = merge("ties", base, models, density=[0.5, 0.2])
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6), k
    assert main([str(path), str(tmp_path / "out"), "--quiet"]) == 2  # exists, no --overwrite
    assert "not empty" in capsys.readouterr().err
    assert main([str(path), str(tmp_path / "out"), "--quiet", "--overwrite"]) == 0


def test_errors_before_writing(ckpts, tmp_path):
    base, models, p = ckpts
    out = tmp_path / "out"
    ok = {"merge_method": "ties", "base_model": str(p["base"]),
          "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0, "density": 0.5}}]}
    bad_shape = save({**models[0], "head.w": torch.zeros(4, 8)}, tmp_path / "bad_shape")
    bad_name = save({k: v for k, v in models[0].items() if k != "head.w"}, tmp_path / "bad_name")
    cases = [
        ({**ok, "base_model": None}, "needs base_model"),
        ({**ok, "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0, "density": 1.5}}]}, "density"),
        ({**ok, "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0, "density": 0}}]}, "density"),
        ({**ok, "models": [{"model": str(bad_shape), "parameters": {"weight": 1.0}}]}, "shape"),
        ({**ok, "models": [{"model": str(bad_name), "parameters": {"weight": 1.0}}]}, "names differ"),
        ({**ok, "models": [{"model": str(tmp_path / "missing")}]}, "not found"),
        ({**ok, "merge_method": "frobnicate"}, "merge_method"),
        ({**ok, "slices": []}, "exactly one of models"),
        ({**ok, "models": [{"model": str(p["a"]), "parameters": {"weight": [{"filter": "x"}]}}]}, "filter entry"),
        ({**ok, "models": [{"model": str(p["a"]), "parameters": {"weight": [0.5, {"value": 1}]}}]}, "not a mix"),
        ({**ok, "models": [{"model": str(p["a"]), "paramters": {"weight": 1}}]}, "unknown key.*paramters"),
        ({**ok, "parameters": {"t": 0.5}}, "'ties' does not take t"),
    ]
    for cfg, msg in cases:
        with pytest.raises(MergeError, match=msg):
            merge_files(cfg, out)
        assert not out.exists()


def test_interrupted_merge_leaves_nothing(ckpts, tmp_path, monkeypatch):
    _, _, p = ckpts
    cfg = {"merge_method": "task_arithmetic", "base_model": str(p["base"]),
           "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0}}]}
    calls = {"n": 0}
    real = files_mod.ShardWriter.write

    def flaky(self, name, t):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, name, t)

    monkeypatch.setattr(files_mod.ShardWriter, "write", flaky)
    with pytest.raises(KeyboardInterrupt):
        merge_files(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".out")]


def test_dtype_and_int_tensors(tmp_path):
    base = {"w": torch.randn(4, 4), "pos": torch.arange(4)}
    m = {"w": base["w"] + 1, "pos": torch.arange(4)}
    save(base, tmp_path / "base")
    save(m, tmp_path / "m")
    cfg = {"merge_method": "task_arithmetic", "base_model": str(tmp_path / "base"), "dtype": "bfloat16",
           "models": [{"model": str(tmp_path / "m"), "parameters": {"weight": 0.5}}]}
    merge_files(cfg, tmp_path / "out")
    got = load_dir(tmp_path / "out")
    assert got["w"].dtype == torch.bfloat16 and got["pos"].dtype == torch.int64
    # dtype is the compute dtype (as mergekit): the inputs are cast to bfloat16 first
    b16, m16 = base["w"].bfloat16().float(), m["w"].bfloat16().float()
    assert torch.equal(got["w"], (b16 + 0.5 * (m16 - b16)).bfloat16())
    merge_files({**cfg, "out_dtype": "float32"}, tmp_path / "out32")
    assert torch.equal(load_dir(tmp_path / "out32")["w"], (b16 + 0.5 * (m16 - b16)).bfloat16().float())
    assert json.loads((tmp_path / "out32" / "config.json").read_text())["dtype"] == "float32"


# ---------------------------------------------------------------- bad inputs: one MergeError each
def _cfg(p, **extra):
    return {"merge_method": "task_arithmetic", "base_model": str(p["base"]),
            "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0}}], **extra}


@pytest.mark.parametrize("content, message", [
    (b"", "0 bytes"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "git-lfs pointer"),
    (b"\xff" * 64, "header length"),
    ((8).to_bytes(8, "little") + b"not json", "not JSON"),
    ((len(b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}')).to_bytes(8, "little")
     + b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}' + b"\0" * 8, "broken header entry"),
    ((len(b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}')).to_bytes(8, "little")
     + b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}' + b"\0" * 8, "need 16"),
])
def test_corrupt_safetensors_are_named(ckpts, tmp_path, content, message):
    _, _, p = ckpts
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(content)
    cfg = {**_cfg(p), "models": [{"model": str(bad), "parameters": {"weight": 1.0}}]}
    with pytest.raises(MergeError, match=message):
        merge_files(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("params, message", [
    ({"weight": "abc"}, "must be a number"),
    ({"weight": float("nan")}, "finite"),
    ({"weight": float("inf")}, "finite"),
    ({"weight": True}, "must be a number"),
    ({"weight": 1.0, "gamma": 1.0}, r"gamma must be in \[0, 1\)"),
])
def test_bad_per_model_numbers(ckpts, tmp_path, params, message):
    _, _, p = ckpts
    cfg = {**_cfg(p), "models": [{"model": str(p["a"]), "parameters": params}]}
    with pytest.raises(MergeError, match=message):
        merge_files(cfg, tmp_path / "out")


@pytest.mark.parametrize("method, params, message", [
    ("slerp", {"t": 5}, r"t must be in \[0, 1\]"),
    ("slerp", {"t": -0.1}, r"t must be in \[0, 1\]"),
    ("task_arithmetic", {"lambda": "x"}, "lambda must be a number"),
    ("dare_ties", {"seed": -1}, "non-negative integer"),
    ("dare_ties", {"seed": 1.5}, "non-negative integer"),
    ("ties", {"normalize": "maybe"}, "true or false"),
    ("ties", {"trim_scope": "layer"}, "trim_scope"),
    ("ties", {"trim_scope": "model"}, "whole model in memory"),
    ("pcb", {"clip": 0.7}, "clip must be in"),
    ("layer_swap", {"bottom": "two"}, "bottom must be a number"),
])
def test_shared_parameters_in_range_for_every_method(ckpts, tmp_path, method, params, message):
    _, _, p = ckpts
    cfg = {"merge_method": method, "base_model": str(p["base"]), "parameters": params,
           "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0}}]}
    with pytest.raises(MergeError, match=message):
        merge_files(cfg, tmp_path / "out")


def test_check_parameters_parses_and_keeps_others():
    import numpy as np

    from nbsupport.merging.validate import check_parameters

    got = check_parameters({"weight": ["0.5", 1], "t": 0, "seed": 3.0, "normalize": True, "other": "x"})
    assert got == {"weight": [0.5, 1.0], "t": 0.0, "seed": 3, "normalize": True, "other": "x"}
    assert check_parameters({"bottom": np.int64(2), "density": np.float32(0.5)}) == {"bottom": 2, "density": 0.5}


def test_nan_tensor_in_an_input_is_refused(ckpts, tmp_path):
    base, models, p = ckpts
    nan = save({**models[0], "layers.0.b": torch.full((8,), float("nan"))}, tmp_path / "nan")
    cfg = {**_cfg(p), "models": [{"model": str(nan), "parameters": {"weight": 1.0}}]}
    with pytest.raises(MergeError, match="'layers.0.b' holds 8 NaN or inf"):
        merge_files(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_yaml_and_size_errors(ckpts, tmp_path):
    _, _, p = ckpts
    bad = tmp_path / "bad.yaml"
    bad.write_text("merge_method: ties\nmodels: [a, b\n")
    with pytest.raises(MergeError, match="not valid YAML at line"):
        merge_files(bad, tmp_path / "out")
    for cfg, message in (({**_cfg(p), "models": "a"}, "must be a list"),
                         ({**_cfg(p), "parameters": [1]}, "must be a mapping"),
                         ({**_cfg(p), "models": [{"model": 3}]}, "as a path")):
        with pytest.raises(MergeError, match=message):
            merge_files(cfg, tmp_path / "out")
    for size in ("abc", "0", "-1GB", ""):
        with pytest.raises(MergeError, match="max shard size"):
            merge_files(_cfg(p), tmp_path / "out", max_shard_size=size)
    assert files_mod.parse_size("2GB") == 2 * 10**9 and files_mod.parse_size(1500) == 1500


def test_overwrite_never_touches_an_input(ckpts, tmp_path):
    _, _, p = ckpts
    before = {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()}
    for out in (p["a"], tmp_path, p["a"] / "merged"):  # is, contains, lies inside an input
        with pytest.raises(MergeError, match="overlaps the input"):
            merge_files(_cfg(p), out, overwrite=True)
    assert {f: f.read_bytes() for f in tmp_path.rglob("*") if f.is_file()} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(MergeError, match="is a file"):
        merge_files(_cfg(p), tmp_path / "file", overwrite=True)


def test_stale_partials_reaped_and_umask_mode(ckpts, tmp_path):
    import os

    _, _, p = ckpts
    stale = tmp_path / ".out.partial-999999999-abc"   # no such process: a killed merge
    old_style = tmp_path / ".out.partial-k2j4h5"      # from before folders carried the pid
    live = tmp_path / f".out.partial-{os.getppid()}-xyz"  # a merge still running
    other = tmp_path / ".other.partial-999999999-abc"  # another output's
    for d in (stale, old_style, live, other):
        d.mkdir()
        (d / "model-00001-of-00001.safetensors").write_bytes(b"x" * 10)
    mask = os.umask(0o027)
    try:
        merge_files(_cfg(p), tmp_path / "out")
    finally:
        os.umask(mask)
    assert not stale.exists() and not old_style.exists() and live.exists() and other.exists()
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750


# ---------------------------------------------------------------- gradients, filters, slices
def test_settings_follow_mergekits_rules():
    from nbsupport.merging.settings import evaluate, resolve

    g = [0.0, 0.3, 0.7, 1.0]
    for t in (0, 0.2, 1 / 3, 0.5, 0.9, 1):  # linear interpolation between values ⌊t(m-1)⌋ and the next
        i = min(int(t * 3), 2)
        assert evaluate(g, "x", t) == pytest.approx(g[i] + (t * 3 - i) * (g[i + 1] - g[i]))
    assert evaluate(["1e-3", 1], "x", 0.5) == pytest.approx(0.5005)  # numeric text is a number
    assert evaluate([True, False], "x", 0.99) is True and evaluate([True, False], "x", 1.0) is False
    flt = [{"filter": "mlp", "value": [0, 1]}, {"filter": "attn", "value": 0.3}]
    assert evaluate(flt, "layers.1.mlp.up", 0.25) == 0.25 and evaluate(flt, "layers.1.self_attn.q", 1) == 0.3
    assert evaluate(flt, "embed", 0) is None and evaluate([], "x", 0) is None
    assert evaluate([*flt, {"value": 9}], "norm", 0) == 9 and evaluate({"filter": "*", "value": 2}, "n", 0) == 2
    # no match falls through to the next scope, then to the method's default (None here)
    assert resolve("w", ({"w": flt}, {"w": 0.5}), "norm", 0) == 0.5
    assert resolve("w", ({"w": flt}, None), "norm", 0) is None


def test_gradients_and_filters_per_tensor(ckpts, tmp_path):
    """Each tensor gets the parameters of its layer position, checked against merge() by hand."""
    base, models, p = ckpts
    weight = [{"filter": ".b", "value": 0.25}, {"value": [0.2, 0.8]}]
    cfg = {"merge_method": "task_arithmetic", "base_model": str(p["base"]), "dtype": "float32",
           "models": [{"model": str(p["a"]), "parameters": {"weight": weight}},
                      {"model": str(p["b"]), "parameters": {"weight": 1.0}}],
           "parameters": {"lambda": [1.0, 2.0]}}
    merge_files(cfg, tmp_path / "out")
    got = load_dir(tmp_path / "out")
    # 2 layers: layer 0 at t=0, layer 1 at t=1; tensors outside the layers at t=0
    want_w = {"embed.weight": 0.2, "layers.0.w": 0.2, "layers.0.b": 0.25, "layers.1.w": 0.8, "head.w": 0.2}
    want_lam = {"embed.weight": 1.0, "layers.0.w": 1.0, "layers.0.b": 1.0, "layers.1.w": 2.0, "head.w": 1.0}
    for k, w in want_w.items():
        one = merge("task_arithmetic", {k: base[k]}, [{k: m[k]} for m in models], weight=[w, 1.0], lam=want_lam[k])
        assert torch.equal(got[k], one[k]), k


def test_slices_renumber_layers_and_config(ckpts, tmp_path):
    base, models, p = ckpts
    cfg = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": str(p["a"]), "layer_range": [0, 2]}]},
        {"sources": [{"model": str(p["b"]), "layer_range": [1, 2], "parameters": {"scale": 0.5}}]}]}
    merge_files(cfg, tmp_path / "out")
    got = load_dir(tmp_path / "out")
    a, b = models
    assert set(got) == {"embed.weight", "layers.0.w", "layers.0.b", "layers.1.w", "layers.2.w", "head.w"}
    # the head comes from the last slice's source, with its parameters (as mergekit)
    assert torch.equal(got["embed.weight"], a["embed.weight"]) and torch.equal(got["head.w"], 0.5 * b["head.w"])
    assert torch.equal(got["layers.1.w"], a["layers.1.w"]) and torch.equal(got["layers.2.w"], 0.5 * b["layers.1.w"])
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_hidden_layers"] == 3


def test_slice_and_setting_errors_before_writing(ckpts, tmp_path):
    _, _, p = ckpts
    src = {"model": str(p["a"]), "layer_range": [0, 2]}
    base = {"model": str(p["base"]), "layer_range": [0, 2]}
    cases = [
        ({"slices": [{"sources": [src, {**src, "layer_range": [0, 1]}]}]}, r"different numbers of layers \[2, 1\]"),
        ({"slices": [{"sources": [{**src, "layer_range": [0, 5]}]}]}, "exceeds its 2 layers"),
        ({"slices": [{"sources": [{**src, "layer_range": [2, 1]}]}]}, "layer_range must be"),
        ({"slices": [{"sources": [{**src, "range": [0, 1]}]}]}, "unknown key.*range"),
        ({"slices": [{"sources": [src], "residual_weight": 0.5}]}, "unknown key.*residual_weight"),
        ({"slices": [{"sources": [src], "base_model": str(p["base"])}], "merge_method": "ties"}, "among each slice"),
        ({"slices": [{"sources": [base]}], "merge_method": "ties", "base_model": str(p["base"])}, "only the base"),
        ({"slices": [{"sources": [src]}], "models": [str(p["a"])]}, "exactly one of models"),
        ({"slices": [{"sources": [src]}], "parameters": {"scale": {"filter": "w"}}}, "filter entry"),
        ({"slices": [{"sources": [src]}], "parameters": {"scale": [[1, 2]]}}, "not a mix"),
        ({"slices": [{"sources": [src]}], "parameters": {"density": 0.5}}, "'passthrough' does not take density"),
    ]
    for extra, msg in cases:
        cfg = {"merge_method": "passthrough", **extra}
        with pytest.raises(MergeError, match=msg):
            merge_files(cfg, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_per_model_epsilon_and_gradient_out_of_range(ckpts, tmp_path):
    base, models, p = ckpts
    cfg = {"merge_method": "della", "base_model": str(p["base"]), "dtype": "float32", "parameters": {"seed": 3},
           "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0, "density": 0.5, "epsilon": 0.1}},
                      {"model": str(p["b"]), "parameters": {"weight": 1.0, "density": 0.5, "epsilon": 0.2}}]}
    merge_files(cfg, tmp_path / "out")
    want = merge("della", base, models, weight=1.0, density=0.5, epsilon=[0.1, 0.2], seed=3)
    got = load_dir(tmp_path / "out")
    assert all(torch.equal(got[k], want[k]) for k in want)
    bad = {**cfg, "models": [{"model": str(p["a"]), "parameters": {"weight": 1.0, "density": [0.5, 1.5]}}]}
    with pytest.raises(MergeError, match=r"a: density must be in \(0, 1\], got 1.5 \(for tensor 'layers.1.w'\)"):
        merge_files(bad, tmp_path / "out2")


def test_merge_in_memory_checks_parameters(ckpts):
    base, models, _ = ckpts
    with pytest.raises(MergeError, match="'linear' does not take density; its parameters are: weight, normalize"):
        merge("linear", base, models, density=0.5)
    with pytest.raises(MergeError, match=r"t must be in \[0, 1\]"):
        merge("slerp", base, models[:1], t=1.5)
    with pytest.raises(MergeError, match=r"epsilon must be in \[0, 1\)"):
        merge("della", base, models, density=0.5, epsilon=[0.1, 1.0])


def test_one_tensor_at_a_time(ckpts, tmp_path, monkeypatch):
    """Streaming: at any read, at most one tensor per input model is alive (plus the merged one
    being written), and every input tensor is read once."""
    import weakref

    _, _, p = ckpts
    alive, peak, reads = weakref.WeakSet(), [0], []
    real = files_mod.SafetensorsFile.read

    def read(self, name):
        t = real(self, name)
        alive.add(t)
        peak[0] = max(peak[0], len(alive))
        reads.append((str(self.path), name))
        return t

    monkeypatch.setattr(files_mod.SafetensorsFile, "read", read)
    cfg = {**_cfg(p), "dtype": "float32", "models": [{"model": str(p["a"]), "parameters": {"weight": [0.5, 1]}},
                                                    {"model": str(p["b"]), "parameters": {"weight": 1.0}}]}
    merge_files(cfg, tmp_path / "out")
    assert peak[0] <= 3 and len(reads) == len(set(reads)) == 3 * len(SHAPES)


def test_cli_slices_yaml(ckpts, tmp_path, capsys):
    _, models, p = ckpts
    cfg = tmp_path / "frankenmerge.yaml"
    cfg.write_text(f"""merge_method: passthrough
slices:
  - sources: [{{model: {p['a']}, layer_range: [0, 2]}}]
  - sources: [{{model: {p['b']}, layer_range: [0, 2]}}]
dtype: bfloat16
out_dtype: float32
""")
    assert main([str(cfg), str(tmp_path / "out"), "--quiet"]) == 0
    got = load_dir(tmp_path / "out")
    assert torch.equal(got["layers.3.w"], models[1]["layers.1.w"].bfloat16().float())
    assert "passthrough: 8 tensors" in capsys.readouterr().out
    cfg.write_text(cfg.read_text().replace("[0, 2]}]\ndtype", "[0, 1]}, {model: x, layer_range: [0, 2]}]\ndtype"))
    assert main([str(cfg), str(tmp_path / "out2"), "--quiet"]) == 2
    assert "different numbers of layers [1, 2]" in capsys.readouterr().err
