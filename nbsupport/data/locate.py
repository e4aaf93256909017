"""Finding data files: a user path, the installed package, the cache, or a download.

Every loader goes through :func:`package_file` (files inside an installed wheel/sdist, found
with ``importlib.util.find_spec`` without importing the package) and raises
:class:`DataNotFound` with the install command when nothing is there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from pathlib import Path

from nbsupport.atomic import atomic_open

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("NBSUPPORT_CACHE", ROOT / "data" / "cache"))


class DataNotFound(FileNotFoundError):
    """A dataset is missing; the message says what to install or where to put it."""


def package_dir(package: str) -> Path | None:
    """Folder of an installed top-level package, without importing it (None if absent)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, install: str) -> Path:
    """``<package>/<relative>`` from an installed package, or :class:`DataNotFound` naming ``install``."""
    base = package_dir(package)
    if base is not None and (base / relative).exists():
        return base / relative
    raise DataNotFound(
        f"{relative} not found: package '{package}' is not installed. Install it with: {install} "
        "(or run `make setup`), or pass path=... to the loader"
    )


def user_path(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFound(f"{what}: no file or folder at {p}")
    return p


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, digest: str, algorithm: str = "sha256") -> Path:
    """Download ``url`` to ``dest`` atomically and verify its checksum (md5 or sha256)."""
    if dest.exists():
        return dest
    try:
        with urllib.request.urlopen(url, timeout=60) as r, atomic_open(dest) as f:
            h = hashlib.new(algorithm)
            for block in iter(lambda: r.read(1 << 20), b""):
                h.update(block)
                f.write(block)
            if h.hexdigest() != digest:  # raised inside: the partial file is removed
                raise DataNotFound(f"checksum mismatch for {url}: expected {algorithm} {digest}, got {h.hexdigest()}")
    except OSError as exc:
        raise DataNotFound(f"could not download {url} ({exc}); put the file at {dest} by hand") from exc
    return dest
