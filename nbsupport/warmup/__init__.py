"""Learning-rate warmup, rewarming and warm-started models (theme: ``notebooks/warmup``).

- :mod:`~nbsupport.warmup.lm`: character-LM experiments (corpora over one vocabulary, a
  scheduled AdamW run on the shared loop from any global step, continued or branched through the
  Fit it returns, LR sensitivity);
- :mod:`~nbsupport.warmup.ibp`: certified training by interval bound propagation with an ε
  ramp (the model is :class:`nbsupport.models.ibp_mlp.IBPNet`);
- :mod:`~nbsupport.warmup.growth`: warm-starting a deeper GPT from a trained shallow one
  (depthwise stacking, G_stack).

The schedules themselves are the shared :mod:`nbsupport.schedules`.
"""

from nbsupport.warmup import growth, ibp, lm

__all__ = ["growth", "ibp", "lm"]
