"""MovieLens with the features the cold-start models use, and a tiny synthetic stand-in.

:func:`load_movielens` wraps :func:`nbsupport.data.movielens.load_movielens100k` and turns
attributes into dense feature groups (a LightFM-style feature matrix split by group):

- items: ``genre`` (multi-hot over the 19 genres), ``year`` (one-hot release-year bucket),
  ``title`` (the title's all-MiniLM-L6-v2 sentence embedding, 384-d, cached on disk);
- users: ``age`` (one-hot bucket: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+, the
  MovieLens-1M buckets), ``gender`` (one-hot), ``occupation`` (one-hot).

Every interaction counts as implicit feedback (ratings are kept but not thresholded).
:func:`synthetic` builds the same structure from a planted low-rank model, for fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

AGE_EDGES = (18, 25, 35, 45, 50, 56)
YEAR_EDGES = (1960, 1970, 1980, 1990, 1994, 1996, 1997)


@dataclass
class Interactions:
    """Ratings plus dense feature groups; ids are 0-based and contiguous."""

    ratings: pd.DataFrame  # user_id, item_id, rating, timestamp
    items: pd.DataFrame  # item_id, title, year, genres
    users: pd.DataFrame  # user_id, age, gender, occupation
    item_features: dict[str, torch.Tensor] = field(default_factory=dict)  # group -> (n_items, width)
    user_features: dict[str, torch.Tensor] = field(default_factory=dict)  # group -> (n_users, width)
    genres: list[str] = field(default_factory=list)  # column names of item_features["genre"]
    name: str = "movielens-100k"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        groups = {k: tuple(v.shape[1:]) for k, v in {**self.item_features, **self.user_features}.items()}
        return (f"Interactions({self.name}: {self.n_users} users, {self.n_items} items, "
                f"{len(self.ratings)} interactions, feature groups {groups})")


def _one_hot(codes: np.ndarray, width: int) -> torch.Tensor:
    out = torch.zeros(len(codes), width)
    out[torch.arange(len(codes)), torch.as_tensor(codes, dtype=torch.long)] = 1.0
    return out


def _categorical(values: pd.Series) -> torch.Tensor:
    codes, uniques = pd.factorize(values, sort=True)
    return _one_hot(codes, len(uniques))


def item_feature_groups(items: pd.DataFrame, title_vectors: np.ndarray | None) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Genre multi-hot, year bucket one-hot (missing year: its own bucket), title embedding."""
    genres = sorted({g for gs in items["genres"] for g in gs})
    col = {g: j for j, g in enumerate(genres)}
    multi = torch.zeros(len(items), len(genres))
    for i, gs in enumerate(items["genres"]):
        for g in gs:
            multi[i, col[g]] = 1.0
    year = items["year"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    bucket = np.where(np.isnan(year), len(YEAR_EDGES) + 1, np.digitize(np.nan_to_num(year), YEAR_EDGES))
    groups = {"genre": multi, "year": _one_hot(bucket, len(YEAR_EDGES) + 2)}
    if title_vectors is not None:
        groups["title"] = torch.as_tensor(title_vectors, dtype=torch.float32)
    return groups, genres


def user_feature_groups(users: pd.DataFrame) -> dict[str, torch.Tensor]:
    """Age bucket, gender and occupation, one-hot each."""
    age = np.digitize(users["age"].to_numpy(), AGE_EDGES)
    return {"age": _one_hot(age, len(AGE_EDGES) + 1), "gender": _categorical(users["gender"]),
            "occupation": _categorical(users["occupation"])}


def title_texts(items: pd.DataFrame) -> list[str]:
    """The text embedded for each item: its title."""
    return [str(t) for t in items["title"]]


def load_movielens(path: str | None = None, titles: bool = True, variant: str = "100k") -> Interactions:
    """MovieLens-100K (offline, from the recbole wheel, or ``path``) or, with ``variant="1m"``,
    MovieLens-1M (``path`` or ``data/cache/movielens/ml-1m``), with item and user features.

    ``titles=False`` skips the sentence embeddings (no ``title`` group). The embeddings are
    cached under ``data/cache/embeddings`` the first time (about a minute on two cores for 100K).
    """
    from nbsupport.data.movielens import load_movielens1m, load_movielens100k

    if variant not in ("100k", "1m"):
        raise ValueError(f"unknown MovieLens variant {variant!r}; choose '100k' or '1m'")
    frames = load_movielens100k(path) if variant == "100k" else load_movielens1m(path)
    vectors = None
    if titles:
        from nbsupport.data.sentence import embed

        vectors = embed(title_texts(frames["items"]), cache_key=f"ml{variant}-titles")
    item_feats, genres = item_feature_groups(frames["items"], vectors)
    return Interactions(frames["ratings"], frames["items"], frames["users"], item_feats,
                        user_feature_groups(frames["users"]), genres, name=f"movielens-{variant}")


def synthetic(n_users: int = 60, n_items: int = 80, per_user: int = 12, n_genres: int = 5, dim: int = 8,
              seed: int = 0) -> Interactions:
    """A tiny dataset with the same structure: users prefer items whose genres match theirs.

    Items get 1-2 genres and a ``title`` vector (a noisy random projection of the genres);
    each user has a favourite genre (tied to its ``occupation``) and picks ``per_user``
    items, mostly of that genre, at increasing timestamps.
    """
    rng = np.random.default_rng(seed)
    names = [f"g{j}" for j in range(n_genres)]
    item_genres = [sorted(set(rng.choice(n_genres, size=rng.integers(1, 3), replace=False).tolist()))
                   for _ in range(n_items)]
    fav = rng.integers(0, n_genres, n_users)
    rows = []
    for u in range(n_users):
        match = np.array([fav[u] in g for g in item_genres], dtype=float)
        p = (0.2 + 3.0 * match) / (0.2 + 3.0 * match).sum()
        chosen = rng.choice(n_items, size=min(per_user, n_items), replace=False, p=p)
        rows += [(u, int(i), 4.0, 1000 * u + t) for t, i in enumerate(chosen)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": range(n_items), "title": [f"item {i}" for i in range(n_items)],
                          "year": pd.array(rng.integers(1950, 1999, n_items), dtype="Int64"),
                          "genres": [[names[j] for j in g] for g in item_genres]})
    users = pd.DataFrame({"user_id": range(n_users), "age": rng.integers(15, 70, n_users),
                          "gender": rng.choice(["F", "M"], n_users), "occupation": [f"job{f}" for f in fav]})
    proj = rng.normal(size=(n_genres, dim))
    multi = np.zeros((n_items, n_genres))
    for i, g in enumerate(item_genres):
        multi[i, g] = 1.0
    title = multi @ proj + 0.1 * rng.normal(size=(n_items, dim))
    title /= np.linalg.norm(title, axis=1, keepdims=True)
    item_feats, genres = item_feature_groups(items, title.astype(np.float32))
    return Interactions(ratings, items, users, item_feats, user_feature_groups(users), genres, name="synthetic")


def load(name: str = "movielens", **kwargs) -> Interactions:
    """``"movielens"`` (MovieLens-100K), ``"movielens-1m"`` (:func:`load_movielens`) or
    ``"synthetic"`` (:func:`synthetic`, for smoke runs).

    When MovieLens-1M is absent, one line says where to put it and MovieLens-100K, the
    largest dataset present, is loaded instead (its ``name`` says which one was used, and the
    record ``data_fallback`` says what was asked for, what was used and why).
    """
    from nbsupport.data.locate import DataNotFound

    loaders = {"movielens": load_movielens, "movielens-1m": lambda **kw: load_movielens(variant="1m", **kw),
               "synthetic": synthetic}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(loaders)}")
    try:
        return loaders[name](**kwargs)
    except DataNotFound as exc:
        if name != "movielens-1m" or kwargs.get("path"):
            raise
        from nbsupport.record import record

        print(f"{exc}. Falling back to MovieLens-100K, the largest dataset present.")
        record("data_fallback", {"asked": name, "used": "movielens-100k", "why": str(exc)})
        return load_movielens(**kwargs)
