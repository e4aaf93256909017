"""The experiment harness the merging notebooks share: a suite of tasks over one body.

A :class:`Suite` holds several classification tasks that share a *body* (the part whose
fine-tunes get merged) and gives each task its own linear head:

- ``family="sentence"``: the top ``n_layers`` transformer layers of all-MiniLM-L6-v2 on cached
  features of the frozen lower layers (:func:`nbsupport.models.classifiers.sentence_features`),
  text tasks from :mod:`nbsupport.data.tasks`; the pretrained base is the real model's layers.
- ``family="cnn"``: :class:`~nbsupport.models.classifiers.SmallCNN` on derived MNIST-5k tasks;
  the "pretrained" base is the CNN (``width`` times as many channels as the default) trained on
  digit classification on 1500 images held apart from the task images.

A task name ``"parent=class"`` is a balanced one-vs-rest split of a text task (``class``
against the parent's other classes, drawn evenly), so a few corpora give many related tasks.

Fine-tuning (:meth:`Suite.finetune`) trains body and head with AdamW through
:func:`nbsupport.train.fit` (one int seed sets the head's initialization and the data order);
evaluation
(:meth:`Suite.evaluate`) takes a body state dict and a head state dict, so merged bodies are
evaluated with each task's own head.

Training, evaluation, embeddings and Fishers run on the suite's ``device`` (default
:func:`nbsupport.device`); every state dict the suite hands out or takes (bases, experts,
merged bodies) lives on the CPU, where the merge methods work, and the data stay there until
a batch is moved to the device.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from nbsupport.data import tasks as task_data
from nbsupport.env import device as default_device
from nbsupport.merging.fisher import fisher_diagonal
from nbsupport.models.classifiers import Classifier, SentenceBody, SmallCNN
from nbsupport.schedules import constant
from nbsupport.train import fit

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
                 n_layers: int = 1, max_len: int = 24, seed: int = 0, pretrain_steps: int = 150, width: int = 1,
                 device: str | torch.device | None = None):
        if family not in ("sentence", "cnn"):
            raise ValueError(f"family must be 'sentence' or 'cnn', got {family!r}")
        self._device = None if device is None else torch.device(device)
        self.family, self.n_layers, self.seed, self.width = family, n_layers, seed, width
        self.tasks: list[SuiteTask] = []
        if family == "sentence":
            from nbsupport.models.classifiers import pretrained_top_layers, sentence_features

            total = n_train + n_val + n_test
            for name in tasks:
                t = one_vs_rest(name, total, seed) if "=" in name else task_data.text_task(
                    name, n_per_class=-(-total // len(task_data._pools(name))) + 1, seed=seed)
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
            x, y = torch.from_numpy(digits.images[pre]), torch.from_numpy(digits.labels[pre]).long()
            res = fit(lambda s: Classifier(self.body(), 10), (x, y), steps=pretrain_steps, batch_size=64, lr=3e-3,
                      loss=_loss, schedule=constant(max(1, pretrain_steps // 10)), seeds=[seed], workers=1,
                      device=self.device, progress=False)
            self._base = cpu_state(res.models[seed].body)

    @property
    def device(self) -> torch.device:
        """Where the suite trains and evaluates: the ``device`` it was given, else
        :func:`nbsupport.device` at the time of the call."""
        return self._device if self._device is not None else default_device()

    # ------------------------------------------------------------ models
    def body(self) -> torch.nn.Module:
        return SentenceBody(self.n_layers) if self.family == "sentence" else SmallCNN(width=self.width)

    def base(self) -> State:
        """The pretrained body."""
        return {k: v.clone() for k, v in self._base.items()}

    def random_base(self, seed: int) -> State:
        """A freshly initialized body of the same architecture (a weak base)."""
        torch.manual_seed(seed)
        return {k: v.detach().clone() for k, v in self.body().state_dict().items()}

    def model(self, body: State, head: State | None, task: int, head_seed: int | None = None) -> Classifier:
        """Body + a linear head for ``task``; a new head (``head=None``) draws from torch's global
        generator, reseeded with ``head_seed`` first when one is given."""
        if head_seed is not None:
            torch.manual_seed(head_seed)
        m = Classifier(self.body(), len(self.tasks[task].classes))
        m.body.load_state_dict(body)
        if head is not None:
            m.head.load_state_dict(head)
        return m

    # ------------------------------------------------------------ training and evaluation
    def new_head(self, task: int, seed: int) -> State:
        """A freshly initialized head for ``task`` drawn from ``seed`` (torch's global generator untouched)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return {k: v.detach().clone() for k, v in self.model(self._base, None, task).head.state_dict().items()}

    def finetune(self, task: int, body: State, lr: float = 1e-4, steps: int = 60, batch: int = 32,
                 seed: int = 0, head_lr: float | None = None, head: State | None = None) -> Expert:
        """Fine-tune body + head on ``task`` with AdamW (no weight decay, linear warmup over 10 % of
        the steps) through :func:`nbsupport.train.fit`; ``seed`` sets the minibatch order and the
        head's initialization (unless ``head`` gives the starting head, e.g. :meth:`new_head` shared
        by the ingredients of a soup), so two arms with one seed draw the same."""
        data = self.tasks[task].train
        head_lr = head_lr if head_lr is not None else max(lr, 1e-3)

        def optimizer(m: Classifier) -> torch.optim.Optimizer:
            return torch.optim.AdamW([{"params": m.body.parameters(), "lr": lr},
                                      {"params": m.head.parameters(), "lr": head_lr}], weight_decay=0.0)

        res = fit(lambda s: self.model(body, head, task), (data.x, data.y), steps=steps, batch_size=batch,
                  loss=_loss, optimizer=optimizer, schedule=constant(max(1, steps // 10)), seeds=[seed],
                  workers=1, device=self.device, progress=False)
        m = res.models[seed]
        return Expert(task, cpu_state(m.body), cpu_state(m.head))

    def multitask(self, tasks: list[int], body: State, lr: float = 1e-4, steps: int = 200, batch: int = 32,
                  seed: int = 0) -> State:
        """The body trained jointly on ``tasks`` (one head each, every step one minibatch of each
        task, losses summed) through :func:`nbsupport.train.fit`: a multitask-pretrained base."""
        sizes = [len(self.tasks[t].classes) for t in tasks]

        def make(s: int) -> torch.nn.Module:
            m = torch.nn.Module()
            m.body = self.body()
            m.body.load_state_dict(body)
            m.heads = torch.nn.ModuleList([torch.nn.Linear(m.body.dim, c) for c in sizes])
            return m

        def sample(step: int, g: torch.Generator):
            out = []
            for t in tasks:
                d = self.tasks[t].train
                idx = torch.randint(len(d.y), (batch,), generator=g)
                out.append((d.x[idx], d.y[idx]))
            return out

        def loss(m, batches):
            return sum(F.cross_entropy(h(m.body(x.float())), y) for h, (x, y) in zip(m.heads, batches, strict=True))

        res = fit(make, sample, steps=steps, loss=loss, lr=lr, schedule=constant(max(1, steps // 10)), seeds=[seed],
                  workers=1, device=self.device, progress=False)
        return cpu_state(res.models[seed].body)

    @torch.no_grad()
    def embed(self, body: State, task: int, split: str, batch: int = 256) -> torch.Tensor:
        """The body's (n, d) outputs on one split of ``task`` (features for a linear probe), on the CPU."""
        m = self.body()
        m.load_state_dict(body)
        m.eval().to(self.device)
        x = getattr(self.tasks[task], split).x
        return torch.cat([m(x[s:s + batch].to(self.device).float()).cpu() for s in range(0, len(x), batch)])

    def probe(self, body: State, task: int, steps: int = 300, lr: float = 1e-2, seed: int = 0) -> float:
        """Test accuracy of a linear probe (full-batch AdamW through :func:`nbsupport.train.fit`)
        trained on the frozen ``body``'s outputs for ``task``'s training split."""
        x, y = self.embed(body, task, "train"), self.tasks[task].train.y
        mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
        res = fit(lambda s: torch.nn.Linear(x.shape[1], len(self.tasks[task].classes)), ((x - mean) / std, y),
                  steps=steps, batch_size=len(y), lr=lr, seeds=[seed], workers=1, device=self.device, progress=False)
        with torch.no_grad():
            logits = res.models[seed](((self.embed(body, task, "test") - mean) / std).to(self.device)).cpu()
        return score_logits(logits, self.tasks[task].test.y)["acc"]

    @torch.no_grad()
    def logits(self, body: State, head: State, task: int, split: str = "val", batch: int = 256) -> torch.Tensor:
        """The (n, classes) logits of body + head on one split of ``task``, computed on the suite's
        device, returned on the CPU."""
        m = self.model(body, head, task).eval().to(self.device)
        x = getattr(self.tasks[task], split).x
        if not len(x):
            return torch.zeros(0)
        return torch.cat([m(x[s:s + batch].to(self.device).float()).cpu() for s in range(0, len(x), batch)])

    def evaluate(self, body: State, head: State, task: int, split: str = "val", batch: int = 256) -> dict[str, float]:
        """Accuracy and mean cross-entropy of body + head on one split of ``task``."""
        return score_logits(self.logits(body, head, task, split, batch), getattr(self.tasks[task], split).y)

    def fisher(self, expert: Expert, n_examples: int = 128, batch: int = 16) -> State:
        """Diagonal Fisher of the expert's body parameters on its task's training inputs (computed
        on the suite's device, returned on the CPU)."""
        m = self.model(expert.body, expert.head, expert.task).to(self.device)
        m.head.requires_grad_(False)
        x = self.tasks[expert.task].train.x[:n_examples].to(self.device).float()
        f = fisher_diagonal(m, [x[s:s + batch] for s in range(0, len(x), batch)])
        return {k.removeprefix("body."): v.cpu() for k, v in f.items()}


def cpu_state(module: torch.nn.Module) -> State:
    """A copy of ``module``'s state dict on the CPU (detached; the module keeps its own tensors)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x.float()), y)


def one_vs_rest(name: str, total: int, seed: int = 0) -> task_data.TextTask:
    """A balanced binary text task ``"parent=class"``: half ``class``, half the parent task's other
    classes in equal shares (fewer when a pool runs short); label 1 is ``class``."""
    parent, _, positive = name.partition("=")
    pools = task_data._pools(parent)
    if positive not in pools:
        raise ValueError(f"one-vs-rest task {name!r}: {positive!r} is not a class of {parent!r}; choose from {list(pools)}")
    rest = [c for c in pools if c != positive]
    n_pos = min(-(-total // 2), len(pools[positive]))
    t = task_data.text_task(parent, n_per_class=max(n_pos, -(-n_pos // len(rest))), seed=seed)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    pos = [i for i, y in enumerate(t.labels) if t.classes[y] == positive][:n_pos]
    neg = [i for c in rest for i in [j for j, y in enumerate(t.labels) if t.classes[y] == c][:-(-n_pos // len(rest))]]
    neg = list(rng.permutation(neg)[:n_pos])
    order = rng.permutation(pos + neg)
    return task_data.TextTask(name, ["rest", positive], [t.texts[i] for i in order],
                              np.array([int(t.classes[t.labels[i]] == positive) for i in order]))


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
