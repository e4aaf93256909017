"""The experiment harness the merging notebooks share: a suite of tasks over one body.

A :class:`Suite` holds several classification tasks that share a *body* (the part whose
fine-tunes get merged) and gives each task its own linear head:

- ``family="sentence"``: the top ``n_layers`` transformer layers of all-MiniLM-L6-v2 on cached
  features of the frozen lower layers (:func:`nbsupport.models.classifiers.sentence_features`),
  text tasks from :mod:`nbsupport.data.tasks`; the pretrained base is the real model's layers.
- ``family="cnn"``: :class:`~nbsupport.models.classifiers.SmallCNN` on derived MNIST-5k tasks;
  the "pretrained" base is the CNN trained on digit classification on 1500 images held apart
  from the task images.

Fine-tuning (:meth:`Suite.finetune`) trains body and head with AdamW; evaluation
(:meth:`Suite.evaluate`) takes a body state dict and a head state dict, so merged bodies are
evaluated with each task's own head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from nbsupport.data import tasks as task_data
from nbsupport.merging.fisher import fisher_diagonal
from nbsupport.models.classifiers import Classifier, SentenceBody, SmallCNN
from nbsupport.train import train

State = dict[str, torch.Tensor]


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor


@dataclass
class SuiteTask:
    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split


@dataclass
class Expert:
    """A fine-tune: the body and head state dicts and the task it was trained on."""

    task: int
    body: State
    head: State


def _split(x: np.ndarray, y: np.ndarray, n_train: int, n_val: int, n_test: int, seed: int):
    order = np.random.default_rng(seed).permutation(len(y))
    parts, s = [], 0
    for n in (n_train, n_val, n_test):
        idx = order[s:s + n]
        parts.append(Split(torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(y[idx]).long()))
        s += n
    return parts


class Suite:
    """Tasks over a shared body; see the module docstring."""

    def __init__(self, family: str, tasks: list[str], n_train: int = 600, n_val: int = 150, n_test: int = 300,
                 n_layers: int = 1, max_len: int = 24, seed: int = 0, pretrain_steps: int = 150):
        if family not in ("sentence", "cnn"):
            raise ValueError(f"family must be 'sentence' or 'cnn', got {family!r}")
        self.family, self.n_layers, self.seed = family, n_layers, seed
        self.tasks: list[SuiteTask] = []
        if family == "sentence":
            from nbsupport.models.classifiers import pretrained_top_layers, sentence_features

            total = n_train + n_val + n_test
            for name in tasks:
                t = task_data.text_task(name, n_per_class=-(-total // len(task_data._pools(name))) + 1, seed=seed)
                x = sentence_features(t.texts, n_layers, max_len, cache_key=f"{name}-{seed}")
                self.tasks.append(SuiteTask(name, t.classes, *_split(x, t.labels, n_train, n_val, n_test, seed)))
            self._base = pretrained_top_layers(n_layers)
        else:
            rng = np.random.default_rng(seed)
            order = rng.permutation(5000)
            pre, rest = order[:1500], order[1500:]
            for name in tasks:
                t = task_data.mnist_task(name)
                self.tasks.append(SuiteTask(name, t.classes,
                                            *_split(t.images[rest], t.labels[rest], n_train, n_val, n_test, seed)))
            digits = task_data.mnist_task("digit")
            torch.manual_seed(seed)
            model = Classifier(SmallCNN(), 10)
            x, y = torch.from_numpy(digits.images[pre]), torch.from_numpy(digits.labels[pre])
            self._fit(model, Split(x, y), [{"params": model.parameters(), "lr": 3e-3}], pretrain_steps, 64, seed)
            self._base = {k: v.detach().clone() for k, v in model.body.state_dict().items()}

    # ------------------------------------------------------------ models
    def body(self) -> torch.nn.Module:
        return SentenceBody(self.n_layers) if self.family == "sentence" else SmallCNN()

    def base(self) -> State:
        """The pretrained body."""
        return {k: v.clone() for k, v in self._base.items()}

    def random_base(self, seed: int) -> State:
        """A freshly initialized body of the same architecture (a weak base)."""
        torch.manual_seed(seed)
        return {k: v.detach().clone() for k, v in self.body().state_dict().items()}

    def model(self, body: State, head: State | None, task: int, head_seed: int = 0) -> Classifier:
        torch.manual_seed(head_seed)
        m = Classifier(self.body(), len(self.tasks[task].classes))
        m.body.load_state_dict(body)
        if head is not None:
            m.head.load_state_dict(head)
        return m

    # ------------------------------------------------------------ training and evaluation
    @staticmethod
    def _fit(model, data: Split, groups, steps: int, batch: int, seed: int):
        """AdamW over ``groups`` (param groups with their lr), linear warmup over 10% of the steps."""
        g = torch.Generator().manual_seed(seed)

        def batches():
            while True:
                perm = torch.randperm(len(data.y), generator=g)
                for s in range(0, len(perm) - batch + 1, batch):
                    idx = perm[s:s + batch]
                    yield data.x[idx].float(), data.y[idx]

        opt = torch.optim.AdamW(groups, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)))
        return train(model, batches(), lambda m, b: F.cross_entropy(m(b[0]), b[1]), opt, steps,
                     scheduler=sched, progress=False)

    def finetune(self, task: int, body: State, lr: float = 1e-4, steps: int = 60, batch: int = 32,
                 seed: int = 0, head_seed: int = 0, head_lr: float | None = None) -> Expert:
        """Fine-tune body + a new head (initialized from ``head_seed``) on ``task``'s training split."""
        m = self.model(body, None, task, head_seed)
        groups = [{"params": m.body.parameters(), "lr": lr},
                  {"params": m.head.parameters(), "lr": head_lr if head_lr is not None else max(lr, 1e-3)}]
        self._fit(m, self.tasks[task].train, groups, steps, batch, seed)
        return Expert(task, {k: v.detach().clone() for k, v in m.body.state_dict().items()},
                      {k: v.detach().clone() for k, v in m.head.state_dict().items()})

    @torch.no_grad()
    def logits(self, body: State, head: State, task: int, split: str = "val", batch: int = 256) -> torch.Tensor:
        """The (n, classes) logits of body + head on one split of ``task``."""
        m = self.model(body, head, task).eval()
        x = getattr(self.tasks[task], split).x
        return torch.cat([m(x[s:s + batch].float()) for s in range(0, len(x), batch)]) if len(x) else torch.zeros(0)

    def evaluate(self, body: State, head: State, task: int, split: str = "val", batch: int = 256) -> dict[str, float]:
        """Accuracy and mean cross-entropy of body + head on one split of ``task``."""
        return score_logits(self.logits(body, head, task, split, batch), getattr(self.tasks[task], split).y)

    def fisher(self, expert: Expert, n_examples: int = 128, batch: int = 16) -> State:
        """Diagonal Fisher of the expert's body parameters on its task's training inputs."""
        m = self.model(expert.body, expert.head, expert.task)
        m.head.requires_grad_(False)
        x = self.tasks[expert.task].train.x[:n_examples].float()
        f = fisher_diagonal(m, [x[s:s + batch] for s in range(0, len(x), batch)])
        return {k.removeprefix("body."): v for k, v in f.items()}


