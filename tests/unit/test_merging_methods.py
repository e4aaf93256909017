"""nbsupport.merging.merge against brute-force computations of each method's definition."""

import math

import pytest
import torch

from nbsupport.kernels.merge_core import uniform
from nbsupport.merging import (
    MergeError,
    greedy_soup,
    merge,
    sign_conflicts,
    task_vectors,
    uniform_soup,
)
from nbsupport.merging.methods import NEEDS_BASE, REGISTRY, pcb_merge, swap_weights
from nbsupport.merging.selection import stream_seeds

SHAPES = {"a.weight": (6, 5), "a.bias": (6,), "layers.0.w": (4, 4), "layers.1.w": (4, 4), "layers.2.w": (4, 4)}


def rand_sd(seed, scale=1.0, shapes=SHAPES, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return {k: scale * torch.randn(s, generator=g, dtype=dtype) for k, s in shapes.items()}


@pytest.fixture
def setup():
    base = rand_sd(0)
    models = [{k: base[k] + rand_sd(i + 1, 0.1)[k] for k in base} for i in range(3)]
    return base, models


def close(a, b, tol=1e-10):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=tol, rtol=0), k


def topk_mask(d, density):
    """mergekit magnitude: keep the k = max(1, int(density n)) largest |d| (full sort)."""
    k = max(1, int(density * d.numel()))
    m = torch.zeros(d.numel(), dtype=d.dtype)
    m[torch.argsort(d.abs().reshape(-1), descending=True)[:k]] = 1
    return m.reshape(d.shape)


def band_mask(d, density, gamma):
    """mergekit magnitude_outliers: ascending ranks [n_bot, n_bot + target)."""
    n = d.numel()
    target, n_top = int(density * n), int(gamma * n)
    n_bot = max(0, n - target - n_top)
    m = torch.zeros(n, dtype=d.dtype)
    m[torch.sort(d.abs().reshape(-1)).indices[n_bot:n_bot + target]] = 1
    return m.reshape(d.shape)


def brute_gta(base, models, w, masks, scales, consensus, normalize, lam):
    out = {}
    for k in base:
        t = [(m[k] - base[k]) * masks[i][k] * scales[i][k] * w[i] for i, m in enumerate(models)]
        flat = torch.stack([x.reshape(-1) for x in t])
        res = torch.zeros(flat.shape[1], dtype=flat.dtype)
        for j in range(flat.shape[1]):
            col = flat[:, j].tolist()
            if consensus:
                g = 1.0 if sum(col) >= 0 else -1.0
                agree = [i for i, v in enumerate(col) if v != 0 and math.copysign(1, v) == g]
                num, den = sum(col[i] for i in agree), sum(w[i] for i in agree) or 1.0
            else:
                num, den = sum(col), sum(w)
            res[j] = num / den if normalize else num
        out[k] = base[k] + lam * res.reshape(base[k].shape)
    return out


def ones(models):
    return [{k: torch.ones_like(v) for k, v in m.items()} for m in models]


def test_task_vectors_and_linear(setup):
    base, models = setup
    tvs = task_vectors(base, models)
    close(tvs[0], {k: models[0][k] - base[k] for k in base})
    w = [0.2, 0.3, 0.5]
    close(merge("linear", None, models, weight=w), {k: sum(wi * m[k] for wi, m in zip(w, models, strict=False)) for k in base})
    close(uniform_soup(models), {k: sum(m[k] for m in models) / 3 for k in base})


def test_task_arithmetic(setup):
    base, models = setup
    got = merge("task_arithmetic", base, models, weight=[1.0, 0.5, -0.2], **{"lambda": 0.7})
    want = {k: base[k] + 0.7 * (models[0][k] - base[k] + 0.5 * (models[1][k] - base[k]) - 0.2 * (models[2][k] - base[k]))
            for k in base}
    close(got, want)


@pytest.mark.parametrize("normalize", [True, False])
def test_ties(setup, normalize):
    base, models = setup
    w = [1.0, 0.6, 0.3]
    got = merge("ties", base, models, weight=w, density=0.4, normalize=normalize, lam=1.2)
    masks = [{k: topk_mask(m[k] - base[k], 0.4) for k in base} for m in models]
    close(got, brute_gta(base, models, w, masks, ones(models), True, normalize, 1.2))


