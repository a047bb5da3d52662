"""The backbone interface: a masked diffusion LM seen as "token ids in, logits out".

The decoding engine talks only to this interface, so the embedded model, LLaDA
and Dream (through transformers) plug in without touching it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from harness.errors import HarnessError


@dataclass(frozen=True)
class DecodingDefaults:
    """An architecture's published decoding settings (DESIGN.md section 4.1); the block length is the task's."""

    mode: str = "block"            # "block" (LLaDA) or "full" (Dream)
    temperature: float = 0.0
    remasking: str = "low_confidence"
    top_p: float | None = None
    top_k: int | None = None


class Backbone(ABC):
    """A masked diffusion LM with its tokenizer.

    `tokenizer` is a transformers tokenizer whose chat template builds prompts.
    `shifted_logits` is True for Dream-style models, whose prediction for
    position j is read at j-1; `logits` returns them unshifted, as the model
    gives them, and the engine aligns them.
    """

    name: str
    tokenizer: object
    mask_id: int
    eos_id: int
    pad_id: int
    vocab_size: int
    shifted_logits: bool = False
    architecture: str | None = None  # "llada" or "dream" for released ones (their decoding defaults, LoRA targets,
                                     # the authors' circuits); a task's `family` is which embedded model serves it
    defaults: DecodingDefaults = DecodingDefaults()
    device: torch.device = torch.device("cpu")
    supports_cache: bool = False     # has logits_recording and logits_live (harness/engine/cache.py)

    @abstractmethod
    def logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, T, V] for token ids [B, T]; `attention_mask` [B, T] is False at padding."""

    def logits_at(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, span: slice) -> torch.Tensor:
        """`logits(ids, attention_mask)[:, span]`; a backbone that can skip the output head at the other
        positions overrides it (the decoding engine reads only the window's logits)."""
        return self.logits(ids, attention_mask)[:, span]

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`logits`, differentiable in the network's weights (RL training calls it with gradients on)."""
        raise HarnessError(f"backbone {self.name} cannot be trained: it has no differentiable forward pass")

    def logits_recording(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, list]:
        """`logits` and each layer's keys and values of the pass (backbones with `supports_cache`)."""
        raise NotImplementedError(f"backbone {self.name} has no KV cache")

    def logits_live(self, ids: torch.Tensor, attention_mask: torch.Tensor, frozen: list, live: slice) -> torch.Tensor:
        """Logits [B, len(live), V] of the `live` span of ids [B, T], every other position's keys and
        values taken from `frozen` (as `logits_recording` gave them): approximate where ids changed since."""
        raise NotImplementedError(f"backbone {self.name} has no KV cache")

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """Prompt token ids: the chat template applied, ending where the assistant's answer starts."""
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))

    def decode(self, ids: list[int]) -> str:
        """Completion text: everything before the first EOS, special tokens dropped."""
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of prompts left-padded to one length: (ids [B, T], attention_mask [B, T])."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.bool)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = True
        return ids.to(self.device), mask.to(self.device)
