"""A tiny character-level GPT with the switches of "Small-scale proxies for large-scale
Transformer training instabilities" (Wortsman et al. 2023).

Pre-LayerNorm decoder-only transformer: token + learned position embeddings, ``layers``
blocks of causal multi-head self-attention and a GELU MLP, a final LayerNorm and an untied
output layer. Switches:

- ``qk_norm``: LayerNorm on queries and keys, per head, before the dot product (§3.1), which
  bounds the attention logits ``q·k/√d_head``;
- ``z_loss``: the coefficient of ``z_loss·log²Z`` added to the cross-entropy (§3.2), computed
  through the kernels resolver (:func:`nbsupport.kernels.cross_entropy.cross_entropy`).

:meth:`GPT.loss` returns the loss and, for plotting, the largest attention logit of the
step (over layers, heads, and unmasked query/key pairs) and the output ``log Z`` (mean and
largest absolute value over tokens); use it directly as ``nbsupport.train``'s loss function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nbsupport.kernels.cross_entropy import cross_entropy

__all__ = ["GPT", "GPTConfig", "gpt_loss"]


@dataclass
class GPTConfig:
    vocab: int
    block: int = 128
    d: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    qk_norm: bool = False
    z_loss: float = 0.0
    impl: str | None = None  # cross-entropy path for the resolver (None: automatic)

    def __post_init__(self) -> None:
        for name in ("vocab", "block", "d", "layers", "heads", "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive int, got {value!r}")
        if self.d % self.heads:
            raise ValueError(f"GPTConfig: d={self.d} must be divisible by heads={self.heads}")
        if self.z_loss < 0:
            raise ValueError(f"GPTConfig: z_loss must be >= 0, got {self.z_loss}")


class Attention(nn.Module):
    """Causal self-attention written out, so the pre-softmax logits can be inspected."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads, self.dh = cfg.heads, cfg.d // cfg.heads
        self.qkv = nn.Linear(cfg.d, 3 * cfg.d)
        self.proj = nn.Linear(cfg.d, cfg.d)
        self.q_norm = nn.LayerNorm(self.dh) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.dh) if cfg.qk_norm else nn.Identity()
        self.register_buffer("mask", torch.ones(cfg.block, cfg.block, dtype=torch.bool).tril(), persistent=False)
        self.max_logit = torch.tensor(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(self.dh)
        logits = logits.masked_fill(~self.mask[:t, :t], -math.inf)
        self.max_logit = logits.detach().amax()  # over unmasked pairs (masked ones are -inf)
        att = logits.softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d), nn.LayerNorm(cfg.d)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d, cfg.mlp_ratio * cfg.d), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.d, cfg.d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only character model; ``GPT(GPTConfig(vocab=...))`` or ``GPT(vocab=..., d=...)``."""

    def __init__(self, cfg: GPTConfig | None = None, **kwargs) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else GPTConfig(**kwargs)
        c = self.cfg
        self.tok = nn.Embedding(c.vocab, c.d)
        self.pos = nn.Embedding(c.block, c.d)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.d)
        self.head = nn.Linear(c.d, c.vocab, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T), T <= block."""
        t = idx.shape[1]
        if t > self.cfg.block:
            raise ValueError(f"sequence length {t} exceeds the block size {self.cfg.block}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))

    def max_attention_logit(self) -> float:
        """The largest pre-softmax attention logit of the last forward pass, over all layers."""
        return max(float(b.attn.max_logit) for b in self.blocks)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss (cross-entropy + z-loss) and per-step metrics.

        Metrics: ``ce`` (cross-entropy alone), ``max_attn_logit``, ``log_z`` (mean output
        log Z over tokens) and ``log_z_abs_max``.
        """
        logits = self(x)
        total, log_z = cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                     z_loss=self.cfg.z_loss, impl=self.cfg.impl)
        log_z = log_z.detach()
        ce = float(total.detach()) - self.cfg.z_loss * float((log_z.double() ** 2).mean())
        return total, {"ce": ce, "max_attn_logit": self.max_attention_logit(),
                       "log_z": float(log_z.mean()), "log_z_abs_max": float(log_z.abs().max())}

    @torch.no_grad()
    def evaluate(self, data: torch.Tensor, batches: int = 8, batch: int = 32, seed: int = 0) -> float:
        """Mean cross-entropy (nats/char) on ``batches`` fixed random windows of ``data``."""
        was_training = self.training
        self.eval()
        g = torch.Generator().manual_seed(seed)
        block, dev = self.cfg.block, next(self.parameters()).device
        offsets = torch.arange(block)
        total = 0.0
        for _ in range(batches):
            start = torch.randint(0, len(data) - block - 1, (batch, 1), generator=g)
            x, y = data[start + offsets].to(dev), data[start + offsets + 1].to(dev)
            logits = self(x)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
        self.train(was_training)
        return total / batches

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config(self) -> dict:
        return asdict(self.cfg)


def gpt_loss(model: GPT, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """``nbsupport.train`` loss function: ``model.loss(x, y)`` on a batch moved to the model's device."""
    dev = next(model.parameters()).device
    x, y = batch
    return model.loss(x.to(dev), y.to(dev))
