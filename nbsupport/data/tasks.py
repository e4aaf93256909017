"""Classification tasks for the merging notebooks, built from data that ships offline.

Text tasks (lines of text -> a label), each balanced by sampling ``n_per_class`` lines per class
with a fixed seed:

- ``author``: Shakespeare vs Milton vs the King James Bible (a line from each corpus);
- ``play``: which of five Shakespeare plays a line comes from;
- ``play_genre``: comedy vs tragedy vs history (the First Folio's grouping of the plays);
- ``bible_book``: which of five books of the Bible a verse comes from;
- ``testament``: Old vs New Testament;
- ``milton_work``: which of Milton's works a line comes from;
- ``movie_genre``: a MovieLens-100K film's genre (comedy, drama, action/thriller, horror) from
  its title alone, for films in exactly one of those groups.

MNIST tasks (derived labels or transformed images of MNIST 5k): ``digit``, ``parity``,
``high`` (digit ≥ 5), ``mod3``, ``prime``, ``loops`` (closed loops: 0 for 1 2 3 5 7, 1 for
0 4 6 9, 2 for 8), ``digit_rot90`` (the digit of the image turned by 90°), ``digit_inverted``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

import numpy as np

TEXT_TASKS = ("author", "play", "play_genre", "bible_book", "testament", "milton_work", "movie_genre")
MNIST_TASKS = ("digit", "parity", "high", "mod3", "prime", "loops", "digit_rot90", "digit_inverted")

PLAYS = ("hamlet", "richard_iii", "coriolanus", "midsummer_nights_dream", "tempest")
FOLIO = {
    "comedy": ("tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
               "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost", "midsummer_nights_dream",
               "merchant_of_venice", "as_you_like_it", "taming_of_the_shrew", "alls_well_that_ends_well",
               "twelfth_night", "winters_tale"),
    "history": ("john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
                "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii"),
    "tragedy": ("troilus_and_cressida", "coriolanus", "tragedy_of_titus_andronicus", "romeo_and_juliet",
                "timon_of_athens", "julius_caesar", "macbeth", "hamlet", "lear", "othello",
                "antony_and_cleopatra", "cymbeline"),
}
BOOKS = ("Psalms", "Genesis", "Isaiah", "Luke", "Proverbs")
NEW_TESTAMENT = {
    "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians", "2 Corinthians", "Galatians",
    "Ephesians", "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians", "1 Timothy",
    "2 Timothy", "Titus", "Philemon", "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John",
    "3 John", "Jude", "Revelation",
}
MOVIE_GROUPS = {"comedy": {"Comedy"}, "drama": {"Drama"}, "action/thriller": {"Action", "Thriller"},
                "horror": {"Horror"}}


@dataclass
class TextTask:
    """Texts with integer labels into ``classes``."""

    name: str
    classes: list[str]
    texts: list[str]
    labels: np.ndarray


@dataclass
class ImageTask:
    """MNIST images (n, 1, 28, 28) in [0, 1] with integer labels into ``classes``."""

    name: str
    classes: list[str]
    images: np.ndarray
    labels: np.ndarray


@cache
def _lines(corpus: str) -> list[tuple[str, str]]:
    from nbsupport.data.text import load_lines

    return load_lines(corpus)


def _pools(name: str) -> dict[str, list[str]]:
    """class -> candidate texts."""
    if name == "author":
        return {c: [t for _, t in _lines(c)] for c in ("shakespeare", "milton", "kjv")}
    if name == "play":
        return {p: [t for w, t in _lines("shakespeare") if w == p] for p in PLAYS}
    if name == "play_genre":
        return {g: [t for w, t in _lines("shakespeare") if w in plays] for g, plays in FOLIO.items()}
    if name == "bible_book":
        return {b: [t for w, t in _lines("kjv") if w == b] for b in BOOKS}
    if name == "testament":
        return {"old": [t for w, t in _lines("kjv") if w not in NEW_TESTAMENT],
                "new": [t for w, t in _lines("kjv") if w in NEW_TESTAMENT]}
    if name == "milton_work":
        works = sorted({w for w, _ in _lines("milton")})
        return {w: [t for x, t in _lines("milton") if x == w] for w in works}
    if name == "movie_genre":
        from nbsupport.data.movielens import load_movielens100k

        items = load_movielens100k()["items"]
        out: dict[str, list[str]] = {g: [] for g in MOVIE_GROUPS}
        for title, genres in zip(items["title"], items["genres"], strict=True):
            hits = [g for g, s in MOVIE_GROUPS.items() if s & set(genres)]
            if len(hits) == 1:
                out[hits[0]].append(str(title))
        return out
    raise ValueError(f"unknown text task {name!r}; choose from {TEXT_TASKS}")


def text_task(name: str, n_per_class: int, seed: int = 0) -> TextTask:
    """A balanced text task: ``n_per_class`` lines per class (fewer if a class has fewer)."""
    pools = _pools(name)
    rng = random.Random(f"{name}-{seed}")
    texts, labels = [], []
    for c, (_, pool) in enumerate(pools.items()):
        pick = rng.sample(pool, min(n_per_class, len(pool)))
        texts += pick
        labels += [c] * len(pick)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return TextTask(name, list(pools), [texts[i] for i in order], np.array([labels[i] for i in order]))


def text_tasks(names: tuple[str, ...] | list[str] = TEXT_TASKS, n_per_class: int = 300, seed: int = 0) -> list[TextTask]:
    return [text_task(n, n_per_class, seed) for n in names]


PRIMES = {2, 3, 5, 7}
LOOPS = {0: 1, 1: 0, 2: 0, 3: 0, 4: 1, 5: 0, 6: 1, 7: 0, 8: 2, 9: 1}


@cache
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from nbsupport.data.images import load_mnist5k

    return load_mnist5k()


def mnist_task(name: str) -> ImageTask:
    """One derived MNIST-5k task over all 5000 images.

    Any label task can be asked for on transformed images with a suffix: ``_rot90`` (turned by
    90°) or ``_inverted`` (1 - pixel), e.g. ``parity_rot90``: the same labels in another
    "language" of inputs."""
    X, y = _mnist()
    img = X.reshape(-1, 1, 28, 28).astype(np.float32)
    digits = [str(d) for d in range(10)]
    table = {
        "digit": (digits, y),
        "parity": (["even", "odd"], y % 2),
        "high": (["<5", ">=5"], (y >= 5).astype(np.int64)),
        "mod3": (["0", "1", "2"], y % 3),
        "prime": (["not prime", "prime"], np.isin(y, list(PRIMES)).astype(np.int64)),
        "loops": (["0", "1", "2"], np.vectorize(LOOPS.get)(y)),
    }
    task, _, transform = name.partition("_")
    if task not in table or transform not in ("", "rot90", "inverted"):
        raise ValueError(f"unknown MNIST task {name!r}; choose from {MNIST_TASKS} "
                         "(any of them with the suffix _rot90 or _inverted)")
    if transform == "rot90":
        img = np.ascontiguousarray(np.rot90(img, 1, axes=(2, 3)))
    elif transform == "inverted":
        img = 1.0 - img
    classes, labels = table[task]
    return ImageTask(name, classes, img, np.asarray(labels, dtype=np.int64))
