"""A critiquing simulator (after "Self-Supervised Bot Play for Conversational Recommendation
with Justifications", Li, Majumder & McAuley 2022, with genres as the aspects a recommendation
is justified by).

A simulated user holds a hidden target item. Each turn the recommender shows its best item
not shown before (and not seen in training); if it is the target the session ends. Otherwise
the user critiques one aspect: a genre of the shown item that the target lacks ("less of
g"), or, when there is none, a genre of the target that the shown item lacks ("more of
g"); the genre is drawn at random (seeded) among those. The user vector moves along the
genre's direction in item space, ``u ← u ∓ step·‖u‖·ĝ``, with ``ĝ`` the normalized
difference between the mean vector of the genre's items and the mean of all items. The
target's rank among the unseen items is tracked from turn 0 (before any critique).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


def genre_directions(items: torch.Tensor, genres: torch.Tensor) -> torch.Tensor:
    """(G, d) unit vectors: mean of the items of each genre minus the mean of all items."""
    genres = genres.float()
    count = genres.sum(0).clamp(min=1)[:, None]
    return F.normalize(genres.T @ items / count - items.mean(0), dim=-1)


def simulate(users: torch.Tensor, items: torch.Tensor, genres: torch.Tensor, sessions: pd.DataFrame,
             turns: int = 5, step: float = 0.5, seen: dict[int, np.ndarray] | None = None,
             genre_names: list[str] | None = None, seed: int = 0) -> pd.DataFrame:
    """Run one session per row of ``sessions`` (columns ``user_id``, ``item_id`` = the target).

    Returns one row per (session, turn) with the target's ``rank`` (1 = best) at the start
    of that turn, the ``shown`` item, and the ``critique`` made (``"-genre"``/``"+genre"``,
    ``"accept"`` when the target is shown, ``""`` when no aspect separates the two items).
    """
    if turns < 0 or step < 0:
        raise ValueError(f"turns and step must be >= 0, got turns={turns}, step={step}")
    rng = np.random.default_rng(seed)
    directions = genre_directions(items, genres)
    genres = genres.bool()
    names = genre_names or [str(g) for g in range(genres.shape[1])]
    seen = seen or {}
    rows = []
    for s, (user, target) in enumerate(zip(sessions.user_id.to_numpy(), sessions.item_id.to_numpy())):
        u = users[user].clone()
        mask = torch.zeros(len(items), dtype=torch.bool)
        mask[torch.as_tensor(seen.get(int(user), np.array([], dtype=np.int64)), dtype=torch.long)] = True
        mask[target] = False
        shown = torch.zeros_like(mask)
        done = False
        for t in range(turns + 1):
            scores = (items @ u).masked_fill(mask, float("-inf"))
            rank = 1 if done else int((scores > scores[target]).sum()) + 1
            row = {"session": s, "user_id": int(user), "target": int(target), "turn": t, "rank": rank,
                   "shown": -1, "critique": ""}
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
                        u = u + sign * step * u.norm() * directions[g]
                        row["critique"] = ("+" if sign > 0 else "-") + names[g]
            rows.append(row)
    return pd.DataFrame(rows)
