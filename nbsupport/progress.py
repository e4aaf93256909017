"""Progress bars that leave plain text: no widget in a saved notebook to reopen as "model not found".

``progress(...)`` takes tqdm's arguments and returns a text bar on standard output (not
standard error, so no pink stream in a notebook), redrawn in place in JupyterLab and a
terminal. The finished bar stays as one line of text in the saved notebook. In batch runs
(``NBSUPPORT_HEADLESS=1``) it redraws at most every 30 s, so an executed notebook holds a
few lines per bar at most.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.std import tqdm

__all__ = ["progress"]


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """A plain-text ``tqdm`` bar (same arguments; ``leave=True``, 80 columns, stdout)."""
    batch = os.environ.get("NBSUPPORT_HEADLESS", "") not in ("", "0")
    kwargs.setdefault("file", sys.stdout)
    kwargs.setdefault("ncols", 80)
    kwargs.setdefault("leave", True)
    kwargs.setdefault("mininterval", 30.0 if batch else 0.5)
    return tqdm(iterable, **kwargs)
