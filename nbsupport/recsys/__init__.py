"""Recommendation under warm and cold start (theme: ``notebooks/recsys``).

``load_movielens`` (MovieLens-100K with item and user feature groups), ``split`` (warm,
item-cold, user-cold), ``evaluate`` and ``evaluate_users`` (per user), ``metrics`` (HR, Recall, Precision, NDCG, MRR, MAP
at K), ``models`` (popularity, BPR-MF, LightFM-style hybrid, content-only, contrastive
cold start with gated fusion, A-LLMRec stage-1 alignment) and ``critique`` (a critiquing
simulator). Scoring against the full catalogue goes through the ``topk_scores`` kernel.
"""

from nbsupport.recsys import critique, metrics, models
from nbsupport.recsys.features import Interactions, load, load_movielens, synthetic
from nbsupport.recsys.splits import Split, evaluate, evaluate_users, split

__all__ = ["Interactions", "Split", "critique", "evaluate", "evaluate_users", "load", "load_movielens", "metrics", "models", "split",
           "synthetic"]
