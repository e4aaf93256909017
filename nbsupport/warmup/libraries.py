"""The learning-rate schedulers of other libraries, loaded for side-by-side comparisons.

timm's package import pulls in its models, which need torchvision; its schedulers
(``timm/scheduler/*.py``) need only torch. :func:`timm_schedulers` imports timm normally and,
where that fails for a missing dependency, loads the scheduler modules alone under a private
package name (so a later ``import timm`` is not affected).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

__all__ = ["timm_schedulers"]

_PRIVATE = "_nbsupport_timm"


def timm_schedulers() -> types.SimpleNamespace:
    """timm's ``CosineLRScheduler`` and ``WSDLRScheduler`` (an ImportError says how to install timm)."""
    try:
        from timm.scheduler.cosine_lr import CosineLRScheduler
        from timm.scheduler.wsd_lr import WSDLRScheduler
    except ImportError as err:
        spec = importlib.util.find_spec("timm")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("timm is not installed: `pip install --no-deps timm` "
                              "(its schedulers need only torch)") from err
        root = Path(next(iter(spec.submodule_search_locations)))
        for name, path in ((_PRIVATE, root), (f"{_PRIVATE}.scheduler", root / "scheduler")):
            if name not in sys.modules:  # empty packages: skip timm's own __init__ files
                pkg = types.ModuleType(name)
                pkg.__path__ = [str(path)]
                sys.modules[name] = pkg
        CosineLRScheduler = importlib.import_module(f"{_PRIVATE}.scheduler.cosine_lr").CosineLRScheduler
        WSDLRScheduler = importlib.import_module(f"{_PRIVATE}.scheduler.wsd_lr").WSDLRScheduler
    return types.SimpleNamespace(CosineLRScheduler=CosineLRScheduler, WSDLRScheduler=WSDLRScheduler)
