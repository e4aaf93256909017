"""Model merging: soups, task arithmetic, TIES, DARE, Breadcrumbs, PCB, Fisher, Model Stock,
SLERP and layer swapping on state dicts, and streaming merges of safetensors checkpoints.

``merge(method, base, models, **params)`` follows mergekit's method of the same name (see
:mod:`nbsupport.merging.methods` for the paper variants); ``merge_files(config, out_dir)``
and ``python -m nbsupport.merging CONFIG.yaml OUT_DIR`` do the same from files on disk, with
mergekit's configs: gradients, filter lists, ``slices:``, ``dtype`` as the compute dtype
(:mod:`nbsupport.merging.config`; docs/merging.md).
"""

from nbsupport.merging.config import parse_config
from nbsupport.merging.files import merge_files
from nbsupport.merging.fisher import fisher_diagonal
from nbsupport.merging.methods import (
    METHODS,
    MergeError,
    Soup,
    greedy_soup,
    interpolate,
    merge,
    sign_conflicts,
    task_vectors,
    uniform_soup,
)

__all__ = [
    "METHODS", "MergeError", "Soup", "fisher_diagonal", "greedy_soup", "interpolate", "merge",
    "merge_files", "parse_config", "sign_conflicts", "task_vectors", "uniform_soup",
]
