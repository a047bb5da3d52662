"""The embedded masked diffusion transformer: LLaDA in miniature, readable in one sitting.

A bidirectional transformer (no causal mask) with RoPE, RMSNorm and SwiGLU. It maps a
sequence in which some tokens are the mask token to logits for every position.

Two details make it safe to decode with left-padded batches:
* padded keys are masked out of attention, and
* RoPE positions count only real tokens (cumulative sum of the attention mask),
so a row's logits do not depend on how much padding precedes it.

A pass may cover only a `live` span of the sequence and take every other position's keys and
values from an earlier pass (`frozen`, as `hidden` records them): Fast-dLLM's approximate KV
cache for block diffusion (harness/engine/cache.py).

Optional grid structure embeddings (sudoku): `grid_regions` lists regions of a square grid,
each as the offsets *from the end of the sequence* of its cells in row-major order. The
answer is always the last `gen_length` tokens and the prompt template is fixed, so these
offsets are the same for every row. Each cell gets row + column + box + region embeddings
added to its token embedding, which exposes the grid's constraints to a small model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TransformerConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    rope_theta: float = 10000.0
    # Grid regions, each a list of cell offsets from the sequence end (row-major cells).
    grid_regions: list[list[int]] = field(default_factory=list)

    @property
    def d_ff(self) -> int:
        """SwiGLU width: 8/3 of d_model (same parameter count as a 4x MLP), a multiple of 32."""
        return 32 * math.ceil(8 * self.d_model / 3 / 32)

    @property
    def grid_side(self) -> int:
        return math.isqrt(len(self.grid_regions[0])) if self.grid_regions else 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TransformerConfig":
        return cls(**data)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class Attention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, cos, sin, key_mask, frozen=None, live=slice(None)):
        """(output, this pass's (keys, values) [B, H, T, hd]). With `frozen` (the whole sequence's
        keys and values) x covers only `live`, and the rest of the keys and values are the frozen ones."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        kept = (k, v)
        if frozen is not None:
            keys, values = frozen
            k = torch.cat([keys[:, :, :live.start], k, keys[:, :, live.stop:]], 2)
            v = torch.cat([values[:, :, :live.start], v, values[:, :, live.stop:]], 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.out(y.transpose(1, 2).reshape(B, T, D)), kept


class SwiGLU(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.d_model)
        self.attn = Attention(config)
        self.mlp_norm = nn.RMSNorm(config.d_model)
        self.mlp = SwiGLU(config)

    def forward(self, x, cos, sin, key_mask, frozen=None, live=slice(None)):
        attended, kept = self.attn(self.attn_norm(x), cos, sin, key_mask, frozen, live)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), kept


class GridEmbedding(nn.Module):
    """Row + column + box + region embeddings for the cells of each declared grid region."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        side, box = config.grid_side, math.isqrt(config.grid_side)
        cells = torch.arange(side * side)
        rows, cols = cells // side, cells % side
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("boxes", (rows // box) * box + cols // box, persistent=False)
        self.register_buffer("offsets", torch.tensor(config.grid_regions), persistent=False)
        self.row = nn.Embedding(side, config.d_model)
        self.col = nn.Embedding(side, config.d_model)
        self.box = nn.Embedding(side, config.d_model)
        self.region = nn.Embedding(len(config.grid_regions), config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if T < int(self.offsets.max()):
            raise ValueError(f"sequence of {T} tokens is shorter than the grid regions reach ({int(self.offsets.max())})")
        cell = self.row(self.rows) + self.col(self.cols) + self.box(self.boxes)        # [cells, D]
        structure = cell[None] + self.region.weight[:, None]                           # [regions, cells, D]
        added = x.new_zeros(T, x.shape[-1]).index_add(0, (T - self.offsets).flatten(),
                                                      structure.flatten(0, 1).to(x.dtype))
        return x + added


class MaskedDiffusionTransformer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.grid = GridEmbedding(config) if config.grid_regions else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.RMSNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied, as in nanoGPT: fewer parameters to ship
        head_dim = config.d_model // config.n_head
        inv_freq = config.rope_theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.down.weight")):  # GPT-2's residual scaling
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings plus the grid structure embeddings at the declared cells."""
        x = self.embed_tokens(ids)
        return self.grid(x) if self.grid is not None else x

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T, V] for ids [B, T]; `attention_mask` [B, T] is False at (left) padding."""
        return self.lm_head(self.hidden(ids, attention_mask))

    def hidden(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               frozen: list[tuple[torch.Tensor, torch.Tensor]] | None = None, live: slice = slice(None),
               record: list | None = None) -> torch.Tensor:
        """Final normalised hidden states [B, T, D]; training applies `lm_head` to masked positions only.
        With `frozen` (one (keys, values) per layer, of the whole sequence) only the `live` span is
        computed, against the frozen keys and values elsewhere: [B, len(live), D]. `record`, if given,
        gets each layer's (keys, values) of this pass."""
        if attention_mask is None:
            attention_mask = torch.ones_like(ids, dtype=torch.bool)
        attention_mask = attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, live]
        angles = positions[:, None, :, None].float() * self.inv_freq                  # [B, 1, T, hd/2]
        x = self.embed(ids)[:, live]
        angles = torch.cat((angles, angles), -1)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        key_mask = attention_mask[:, None, None, :]
        for layer, block in enumerate(self.blocks):
            x, kept = block(x, cos, sin, key_mask, None if frozen is None else frozen[layer], live)
            if record is not None:
                record.append(kept)
        return self.norm(x)
