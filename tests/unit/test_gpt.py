"""The tiny GPT (qk-layernorm and z-loss switches, exposed statistics) and the warmup
experiment helpers in nbsupport.warmup.lm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from nbsupport import schedules
from nbsupport.data.text import load_lines
from nbsupport.models.gpt import GPT, GPTConfig, gpt_loss
from nbsupport.train import fit_in_place
from nbsupport.warmup.lm import (
    corpora,
    final_loss,
    held_out_works,
    lr_sensitivity,
    make_optimizer,
    run_lm,
)

V = 11


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab=V, block=12, d=16, layers=2, heads=2, **kw))


def batch(b=3, t=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (b, t), generator=g), torch.randint(0, V, (b, t), generator=g)


def attention_logits(model: GPT, x: torch.Tensor) -> list[torch.Tensor]:
    """Pre-softmax causal attention logits of every layer, recomputed by hand in float64."""
    m = model.double()
    out = []
    with torch.no_grad():
        h = m.tok(x) + m.pos(torch.arange(x.shape[1]))
        for blk in m.blocks:
            a = blk.attn
            z = blk.ln1(h)
            q, k, _ = a.qkv(z).chunk(3, dim=-1)
            b, t, _ = q.shape
            q = a.q_norm(q.view(b, t, a.heads, a.dh).transpose(1, 2))
            k = a.k_norm(k.view(b, t, a.heads, a.dh).transpose(1, 2))
            logits = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(a.dh)
            out.append(logits[..., torch.ones(t, t, dtype=torch.bool).tril()])
            h = blk(h)
    m.float()
    return out


def test_shapes_and_size():
    m = GPT(vocab=84)  # the default config: a few hundred thousand parameters
    assert 2e5 < m.num_params() < 5e6
    x, _ = batch()
    assert tiny()(x).shape == (3, 12, V)
    with pytest.raises(ValueError, match="exceeds the block size"):
        tiny()(torch.zeros(1, 13, dtype=torch.long))


def test_causal():
    m = tiny()
    x, _ = batch()
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % V
    with torch.no_grad():
        torch.testing.assert_close(m(x)[:, :7], m(x2)[:, :7])


def sharpened(qk_norm: bool, factor: float) -> tuple[GPT, torch.Tensor, dict]:
    """A tiny GPT with every qkv weight scaled by ``factor``, its batch input and loss stats."""
    m = tiny(qk_norm=qk_norm)
    with torch.no_grad():
        for blk in m.blocks:
            blk.attn.qkv.weight.mul_(factor)
    x, y = batch()
    _, stats = m.loss(x, y)
    return m, x, stats


@pytest.mark.parametrize("qk_norm", [False, True])
def test_max_attention_logit_matches_brute_force(qk_norm):
    m, x, stats = sharpened(qk_norm, 20)
    expected = max(float(t.max()) for t in attention_logits(m, x))
    assert stats["max_attn_logit"] == pytest.approx(expected, rel=1e-5)


def test_qk_norm_bounds_attention_logits():
    # LayerNorm'd q and k (unit gain) have norm sqrt(d_head): |logit| <= sqrt(d_head)
    for qk_norm in (False, True):
        _, _, stats = sharpened(qk_norm, 50)
        if qk_norm:
            assert stats["max_attn_logit"] <= math.sqrt(8) + 1e-4
        else:
            assert stats["max_attn_logit"] > 10 * math.sqrt(8)
    assert not any("norm" in n for n, _ in tiny().named_parameters() if "attn" in n)
    assert any("q_norm" in n for n, _ in tiny(qk_norm=True).named_parameters())


@pytest.mark.parametrize("z", [0.0, 1e-4, 0.5])
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_loss_is_cross_entropy_plus_z_loss(z, impl):
    m = tiny(z_loss=z, impl=impl)
    with torch.no_grad():
        m.head.weight.mul_(30)  # log Z far from 0
    x, y = batch()
    loss, stats = m.loss(x, y)
    logits = m(x).detach().double().reshape(-1, V)
    log_z = torch.logsumexp(logits, dim=-1)
    ce = torch.nn.functional.cross_entropy(logits, y.reshape(-1))
    assert float(loss.detach()) == pytest.approx(float(ce + z * (log_z**2).mean()), rel=1e-5)
    assert stats["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert stats["log_z"] == pytest.approx(float(log_z.mean()), rel=1e-5)
    assert stats["log_z_abs_max"] == pytest.approx(float(log_z.abs().max()), rel=1e-5)


def test_z_loss_gradient_paths_agree_and_pull_log_z_to_zero():
    grads = {}
    for impl in ("reference", "fast"):
        m = tiny(z_loss=0.1, impl=impl)
        x, y = batch()
        loss, _ = m.loss(x, y)
        loss.backward()
        grads[impl] = torch.cat([p.grad.flatten() for p in m.parameters()])
    torch.testing.assert_close(grads["fast"], grads["reference"], rtol=1e-4, atol=1e-6)
    # a few steps of z-loss alone move log Z towards 0 (from a start far above it)
    finals = {}
    for z in (0.0, 0.1):
        m = tiny(z_loss=z)
        with torch.no_grad():
            m.head.weight.mul_(40)
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        x, y = batch()
        for _ in range(20):
            loss, stats = m.loss(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        finals[z] = abs(stats["log_z"])
    assert finals[0.1] < finals[0.0]


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab=5, d=10, heads=3)
    with pytest.raises(ValueError, match="z_loss"):
        GPTConfig(vocab=5, z_loss=-1)
    with pytest.raises(ValueError, match="positive int"):
        GPTConfig(vocab=0)


def test_trains_with_nbsupport_train():
    m = tiny()
    text = torch.arange(V).repeat(40)  # a periodic sequence is easy to learn
    from nbsupport.data.text import window_sampler

    log = fit_in_place(m, window_sampler(text, 12, 8), seed=0, steps=60, loss=gpt_loss, optimizer="adamw", lr=3e-3,
                       weight_decay=0.01, progress=False)
    assert {"ce", "max_attn_logit", "log_z"} <= set(log.columns)
    assert log["loss"].iloc[-5:].mean() < 0.5 * log["loss"].iloc[:5].mean()
    assert m.evaluate(text, batches=2, batch=4) == m.evaluate(text, batches=2, batch=4)


# ---------------------------------------------------------------- nbsupport.warmup.lm helpers


def test_lr_sensitivity_definition():
    # mean over the grid of min(loss, init) minus the best loss; diverged counts as init
    assert lr_sensitivity([3.0, 2.0, 2.5], 4.0) == pytest.approx(2.5 - 2.0)
    assert lr_sensitivity([3.0, 2.0, float("nan"), 9.0], 4.0) == pytest.approx((3 + 2 + 4 + 4) / 4 - 2)
    assert lr_sensitivity([2.0, 2.0], 4.0) == 0.0


def test_final_loss_counts_divergence_as_init():
    ok = pd.DataFrame({"step": [1, 2], "val_x": [np.nan, 1.5]})
    assert final_loss(ok, "val_x", 4.0) == 1.5
    bad = pd.DataFrame({"step": [1, 2], "val_x": [2.0, np.nan], "diverged": [np.nan, True]})
    assert final_loss(bad, "val_x", 4.0) == 4.0


def test_run_lm_applies_the_schedule_at_global_steps_and_branches():
    text = torch.arange(V).repeat(40)
    sched = schedules.wsd(2, 20, decay=5, shape="linear")
    m = tiny()
    log, trunk = run_lm(m, text, sched, 10, lr=1e-2, batch=4, evals={"t": text}, eval_every=5,
                        eval_batches=1, eval_at_start=True, progress=False)
    assert log["step"].tolist() == list(range(11)) and (log.seed == 0).all()
    np.testing.assert_allclose(log["lr"].iloc[1:], 1e-2 * sched(np.arange(10)), rtol=1e-12)
    assert log["val_t"].notna().sum() == 3  # steps 0, 5, 10
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), trunk.models[0].parameters(), strict=True))
    before = [p.detach().clone() for p in trunk.models[0].parameters()]
    log2, _ = run_lm(trunk, text, sched, 10, lr=1e-2, batch=4, progress=False)
    assert log2["step"].tolist() == list(range(11, 21))
    np.testing.assert_allclose(log2["lr"], 1e-2 * sched(np.arange(10, 20)), rtol=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, trunk.models[0].parameters(), strict=True))  # untouched
    log3, _ = run_lm(trunk, text, sched, 10, lr=1e-2, batch=4, progress=False)  # a second branch: the same run
    assert log3.loss.tolist() == log2.loss.tolist()
    with pytest.raises(ValueError, match="start"):
        run_lm(trunk, text, sched, 1, lr=1e-2, start=3)
    with pytest.raises(TypeError, match="GPT or the Fit"):
        run_lm(torch.nn.Linear(2, 2), text, sched, 1, lr=1e-2)


def test_run_lm_continuing_equals_training_straight_through():
    text = torch.arange(V).repeat(40)
    sched = schedules.cosine(2, 12)
    straight, _ = run_lm(tiny(), text, sched, 12, lr=1e-2, batch=4, progress=False)
    _, part = run_lm(tiny(), text, sched, 5, lr=1e-2, batch=4, progress=False)
    rest, _ = run_lm(part, text, sched, 7, lr=1e-2, batch=4, progress=False)
    np.testing.assert_allclose(rest.lr, straight.lr.iloc[5:], rtol=1e-12)
    assert rest.step.tolist() == list(range(6, 13))


def test_corpora_share_a_vocabulary():
    c = corpora("shakespeare", "kjv", max_chars=5000)
    assert c["shakespeare"].vocab == c["kjv"].vocab
    assert len(c["kjv"].train) + len(c["kjv"].val) == 5000


def test_run_lm_evaluates_at_the_requested_global_steps():
    text = torch.arange(V).repeat(40)
    m = tiny()
    log, _ = run_lm(m, text, schedules.constant(0), 10, lr=1e-2, batch=4, evals={"t": text}, eval_every=5,
                    eval_at=[1, 2, 3, 5, 30], eval_batches=1, progress=False)
    assert log.dropna(subset=["val_t"])["step"].tolist() == [1, 2, 3, 5, 10]
    log2, _ = run_lm(m, text, schedules.constant(0), 4, lr=1e-2, batch=4, start=10, evals={"t": text},
                     eval_at=[11, 12], eval_batches=1, progress=False)
    assert log2.dropna(subset=["val_t"])["step"].tolist() == [11, 12, 14]


def test_make_optimizer_passes_adamw_settings():
    opt = make_optimizer(tiny(), 3e-3, weight_decay=0.1, eps=1e-4)
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["eps"], g["betas"]) == (3e-3, 0.1, 1e-4, (0.9, 0.95))


def test_held_out_works_split_by_work():
    parts = held_out_works("shakespeare", every=5, max_chars=20_000)
    kept, held = parts["kept"], parts["held_out"]
    assert kept.vocab == held.vocab
    assert not set(kept.work_names) & set(held.work_names)
    names = list(dict.fromkeys(work for work, _ in load_lines("shakespeare", min_chars=1)))
    assert held.work_names == names[::5] and sorted(kept.work_names + held.work_names) == sorted(names)
    assert len(kept.train) + len(kept.val) == 20_000
    with pytest.raises(ValueError, match="every"):
        held_out_works("shakespeare", every=1)