def test_ties_model_scope_uses_one_threshold(setup):
    base, models = setup
    got = merge("ties", base, models, density=0.3, trim_scope="model")
    tvs = task_vectors(base, models)
    masks = []
    for tv in tvs:
        flat = torch.cat([v.reshape(-1) for v in tv.values()])
        thr = flat.abs().sort(descending=True).values[int(0.3 * flat.numel()) - 1]
        masks.append({k: (v.abs() >= thr).double() for k, v in tv.items()})
    close(got, brute_gta(base, models, [1, 1, 1], masks, ones(models), True, True, 1.0))


@pytest.mark.parametrize("method,consensus", [("breadcrumbs", False), ("breadcrumbs_ties", True)])
def test_breadcrumbs(setup, method, consensus):
    base, models = setup
    got = merge(method, base, models, density=0.5, gamma=0.1, weight=[0.5, 1.0, 0.7])
    masks = [{k: band_mask(m[k] - base[k], 0.5, 0.1) for k in base} for m in models]
    close(got, brute_gta(base, models, [0.5, 1.0, 0.7], masks, ones(models), consensus, False, 1.0))


def dare_masks(base, models, density, seed):
    out = []
    for i, _m in enumerate(models):
        d = {}
        for k in base:
            s = stream_seeds(seed, len(models), k)[i]
            d[k] = (uniform(s, torch.arange(base[k].numel())) >= 1 - density).double().reshape(base[k].shape)
        out.append(d)
    return out


@pytest.mark.parametrize("method,consensus", [("dare_linear", False), ("dare_ties", True)])
def test_dare_rescales(setup, method, consensus):
    base, models = setup
    masks = dare_masks(base, models, 0.3, seed=7)
    got = merge(method, base, models, density=0.3, seed=7, rescale="inverse")
    inv = [{k: torch.full_like(v, 1 / 0.3) for k, v in base.items()} for _ in models]
    close(got, brute_gta(base, models, [1, 1, 1], masks, inv, consensus, False, 1.0))
    # mergekit rescale: match each task vector tensor's L1 norm
    def l1(d, mask):
        before, after = float(d.abs().sum()), float((d * mask).abs().sum())
        return torch.full_like(d, 1.0 if before < 1e-7 or after < 1e-7 else before / after)

    l1 = [{k: l1(m[k] - base[k], masks[i][k]) for k in base} for i, m in enumerate(models)]
    close(merge(method, base, models, density=0.3, seed=7), brute_gta(base, models, [1, 1, 1], masks, l1, consensus, False, 1.0))
    none = merge(method, base, models, density=0.3, seed=7, rescale=False)
    close(none, brute_gta(base, models, [1, 1, 1], masks, ones(models), consensus, False, 1.0))


def test_dare_is_reproducible_and_drops_at_rate():
    base = {"w": torch.zeros(100_000)}
    m = {"w": torch.ones(100_000)}
    a = merge("dare_linear", base, [m], density=0.1, seed=3, rescale=False)["w"]
    b = merge("dare_linear", base, [m], density=0.1, seed=3, rescale=False)["w"]
    c = merge("dare_linear", base, [m], density=0.1, seed=4, rescale=False)["w"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.mean()) - 0.1) < 0.005


def test_edge_cases(setup):
    base, models = setup
    # all-zero task vectors: the base comes back exactly, no NaN
    for method in ("ties", "dare_ties", "breadcrumbs", "breadcrumbs_ties", "pcb", "model_stock"):
        out = merge(method, base, [base, base], **({} if method == "model_stock" else {"density": 0.5}))
        close(out, base, 0)
    # ties in magnitude: exactly k = 2 entries are kept; by index, the first two tied ones
    b0 = {"w": torch.zeros(10)}
    tied = {"w": torch.tensor([1.0, -1, 1, -1, 1, 0.5, 0.5, 0.1, 0, 0])}
    got = merge("ties", b0, [tied], density=0.2, tie_break="index", normalize=False)["w"]
    assert got.tolist() == [1.0, -1, 0, 0, 0, 0, 0, 0, 0, 0]
    got = merge("ties", b0, [tied], density=0.2, normalize=False)["w"]
    assert int((got != 0).sum()) == 2 and set(got[got != 0].abs().tolist()) == {1.0}
    # density 1: no trimming; TIES = sign-elected disjoint mean, Breadcrumbs = task arithmetic
    close(merge("breadcrumbs", base, models, density=1.0), merge("task_arithmetic", base, models))
    masks = [{k: torch.ones_like(v) for k, v in base.items()} for _ in models]
    close(merge("ties", base, models, density=1.0), brute_gta(base, models, [1, 1, 1], masks, ones(models), True, True, 1.0))
    # int tensors are copied from the base
    out = merge("ties", {**base, "n": torch.tensor(3)}, [{**m, "n": torch.tensor(5)} for m in models], density=0.5)
    assert int(out["n"]) == 3


