"""Files that are either whole or absent: atomic writes, and a lock for read-merge-write updates.

``atomic_write(path, data)`` writes to a uniquely named hidden file beside ``path`` and
renames it into place (``os.replace`` is atomic on POSIX), so a reader sees the old file or
the new one, never half of one, and parallel writers never share a temporary name. The file
gets the permissions the user's umask gives a new file (``mkstemp`` alone would give 0600).
``locked(path)`` serializes read-merge-write updates of one file across processes
(``fcntl.flock`` on a hidden lock file beside it).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success rename it onto ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched;
    an ``OSError`` of the temporary file names ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and (exc.filename is None or exc.filename == tmp):
            exc.filename = str(path)  # a full disk fails a write(), which names no file
        raise


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock for updating ``path`` (blocks until other holders release it).

    The lock is ``.<name>.lock`` beside ``path``; the kernel releases it when its holder exits,
    so a killed process never leaves it held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