def score_logits(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``logits`` for labels ``y`` (an ensemble's averaged logits too)."""
    if len(y) == 0:
        return {"acc": 0.0, "loss": 0.0}
    return {"acc": float((logits.argmax(-1) == y).float().mean()), "loss": float(F.cross_entropy(logits, y))}


class Scorer:
    """Normalized accuracy of merged bodies: acc(merged body + head i, task i) / acc(expert i)."""

    def __init__(self, suite: Suite, experts: list[Expert]):
        self.suite, self.experts = suite, experts
        self._ref: dict[tuple[int, str], float] = {}

    def expert_acc(self, i: int, split: str = "val") -> float:
        if (i, split) not in self._ref:
            e = self.experts[i]
            self._ref[(i, split)] = self.suite.evaluate(e.body, e.head, e.task, split)["acc"]
        return self._ref[(i, split)]

    def accuracies(self, body: State, which: list[int], split: str = "val") -> list[float]:
        return [self.suite.evaluate(body, self.experts[i].head, self.experts[i].task, split)["acc"] for i in which]

    def normalized(self, body: State, which: list[int], split: str = "val") -> list[float]:
        accs = self.accuracies(body, which, split)
        return [a / max(self.expert_acc(i, split), 1e-9) for a, i in zip(accs, which, strict=True)]

    def tune(self, method: str, base: State, which: list[int], lambdas: list[float],
             bodies: list[State] | None = None, **params):
        """Pick λ on validation (mean normalized accuracy); return (λ, val score, test per task, merged body).

        ``bodies``: the bodies to merge in place of the experts' own (e.g. trimmed ones), one per
        index in ``which``; they are scored with the experts' heads against the experts."""
        from nbsupport.merging.methods import REGISTRY, merge

        bodies = [self.experts[i].body for i in which] if bodies is None else bodies
        scaled = "lambda" in REGISTRY[method].params
        if not scaled and lambdas != [1.0]:
            raise ValueError(f"{method!r} has no λ: pass lambdas=[1.0]")
        best = None
        for lam in lambdas:
            body = merge(method, base, bodies, **({"lam": lam} if scaled else {}), **params)
            score = float(np.mean(self.normalized(body, which, "val")))
            if best is None or score > best[1]:
                best = (lam, score, body)
        lam, score, body = best
        return lam, score, self.normalized(body, which, "test"), body


def gain_retained(merged: list[float], base: list[float], expert: list[float]) -> float:
    """Share of the experts' gain over the base body that the merged body keeps, over tasks:
    (mean merged - mean base) / (mean expert - mean base) (NaN when the experts gain nothing).

    Unlike normalized accuracy (merged / expert) it does not credit the accuracy a task's head
    already reaches on the un-fine-tuned body."""
    gain = float(np.mean(expert) - np.mean(base))
    return float(np.mean(merged) - np.mean(base)) / gain if gain > 0 else float("nan")