def brute_pcb(tvs, ratio, clip=1e-4):
    n, d = tvs.shape
    def qclamp(x, lo_r, hi_r):
        s = torch.sort(x, dim=1).values
        return torch.clamp(x, s[:, int(d * lo_r)].unsqueeze(1), s[:, int(d * (1 - hi_r) - 1)].unsqueeze(1))
    def mm(x):
        return (x - x.min(1, keepdim=True).values) / (x.max(1, keepdim=True).values - x.min(1, keepdim=True).values)
    a = qclamp(tvs.abs(), clip, clip)
    c = torch.sign(tvs) * a
    beta = torch.exp(n * mm(a) ** 2) * torch.tanh(tvs * tvs.sum(0))
    scale = mm(qclamp(beta, 1 - ratio, 0))
    return (c * scale).sum(0) / scale.sum(0).clamp(min=1e-12)


def test_pcb(setup):
    base, models = setup
    tvs = torch.randn(4, 1000, dtype=torch.float64)
    assert torch.allclose(pcb_merge(tvs, 0.1), brute_pcb(tvs, 0.1))
    got = merge("pcb", base, models, density=0.2, lam=0.9)
    tv = task_vectors(base, models)
    want = {k: base[k] + 0.9 * brute_pcb(torch.stack([t[k].reshape(-1) for t in tv]), 0.2).reshape(base[k].shape) for k in base}
    close(got, want, 1e-9)


def test_fisher_merge(setup):
    base, models = setup
    fishers = [{k: rand_sd(10 + i)[k].abs() for k in base} for i in range(3)]
    fishers[0]["a.bias"] = torch.zeros(6, dtype=torch.float64)  # floored at 1e-6
    w = [1.0, 2.0, 0.5]
    got = merge("fisher", None, models, fishers=fishers, weight=w)
    want = {k: sum(wi * f[k].clamp(min=1e-6) * m[k] for wi, f, m in zip(w, fishers, models, strict=False))
            / sum(wi * f[k].clamp(min=1e-6) for wi, f in zip(w, fishers, strict=False)) for k in base}
    close(got, want)
    # equal Fishers: plain weighted average
    same = [{k: torch.ones_like(v) for k, v in base.items()}] * 3
    close(merge("fisher", None, models, fishers=same), uniform_soup(models))


def test_model_stock(setup):
    base, models = setup
    got = merge("model_stock", base, models[:2])
    for k in base:
        a, b = (models[0][k] - base[k]).reshape(-1), (models[1][k] - base[k]).reshape(-1)
        c = float(a @ b / (a.norm() * b.norm()))
        t = 2 * c / (1 + c)
        assert torch.allclose(got[k], t * (models[0][k] + models[1][k]) / 2 + (1 - t) * base[k])


