"""Training: :func:`fit` (one seeded loop over one or several seeds), :func:`run_seeds`, :func:`run_tasks`.

- :mod:`~nbsupport.train.loop`: ``fit`` and its result ``Fit`` (one log with a ``seed``
  column, the trained modules), how randomness derives from each int seed, ``fit_in_place``
  (one seed that trains a given module itself) and ``tensor_sampler``;
- :mod:`~nbsupport.train.parallel`: ``run_seeds`` and ``run_tasks`` (seeds, or any pieces of
  work, in forked workers, one torch thread each), ``default_workers`` and the
  ``NBSUPPORT_WORKERS`` contract, thread defaults;
- :mod:`~nbsupport.train.batched`: several seeds as one stacked model under ``vmap``;
"""

from nbsupport.train.loop import (
           Fit,
           cross_entropy_loss,
           derived_seed,
           fit,
           fit_in_place,
           tensor_sampler,
)
from nbsupport.train.parallel import cores, default_workers, one_thread, run_seeds, run_tasks

__all__ = ["Fit", "cores", "cross_entropy_loss", "default_workers", "derived_seed", "fit", "fit_in_place",
           "one_thread", "run_seeds", "run_tasks", "tensor_sampler"]
