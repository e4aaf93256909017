"""A critiquing simulator and bot-play tuning of the critique update (after "Self-Supervised Bot
Play for Conversational Recommendation with Justifications", Li, Majumder & McAuley 2022, with genres as the
aspects a recommendation is justified by).

A simulated user holds a hidden target item. Each turn the recommender shows its best item
not shown before (and not seen in training); if it is the target the session ends. Otherwise
the user critiques one aspect: a genre of the shown item that the target lacks ("less of
g"), or, when there is none, a genre of the target that the shown item lacks ("more of
g"); the genre is drawn at random (seeded) among those.

**Genre directions.** In a BPR item space the mean of a genre's items minus the mean of all
items is dominated by popularity and vector norm. :func:`genre_effects` instead regresses the
item vectors on the genre indicators and log-popularity (ordinary least squares,
``V ≈ 1 b₀ᵀ + G B + log(1 + pop) b_popᵀ``): row ``b_g`` of ``B`` is the change in an item's
vector that genre ``g`` explains with popularity held fixed, and ``u·b_g`` is the user's score
for the genre.

**The update** (:func:`critique_move`) moves that genre score by a fixed margin ``δ``:
``u ← u ∓ δ·b_g/‖b_g‖²``, so ``u·b_g`` changes by exactly ``∓δ``, with ``δ = step·σ_u`` and
``σ_u`` the spread (standard deviation) of the user's scores over all items before the
session. The **random-direction control** moves ``u`` by the same distance ``δ/‖b_g‖`` along a
random unit direction (seeded): what genre critiques gain beyond it is the aspect's information.

**Bot play** (:func:`tune_step`): the critique step is chosen by playing simulated sessions
with one group of users and picking the step whose target ends best ranked; it is then
evaluated on other users' sessions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def genre_effects(items: torch.Tensor, genres: torch.Tensor, popularity: torch.Tensor) -> torch.Tensor:
    """(G, d) OLS coefficients of the genre indicators in ``items ≈ 1 b₀ + genres B + log1p(popularity) b_pop``.

    ``items`` (n, d), ``genres`` (n, G) 0/1, ``popularity`` (n,) training counts. Solved with
    ``torch.linalg.lstsq`` in float64 (minimum-norm solution when a genre column is empty).
    """
    if not (len(items) == len(genres) == len(popularity)):
        raise ValueError(f"items ({len(items)}), genres ({len(genres)}) and popularity ({len(popularity)}) "
                         "must have one row per item")
    x = torch.cat([torch.ones(len(items), 1, dtype=torch.float64), genres.double(),
                   torch.log1p(popularity.double())[:, None]], 1)
    coef = torch.linalg.lstsq(x, items.double(), driver="gelsd").solution
    return coef[1 : 1 + genres.shape[1]].to(items.dtype)


def critique_move(u: torch.Tensor, direction: torch.Tensor, sign: float, delta: float,
                  random_direction: torch.Tensor | None = None) -> torch.Tensor:
    """The user vector after one critique: ``u + sign·δ·b/‖b‖²`` (``u·b`` moves by ``sign·δ``).

    With ``random_direction`` (a unit vector), the control: ``u + sign·(δ/‖b‖)·r``, a move of
    the same length along ``r``.
    """
    norm2 = float(direction.square().sum())
    if norm2 == 0.0:
        return u.clone()
    if random_direction is not None:
        return u + sign * delta / norm2 ** 0.5 * random_direction
    return u + sign * delta / norm2 * direction


def simulate(users: torch.Tensor, items: torch.Tensor, genres: torch.Tensor, directions: torch.Tensor,
             sessions: pd.DataFrame, turns: int = 5, step: float = 0.5, seen: dict[int, np.ndarray] | None = None,
             genre_names: list[str] | None = None, control: bool = False, seed: int = 0) -> pd.DataFrame:
    """Run one session per row of ``sessions`` (columns ``user_id``, ``item_id`` = the target).

    ``directions`` (G, d): the genre directions ``b_g`` (:func:`genre_effects`). Each critique
    moves the genre score by ``step·σ_u`` (:func:`critique_move`); ``control=True`` moves by
    the same distance along a random direction instead. Returns one row per (session, turn)
    with the target's ``rank`` (1 = best, among the items not seen in training) at the start
    of that turn, ``hit@10`` (rank <= 10), the ``shown`` item and the ``critique`` made
    (``"-genre"``/``"+genre"``, ``"accept"`` when the target is shown, ``""`` when no aspect
    separates the two items).
    """
    if turns < 0 or step < 0:
        raise ValueError(f"turns and step must be >= 0, got turns={turns}, step={step}")
    if directions.shape != (genres.shape[1], items.shape[1]):
        raise ValueError(f"directions must be (genres, dim) = {(genres.shape[1], items.shape[1])}, "
                         f"got {tuple(directions.shape)}; build them with genre_effects")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    genres = genres.bool()
    names = genre_names or [str(g) for g in range(genres.shape[1])]
    seen = seen or {}
    rows = []
    for s, (user, target) in enumerate(zip(sessions.user_id.to_numpy(), sessions.item_id.to_numpy())):
        u = users[user].clone()
        delta = step * float((items @ u).std())
        mask = torch.zeros(len(items), dtype=torch.bool)
        mask[torch.as_tensor(seen.get(int(user), np.array([], dtype=np.int64)), dtype=torch.long)] = True
        mask[target] = False
        shown = torch.zeros_like(mask)
        done = False
        for t in range(turns + 1):
            scores = (items @ u).masked_fill(mask, float("-inf"))
            rank = 1 if done else int((scores > scores[target]).sum()) + 1
            row = {"session": s, "user_id": int(user), "target": int(target), "turn": t, "rank": rank,
                   "hit@10": rank <= 10, "shown": -1, "critique": ""}
            if t < turns and not done:
                rec = int(scores.masked_fill(shown, float("-inf")).argmax())
                shown[rec] = True
                row["shown"] = rec
                if rec == target:
                    row["critique"], done = "accept", True
                else:
                    less = torch.nonzero(genres[rec] & ~genres[target]).flatten().tolist()
                    more = torch.nonzero(genres[target] & ~genres[rec]).flatten().tolist()
                    if less or more:
                        g, sign = (int(rng.choice(less)), -1.0) if less else (int(rng.choice(more)), 1.0)
                        r = None
                        if control:
                            r = torch.randn(items.shape[1], generator=gen, dtype=u.dtype)
                            r = r / r.norm()
                        u = critique_move(u, directions[g], sign, delta, r)
                        row["critique"] = ("+" if sign > 0 else "-") + names[g]
            rows.append(row)
    return pd.DataFrame(rows)


def per_turn(log: pd.DataFrame) -> pd.DataFrame:
    """Median rank, mean log rank and Hit@10 of the target at each turn (one row per turn)."""
    g = log.groupby("turn")
    return pd.DataFrame({"median rank": g["rank"].median(), "mean log rank": g["rank"].apply(lambda r: np.log(r).mean()),
                         "hit@10": g["hit@10"].mean()})


def tune_step(grid: list[float], play) -> tuple[float, pd.Series]:
    """Bot play: the step of ``grid`` whose sessions end with the lowest mean log rank of the target.

    ``play(step)`` runs the simulator on the tuning users' sessions and returns its log;
    returns the chosen step and the final-turn mean log rank of every step (ties: the smaller step).
    """
    if not grid:
        raise ValueError("tune_step: the grid of steps is empty")
    score = {}
    for step in sorted(grid):
        log = play(step)
        score[step] = float(np.log(log[log.turn == log.turn.max()]["rank"]).mean())
    table = pd.Series(score, name="final mean log rank").rename_axis("step")
    return float(table.idxmin()), table