def test_slerp():
    a, b = {"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 2.0])}
    assert torch.allclose(merge("slerp", a, [b], t=0.0)["w"], a["w"])
    assert torch.allclose(merge("slerp", a, [b], t=1.0)["w"], b["w"])
    mid = merge("slerp", a, [b], t=0.5)["w"]
    assert torch.allclose(mid, torch.tensor([math.sqrt(0.5), 2 * math.sqrt(0.5)]))
    # nearly collinear: linear interpolation
    c = {"w": torch.tensor([2.0, 1e-6])}
    assert torch.allclose(merge("slerp", a, [c], t=0.25)["w"], 0.75 * a["w"] + 0.25 * c["w"])


def test_layer_swap(setup):
    _, (host, donor, _) = setup
    got = merge("layer_swap", None, [host, donor], bottom=1, top=1)
    for k in host:
        want = donor[k] if k in ("layers.0.w", "layers.2.w") else host[k]
        assert torch.equal(got[k], want), k
    assert swap_weights(6, 1, 1, blend=1) == [1.0, 0.5, 0.0, 0.0, 0.5, 1.0]
    assert swap_weights(4, 0, 0) == [0.0] * 4


def test_greedy_soup():
    models = [{"w": torch.tensor([v])} for v in (0.0, 1.0, 3.0, 10.0)]
    evaluate = lambda sd: -abs(float(sd["w"]) - 1.5)  # noqa: E731  best parameter: 1.5
    soup = greedy_soup(models, evaluate)
    assert soup.ingredients[0] == 1  # the best single model first
    assert soup.score >= max(evaluate(m) for m in models)
    assert torch.allclose(soup.state["w"], torch.tensor([sum(float(models[i]["w"]) for i in soup.ingredients) / len(soup.ingredients)]))
    assert 3 not in soup.ingredients  # the bad ingredient is left out


def test_sign_conflicts():
    tvs = [{"w": torch.tensor([1.0, 1, -1, 0])}, {"w": torch.tensor([1.0, -1, -1, 2])}]
    assert sign_conflicts(tvs) == 0.25


def test_errors(setup):
    base, models = setup
    with pytest.raises(MergeError, match="unknown merge method"):
        merge("nope", base, models)
    with pytest.raises(MergeError, match="needs a base"):
        merge("ties", None, models)
    with pytest.raises(MergeError, match="density"):
        merge("ties", base, models, density=0.0)
    with pytest.raises(MergeError, match="density"):
        merge("dare_ties", base, models, density=1.5)
    with pytest.raises(MergeError, match="names differ"):
        merge("linear", None, [models[0], {k: v for k, v in models[1].items() if k != "a.bias"}])
    with pytest.raises(MergeError, match="shape"):
        merge("task_arithmetic", base, [{**models[0], "a.bias": torch.zeros(7)}])
    with pytest.raises(MergeError, match="weight has 2 values"):
        merge("ties", base, models, weight=[1, 2])
    with pytest.raises(MergeError, match="'ties' does not take densty; its parameters are: .*density"):
        merge("ties", base, models, densty=0.5)


def test_registry_declares_parameters(setup):
    """Each method takes exactly the parameters the registry declares; any other fails with one
    line naming the method's parameters (mergekit's registry rejects them too)."""
    base, models = setup
    with pytest.raises(MergeError) as err:
        merge("linear", None, models, density=0.5)
    msg = str(err.value)
    assert "\n" not in msg and msg == "'linear' does not take density; its parameters are: weight, normalize (and impl)"
    with pytest.raises(MergeError, match="'ties' does not take t; its parameters are"):
        merge("ties", base, models, t=0.5)
    with pytest.raises(MergeError, match="needs a base"):
        merge("ties", None, models)
    with pytest.raises(MergeError, match="exactly 1 model"):
        merge("slerp", base, models)
    with pytest.raises(MergeError, match="lambda once"):
        merge("ties", base, models, lam=1.0, **{"lambda": 2.0})
    for name, spec in REGISTRY.items():
        assert spec.name == name and len(set(spec.params)) == len(spec.params)
        assert (name in NEEDS_BASE) == spec.needs_base
    # lam is lambda: both spellings give the same tensors
    close(merge("ties", base, models, lam=0.7), merge("ties", base, models, **{"lambda": 0.7}), 0)


def test_sce_by_brute_force(setup):
    """SCE (FuseChat §3.3, mergekit's sce) coordinate by coordinate in plain Python."""
    base, models = setup
    for topk in (1.0, 0.5):
        got = merge("sce", base, models, select_topk=topk)
        for k in base:
            b = base[k].double().reshape(-1).tolist()
            tv = [[x - y for x, y in zip(m[k].double().reshape(-1).tolist(), b, strict=True)] for m in models]
            n, size = len(tv), len(b)
            var = [sum((t[j] - sum(u[j] for u in tv) / n) ** 2 for t in tv) / n for j in range(size)]
            nonzero = sum(v != 0 for v in var)
            top = sorted(range(size), key=lambda j: -var[j])[: int(topk * nonzero)] if topk < 1 else range(size)
            tv = [[t[j] if j in set(top) else 0.0 for j in range(size)] for t in tv]
            energy = [sum(x * x for x in t) / size for t in tv]
            w = [e / sum(energy) for e in energy]
            want = []
            for j in range(size):
                sign = 1.0 if sum(t[j] for t in tv) >= 0 else -1.0
                agree = [i for i in range(n) if tv[i][j] != 0 and math.copysign(1, tv[i][j]) == sign]
                div = sum(w[i] for i in agree) or 1.0
                want.append(b[j] + sum(w[i] * tv[i][j] for i in agree) / div)
            assert torch.allclose(got[k].double().reshape(-1), torch.tensor(want, dtype=torch.float64), atol=1e-6), k
    with pytest.raises(MergeError, match="'sce' does not take density"):
        merge("sce", base, models, density=0.5)


def _slerp_rows(t, a, b):
    """Spherical interpolation of each row of two float64 matrices, written out in plain Python."""
    out = []
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        nx, ny = math.sqrt(sum(v * v for v in x)), math.sqrt(sum(v * v for v in y))
        theta = math.acos(max(-1.0, min(1.0, sum(p * q for p, q in zip(x, y, strict=True)) / (nx * ny))))
        s = math.sin(theta)
        out.append([(math.sin((1 - t) * theta) * p + math.sin(t * theta) * q) / s for p, q in zip(x, y, strict=True)])
    return torch.tensor(out, dtype=torch.float64)


def test_nuslerp_by_brute_force(setup):
    base, models = setup
    a, b = models[0]["a.weight"].double(), models[1]["a.weight"].double()
    t = 2 / 3  # weights 1 and 2
    got = merge("nuslerp", None, models[:2], weight=[1, 2])["a.weight"].double()
    assert torch.allclose(got, _slerp_rows(t, a.reshape(1, -1), b.reshape(1, -1)).reshape(a.shape), atol=1e-5)
    got = merge("nuslerp", None, models[:2], weight=[1, 2], nuslerp_flatten=False)["a.weight"].double()
    assert torch.allclose(got, _slerp_rows(t, a, b), atol=1e-5)  # per row
    got = merge("nuslerp", None, models[:2], weight=[1, 2], nuslerp_flatten=False, nuslerp_row_wise=True)
    assert torch.allclose(got["a.weight"].double(), _slerp_rows(t, a.T, b.T).T, atol=1e-5)  # per column
    # with a base: the task vectors are interpolated and added to it
    b0 = base["a.weight"].double()
    got = merge("nuslerp", base, models[:2], weight=[1, 2])["a.weight"].double()
    want = b0 + _slerp_rows(t, (a - b0).reshape(1, -1), (b - b0).reshape(1, -1)).reshape(a.shape)
    assert torch.allclose(got, want, atol=1e-5)
    # colinear inputs: linear interpolation
    same = merge("nuslerp", None, [models[0], models[0]], weight=[1, 1])
    close(same, models[0], 1e-5)
    with pytest.raises(MergeError, match="exactly 2 model"):
        merge("nuslerp", None, models)


def test_karcher_mean(setup):
    _, models = setup
    # two tensors: the mean direction is the geodesic midpoint, scaled by the mean norm
    got = merge("karcher", None, models[:2], max_iter=50, tol=1e-9)["a.weight"].double()
    a, b = models[0]["a.weight"].double().reshape(1, -1), models[1]["a.weight"].double().reshape(1, -1)
    ua, ub = a / a.norm(), b / b.norm()
    want = _slerp_rows(0.5, ua, ub) * (a.norm() + b.norm()) / 2
    assert torch.allclose(got.reshape(1, -1), want, atol=1e-5)
    # three tensors: at the Karcher mean the log maps of the directions sum to zero
    got = merge("karcher", None, models, max_iter=100, tol=1e-10)["a.weight"].double().reshape(-1)
    m = got / got.norm()
    tangent = torch.zeros_like(m)
    for model in models:
        u = model["a.weight"].double().reshape(-1)
        u = u / u.norm()
        c = torch.clamp(m @ u, -1, 1)
        tangent += torch.arccos(c) / torch.sin(torch.arccos(c)) * (u - c * m)
    assert float(tangent.norm()) < 1e-4
    assert float(got.norm()) == pytest.approx(sum(float(mm["a.weight"].double().norm()) for mm in models) / 3, rel=1e-5)
    close(merge("karcher", None, [models[0], models[0]]), models[0], 1e-5)


def test_arcee_fusion_by_brute_force(setup):
    base, models = setup
    got = merge("arcee_fusion", base, models[:1])
    for k in base:
        b, m = base[k].double(), models[0][k].double()
        rows_b, rows_m = b.reshape(-1, b.shape[-1]).tolist(), m.reshape(-1, m.shape[-1]).tolist()
        imp = []
        for rb, rm in zip(rows_b, rows_m, strict=True):
            zb, zm = sum(math.exp(v) for v in rb), sum(math.exp(v) for v in rm)
            kl = sum((math.exp(x) / zm + 1e-8) * math.log((math.exp(x) / zm + 1e-8) / (math.exp(y) / zb + 1e-8))
                     for x, y in zip(rm, rb, strict=True))
            imp += [abs(x - y) * kl for x, y in zip(rm, rb, strict=True)]
        srt = sorted(imp)
        q1, med, q3 = (srt[int(f * (len(srt) - 1))] for f in (0.25, 0.5, 0.75))
        want = [y + (x - y) * (i >= med + 1.5 * (q3 - q1))
                for x, y, i in zip(m.reshape(-1).tolist(), b.reshape(-1).tolist(), imp, strict=True)]
        assert torch.allclose(got[k].double().reshape(-1), torch.tensor(want, dtype=torch.float64), atol=1e-6), k
    with pytest.raises(MergeError, match="exactly 1 model"):
        merge("arcee_fusion", base, models)


def test_della_keep_probabilities():
    from nbsupport.merging.selection import della_keep_prob, della_mask

    # within each row, magnitude rank r of n keeps with density - eps + 2 eps (r-1)/(n-1)
    x = torch.tensor([[0.3, -2.0, 0.1, 1.0, 0.5], [5.0, 4.0, -3.0, 2.0, 1.0]])
    p = della_keep_prob(x, 0.5, 0.2)
    ranks = [[2, 5, 1, 4, 3], [5, 4, 3, 2, 1]]
    want = torch.tensor([[0.3 + 0.4 * (r - 1) / 4 for r in row] for row in ranks], dtype=torch.float64)
    assert torch.allclose(p, want)
    assert torch.allclose(della_keep_prob(x[0], 0.5, 0.2), want[0])  # a vector is one row
    big = torch.randn(200, 500, generator=torch.Generator().manual_seed(0))
    keep, prob = della_mask(big, 0.4, 0.1, seed=3)
    assert abs(float(keep.double().mean()) - 0.4) < 0.01  # the mean keep rate is the density
    top = big.abs() > big.abs().quantile(0.9, dim=1, keepdim=True)
    assert float(keep[top].double().mean()) > 0.48  # large entries survive more often
    with pytest.raises(ValueError, match="density ± epsilon"):
        della_keep_prob(x, 0.1, 0.2)


@pytest.mark.parametrize("method,consensus,normalize", [("della", True, True), ("della_linear", False, False)])
def test_della_by_brute_force(setup, method, consensus, normalize):
    from nbsupport.merging.selection import della_mask

    base, models = setup
    w = [0.5, 1.0, 0.7]
    masks, l1, inv = [], [], []
    for i, m in enumerate(models):
        mk, sc, iv = {}, {}, {}
        for k in base:
            d = (m[k] - base[k]).double()
            keep, p = della_mask(d.float(), 0.4, 0.1, stream_seeds(5, len(models), k)[i])
            mk[k] = keep.double()
            before, after = float(d.abs().sum()), float((d * keep).abs().sum())
            sc[k] = torch.full_like(d, before / after)
            iv[k] = 1 / p
        masks.append(mk)
        l1.append(sc)
        inv.append(iv)
    got = merge(method, base, models, weight=w, density=0.4, epsilon=0.1, seed=5, lam=1.3)
    close(got, brute_gta(base, models, w, masks, l1, consensus, normalize, 1.3), 1e-5)
    got = merge(method, base, models, weight=w, density=0.4, epsilon=0.1, seed=5, rescale="inverse")
    close(got, brute_gta(base, models, w, masks, inv, consensus, normalize, 1.0), 1e-5)
    with pytest.raises(MergeError, match="density ± epsilon"):
        merge(method, base, models, density=0.1, epsilon=0.15)
