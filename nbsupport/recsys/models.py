"""Recommenders for warm and cold start; every model exposes ``user_vectors()`` and ``item_vectors()``.

Scores are inner products ``user_vectors() @ item_vectors().T`` (ranked with the
``topk_scores`` kernel). Trainable models learn with BPR (Rendle et al. 2009):
``-log σ(s(u, i⁺) - s(u, i⁻))`` over a training interaction ``(u, i⁺)`` and an item ``i⁻``
drawn uniformly from the items seen in training, plus L2 on the batch's vectors.

- :class:`Popularity`: training interaction counts; :class:`RandomScores`: chance level;
  :class:`ColdFirstRandom`: every cold item above every warm one, random within each (the
  reference a cold-item metric over the whole catalogue must be read against).
- :class:`Hybrid` (LightFM, Kula 2015): user and item vectors are sums of their feature
  embeddings, identity included. Entities absent from training carry no identity feature,
  so cold items (users) are their metadata sum. ``Hybrid.mf(data)`` has identities only:
  BPR matrix factorization, where a cold item keeps its untrained random vector.
- :class:`ContentOnly`: cosine between an item's title embedding and the mean title
  embedding of the user's training items; nothing is learned.
- :class:`ContrastiveColdStart` (after "Contrastive Learning for Cold Start Recommendation
  with Adaptive Feature Fusion", 2025, and CLCRec, Wei et al. 2021): an identity
  (collaborative) view and a feature view per entity; the feature view fuses the feature
  groups with a learned softmax gate; BPR on both views plus InfoNCE between them; cold
  entities are scored through the feature view.
- :class:`ALLMRecAligner` (A-LLMRec stage 1, Kim et al. 2024): item and text encoders
  aligned by MSE in a shared latent space, with reconstruction and recommendation losses
  over a frozen CF model; warm items keep their CF vectors, cold items enter through the
  text encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from nbsupport.env import device as default_device
from nbsupport.recsys.features import Interactions
from nbsupport.recsys.splits import Split, evaluate
from nbsupport.train import fit_in_place

ITEM_GROUPS = ("genre", "year", "title")
USER_GROUPS = ("age", "gender", "occupation")


def bpr_sampler(s: Split, batch: int) -> Callable[[int, torch.Generator], tuple[torch.Tensor, ...]]:
    """A batch sampler for :func:`nbsupport.train.fit`: ``sample(step, generator)`` gives
    ``(users, positives, negatives)``, ``batch`` training interactions drawn uniformly with
    replacement and negatives uniform over the training items, all from ``generator``."""
    users = torch.tensor(s.train.user_id.to_numpy())
    items = torch.tensor(s.train.item_id.to_numpy())
    pool = torch.tensor(np.sort(s.train.item_id.unique()))
    if len(users) == 0:
        raise ValueError("the split has no training interactions")

    def sample(step: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        pick = torch.randint(len(users), (batch,), generator=generator)
        neg = pool[torch.randint(len(pool), (batch,), generator=generator)]
        return users[pick], items[pick], neg

    return sample


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Mean ``-log σ(u·pos - u·neg)``."""
    return -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` and ``b`` (cosine / ``tau``, in-batch negatives)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def fit(model: nn.Module, s: Split, steps: int = 1000, batch: int = 1024, lr: float = 0.01, seed: int = 0,
        progress: bool = True, desc: str | None = None, device: str | torch.device | None = None) -> pd.DataFrame:
    """Train ``model`` in place on ``s.train`` with Adam for ``steps`` BPR batches of
    :func:`bpr_sampler` through :func:`nbsupport.train.fit_in_place` (batches and any other
    training draw from ``seed``; initialize the model under ``torch.manual_seed(seed)``);
    returns the training log. The model moves to ``device`` (default :func:`nbsupport.device`)
    and stays there; the batches are drawn on the CPU and moved to it, so a seed draws the same
    batches on every device."""
    dev = torch.device(device) if device is not None else default_device()
    model.to(dev)
    model.prepare(s)
    return fit_in_place(model, bpr_sampler(s, batch), seed=seed, steps=steps, loss=lambda m, b: m.loss(b),
                        optimizer="adam", lr=lr, progress=progress, desc=desc or type(model).__name__, device=dev)


class Popularity:
    """Items ranked by training interaction count (the same list for every user)."""

    def fit(self, s: Split, **_) -> Popularity:
        self.counts = torch.bincount(torch.tensor(s.train.item_id.to_numpy()), minlength=s.n_items).float()
        self.n_users = s.n_users
        return self

    def user_vectors(self) -> torch.Tensor:
        return torch.ones(self.n_users, 1)

    def item_vectors(self) -> torch.Tensor:
        return torch.log1p(self.counts)[:, None]


class RandomScores:
    """Uniform random scores, fixed by ``seed``: the chance level of every metric."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, s: Split, **_) -> RandomScores:
        self.n_users = s.n_users
        self.scores = torch.rand(s.n_items, generator=torch.Generator().manual_seed(self.seed))
        return self

    def user_vectors(self) -> torch.Tensor:
        return torch.ones(self.n_users, 1)

    def item_vectors(self) -> torch.Tensor:
        return self.scores[:, None]


class ColdFirstRandom(RandomScores):
    """The split's cold items first, in random order, then the other items.

    With the same ``seed`` as :class:`RandomScores`, its ranking over the whole catalogue
    orders the cold items exactly as random scores do among the cold items alone: what a
    model earns on cold items over the whole catalogue *beyond* this baseline is ranking.
    """

    def fit(self, s: Split, **_) -> ColdFirstRandom:
        super().fit(s)
        cold = torch.zeros(s.n_items, dtype=torch.bool)
        cold[torch.as_tensor(s.cold_items, dtype=torch.long)] = True
        self.scores = self.scores + 2.0 * cold  # random scores lie in [0, 1)
        return self


class ContentOnly:
    """Title-embedding profile: user = normalized mean of the user's training titles."""

    def __init__(self, data: Interactions, group: str = "title"):
        self.items = F.normalize(data.item_features[group], dim=-1)

    def fit(self, s: Split, **_) -> ContentOnly:
        u = torch.tensor(s.train.user_id.to_numpy())
        i = torch.tensor(s.train.item_id.to_numpy())
        profile = torch.zeros(s.n_users, self.items.shape[1]).index_add_(0, u, self.items[i])
        self.users = F.normalize(profile, dim=-1)  # users without history: zero vector (all ties)
        return self

    def user_vectors(self) -> torch.Tensor:
        return self.users

    def item_vectors(self) -> torch.Tensor:
        return self.items


class _Features(nn.Module):
    """Feature groups as buffers and one linear embedding (no bias) per group."""

    def __init__(self, groups: dict[str, torch.Tensor], names: Sequence[str], dim: int):
        super().__init__()
        self.names = [n for n in names if n in groups]
        for n in self.names:
            self.register_buffer(f"x_{n}", groups[n].float())
        self.proj = nn.ModuleDict({n: nn.Linear(groups[n].shape[1], dim, bias=False) for n in self.names})
        for lin in self.proj.values():
            nn.init.normal_(lin.weight, std=0.1 / max(1.0, lin.in_features ** 0.5))

    def parts(self) -> torch.Tensor:
        """(entities, groups, dim): every entity's embedding of each group."""
        return torch.stack([self.proj[n](getattr(self, f"x_{n}")) for n in self.names], 1)


class Hybrid(nn.Module):
    """LightFM-style hybrid: ``v_u = e_u·[u seen in training] + Σ_g W_g x_g(u)``, likewise for items."""

    def __init__(self, data: Interactions, dim: int = 64, item_groups: Sequence[str] = ITEM_GROUPS,
                 user_groups: Sequence[str] = USER_GROUPS, reg: float = 1e-4):
        super().__init__()
        self.user_id = nn.Embedding(data.n_users, dim)
        self.item_id = nn.Embedding(data.n_items, dim)
        nn.init.normal_(self.user_id.weight, std=0.1)
        nn.init.normal_(self.item_id.weight, std=0.1)
        self.user_feats = _Features(data.user_features, user_groups, dim)
        self.item_feats = _Features(data.item_features, item_groups, dim)
        self.reg = reg
        self.register_buffer("known_users", torch.ones(data.n_users, dtype=torch.bool))
        self.register_buffer("known_items", torch.ones(data.n_items, dtype=torch.bool))

    @classmethod
    def mf(cls, data: Interactions, dim: int = 64, reg: float = 1e-4) -> Hybrid:
        """BPR matrix factorization: identity features only."""
        return cls(data, dim, item_groups=(), user_groups=(), reg=reg)

    @property
    def has_features(self) -> bool:
        return bool(self.user_feats.names or self.item_feats.names)

    def prepare(self, s: Split) -> None:
        # with metadata, an entity unseen in training has no identity feature (LightFM's cold
        # start); plain MF has nothing else and keeps its random vector
        if self.has_features:
            self.known_users.copy_(s.known_users())
            self.known_items.copy_(s.known_items())

    def _table(self, ids: nn.Embedding, feats: _Features, known: torch.Tensor) -> torch.Tensor:
        v = ids.weight * known[:, None]
        if feats.names:
            v = v + feats.parts().sum(1)
        return v

    def user_vectors(self) -> torch.Tensor:
        return self._table(self.user_id, self.user_feats, self.known_users)

    def item_vectors(self) -> torch.Tensor:
        return self._table(self.item_id, self.item_feats, self.known_items)

    def loss(self, batch) -> torch.Tensor:
        u, i, j = batch
        users, items = self.user_vectors(), self.item_vectors()
        vu, vi, vj = users[u], items[i], items[j]
        return bpr_loss(vu, vi, vj) + self.reg * (vu.square().sum(-1) + vi.square().sum(-1) + vj.square().sum(-1)).mean()


class GatedFusion(nn.Module):
    """Adaptive fusion of feature groups: ``Σ_g a_g(x)·h_g`` with ``a = softmax(W [h_1; …; h_G])``.

    ``gated=False`` is the ablation: a plain mean of the group embeddings.
    """

    def __init__(self, groups: dict[str, torch.Tensor], names: Sequence[str], dim: int, gated: bool = True):
        super().__init__()
        self.feats = _Features(groups, names, dim)
        if not self.feats.names:
            raise ValueError(f"GatedFusion needs at least one of the feature groups {list(names)}")
        self.gate = nn.Linear(dim * len(self.feats.names), len(self.feats.names)) if gated else None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused vectors (entities, d) and gate weights (entities, G) of every entity."""
        h = torch.tanh(self.feats.parts())  # (n, G, d)
        if self.gate is None:
            a = torch.full(h.shape[:2], 1.0 / h.shape[1], device=h.device)
        else:
            a = torch.softmax(self.gate(h.flatten(1)), -1)
        return (a[..., None] * h).sum(1) * h.shape[1] ** 0.5, a


class ContrastiveColdStart(nn.Module):
    """Identity view + gated feature view per entity; BPR on both views + InfoNCE between them.

    Loss per batch (u, i⁺, i⁻), with identity vectors ``e`` and fused feature vectors ``f``:
    ``BPR(e_u; e_i⁺, e_i⁻) + BPR(e_u; f_i⁺, f_i⁻) + BPR(f_u; e_i⁺, e_i⁻)
    + λ·(InfoNCE(e_i⁺, f_i⁺) + InfoNCE(e_u, f_u))`` with temperature ``tau``; ``lam=0`` is
    the no-contrastive ablation, ``gated=False`` the no-gating one. The InfoNCE terms use the
    batch's distinct items (users), at most ``nce_sample`` of each drawn at random (the
    in-batch negatives of CLCRec's mini-batches; bounded to keep a CPU step cheap). Known
    entities are scored by their identity view, cold ones by their feature view.
    """

    def __init__(self, data: Interactions, dim: int = 64, lam: float = 0.5, tau: float = 0.2, gated: bool = True,
                 item_groups: Sequence[str] = ITEM_GROUPS, user_groups: Sequence[str] = USER_GROUPS,
                 reg: float = 1e-4, nce_sample: int = 256):
        super().__init__()
        self.user_id = nn.Embedding(data.n_users, dim)
        self.item_id = nn.Embedding(data.n_items, dim)
        nn.init.normal_(self.user_id.weight, std=0.1)
        nn.init.normal_(self.item_id.weight, std=0.1)
        self.user_fusion = GatedFusion(data.user_features, user_groups, dim, gated)
        self.item_fusion = GatedFusion(data.item_features, item_groups, dim, gated)
        if nce_sample < 2:
            raise ValueError(f"nce_sample must be >= 2 (InfoNCE needs negatives), got {nce_sample}")
        self.lam, self.tau, self.reg, self.nce_sample = lam, tau, reg, nce_sample
        self.register_buffer("known_users", torch.ones(data.n_users, dtype=torch.bool))
        self.register_buffer("known_items", torch.ones(data.n_items, dtype=torch.bool))

    def prepare(self, s: Split) -> None:
        self.known_users.copy_(s.known_users())
        self.known_items.copy_(s.known_items())

    def _distinct(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.unique()
        if len(ids) <= self.nce_sample:
            return ids
        return ids[torch.randperm(len(ids))[: self.nce_sample].to(ids.device)]  # drawn on the CPU, as on every device

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        u, i, j = batch
        fu_all, fi_all = self.user_fusion()[0], self.item_fusion()[0]
        eu, ei, ej = self.user_id(u), self.item_id(i), self.item_id(j)
        fu, fi, fj = fu_all[u], fi_all[i], fi_all[j]
        rec = bpr_loss(eu, ei, ej) + bpr_loss(eu, fi, fj) + bpr_loss(fu, ei, ej)
        l2 = sum(v.square().sum(-1).mean() for v in (eu, ei, ej, fu, fi, fj))
        loss = rec + self.reg * l2
        nce = rec.new_zeros(())
        if self.lam > 0:  # distinct entities only, so no pair is its own false negative
            iu, uu = self._distinct(i), self._distinct(u)
            nce = info_nce(self.item_id(iu), fi_all[iu], self.tau) + info_nce(self.user_id(uu), fu_all[uu], self.tau)
            loss = loss + self.lam * nce
        return loss, {"bpr": rec.detach(), "info_nce": nce.detach()}  # fit logs them as floats

    def _vectors(self, ids: nn.Embedding, fusion: GatedFusion, known: torch.Tensor) -> torch.Tensor:
        return torch.where(known[:, None], ids.weight, fusion()[0])

    def user_vectors(self) -> torch.Tensor:
        return self._vectors(self.user_id, self.user_fusion, self.known_users)

    def item_vectors(self) -> torch.Tensor:
        return self._vectors(self.item_id, self.item_fusion, self.known_items)

    def gate_weights(self) -> dict[str, dict[str, float]]:
        """Mean gate weight of each feature group, over all items and over all users."""
        out = {}
        with torch.no_grad():
            for side, fusion in (("item", self.item_fusion), ("user", self.user_fusion)):
                a = fusion()[1].mean(0)
                out[side] = dict(zip(fusion.feats.names, a.tolist()))
        return out


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(), nn.Linear(hidden, n_out))


class ALLMRecAligner(nn.Module):
    """A-LLMRec stage 1 over a frozen CF model: ``f_I``/``g_I`` on CF item vectors, ``f_T``/``g_T`` on text.

    ``L = MSE(f_I(e_i), f_T(t_i)) + α·[MSE(g_I(f_I(e_i)), e_i) + MSE(g_T(f_T(t_i)), t_i)]
    + β·BPR(u; g_I(f_I(e_i⁺)), g_I(f_I(e_i⁻)))``, the paper's matching, reconstruction and
    recommendation losses (its CF model is SASRec; here the frozen model's user vectors).
    As in A-LLMRec, the frozen CF model keeps what it knows: every item the split does not
    hold out as cold is scored by its CF vector ``e_i`` (so warm rankings equal the CF
    model's); cold items, whose CF vectors are untrained, through ``g_I(f_T(t_i))``.
    """

    def __init__(self, cf: nn.Module, text: torch.Tensor, latent: int = 64, hidden: int = 128,
                 alpha: float = 0.5, beta: float = 0.2):
        super().__init__()
        with torch.no_grad():
            self.register_buffer("cf_users", cf.user_vectors().detach().clone())
            self.register_buffer("cf_items", cf.item_vectors().detach().clone())
        self.register_buffer("text", torch.as_tensor(text, dtype=torch.float32))
        d, t = self.cf_items.shape[1], self.text.shape[1]
        self.f_item, self.g_item = _mlp(d, hidden, latent), _mlp(latent, hidden, d)
        self.f_text, self.g_text = _mlp(t, hidden, latent), _mlp(latent, hidden, t)
        self.alpha, self.beta = alpha, beta
        self.register_buffer("known_items", torch.ones(len(self.cf_items), dtype=torch.bool))

    def prepare(self, s: Split) -> None:
        self.known_items.fill_(True)
        self.known_items[torch.as_tensor(s.cold_items, dtype=torch.long, device=self.known_items.device)] = False

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        u, i, j = batch
        e, t = self.cf_items[i], self.text[i]
        zi, zt = self.f_item(e), self.f_text(t)
        match = F.mse_loss(zi, zt)
        recon = F.mse_loss(self.g_item(zi), e) + F.mse_loss(self.g_text(zt), t)
        rec = bpr_loss(self.cf_users[u], self.g_item(zi), self.g_item(self.f_item(self.cf_items[j])))
        loss = match + self.alpha * recon + self.beta * rec
        return loss, {"matching": match.detach(), "reconstruction": recon.detach(), "recommendation": rec.detach()}

    def user_vectors(self) -> torch.Tensor:
        return self.cf_users

    def item_vectors(self, path: str = "auto") -> torch.Tensor:
        """``auto``: CF vectors for all but the cold items, the text path for those; ``item``
        (``g_I(f_I(e_i))``, the decoded CF vector) or ``text`` (``g_I(f_T(t_i))``): one path for all."""
        if path not in ("auto", "item", "text"):
            raise ValueError(f"path must be 'auto', 'item' or 'text', got {path!r}")
        if path == "item":
            return self.g_item(self.f_item(self.cf_items))
        via_text = self.g_item(self.f_text(self.text))
        if path == "text":
            return via_text
        return torch.where(self.known_items[:, None], self.cf_items, via_text)


def fit_evaluate(factories: dict[str, Callable[[], object]], s: Split, steps: int = 1000, lr: float = 0.01,
                 batch: int = 1024, seed: int = 0, progress: bool = True, **eval_kw) -> pd.DataFrame:
    """Build, fit and evaluate each model on ``s``; one row per (model, test group), long format.

    Trainable models (``nn.Module``) go through :func:`fit`; the others through ``model.fit(s)``.
    ``eval_kw`` goes to :func:`nbsupport.recsys.splits.evaluate`. The fitted models are kept
    in ``fit_evaluate.models`` (name -> model) for a closer look.
    """
    rows, fitted = [], {}
    for name, make in factories.items():
        model = make()
        if isinstance(model, nn.Module):
            fit(model, s, steps=steps, lr=lr, batch=batch, seed=seed, progress=progress, desc=f"{name} ({s.kind})")
        else:
            model.fit(s)
        fitted[name] = model
        table = evaluate(model, s, **eval_kw)
        rows.append(table.rename_axis("group").reset_index().assign(model=name, split=s.kind, seed=seed))
    fit_evaluate.models = fitted
    return pd.concat(rows, ignore_index=True)
