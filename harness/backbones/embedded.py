"""The embedded default backbone: a small masked diffusion transformer shipped with the package.

One model per task family (math, sudoku, countdown, names) lives in
`harness/assets/embedded/<family>/` as `model.safetensors` + `config.json`, sharing the
tokenizer in `harness/assets/embedded/tokenizer/`. Weights are stored in float16 to keep
the package small and upcast on load.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from harness.backbones.base import Backbone, DecodingDefaults
from harness.backbones.transformer import MaskedDiffusionTransformer, TransformerConfig
from harness.errors import HarnessError
from harness.backbones.tokenizer import load_tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "embedded"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
STORAGE_DTYPE = torch.float16


class EmbeddedBackbone(Backbone):
    """The embedded transformer behind the Backbone interface, decoded LLaDA-style by default."""

    defaults = DecodingDefaults(mode="block", temperature=0.0, remasking="low_confidence")

    def __init__(self, model: MaskedDiffusionTransformer, tokenizer, name: str, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device, dtype).eval()
        self.tokenizer = tokenizer
        self.name = name
        self.dtype = dtype
        self.mask_id = tokenizer.mask_token_id
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        self.vocab_size = model.config.vocab_size

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(ids, attention_mask).float()

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(ids, attention_mask)

    @torch.no_grad()
    def logits_at(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, span: slice) -> torch.Tensor:
        # The output head only where the logits are read: 1.3 M of the ~8.7 M multiply-adds per token of
        # the math model, at every position of the sequence, for a window of 32 of ~350.
        return self.model.lm_head(self.model.hidden(ids, attention_mask)[:, span]).float()

    supports_cache = True

    @torch.no_grad()
    def logits_recording(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, list]:
        record = []
        logits = self.model.lm_head(self.model.hidden(ids, attention_mask, record=record)).float()
        return logits, record

    @torch.no_grad()
    def logits_live(self, ids: torch.Tensor, attention_mask: torch.Tensor, frozen: list, live: slice) -> torch.Tensor:
        return self.model.lm_head(self.model.hidden(ids, attention_mask, frozen, live)).float()


def save_embedded(model: MaskedDiffusionTransformer, out_dir: str | Path, family: str, tokenizer_dir: str | Path) -> None:
    """Export a trained model to `out_dir` in the layout `load_embedded_dir` reads."""
    out_dir = Path(out_dir)
    save_model(copy.deepcopy(model).to(STORAGE_DTYPE), str(out_dir / WEIGHTS))
    config = {"family": family, "model": model.config.to_dict(),
              "tokenizer": os.path.relpath(Path(tokenizer_dir).resolve(), out_dir.resolve())}
    (out_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_embedded_dir(directory: str | Path, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> EmbeddedBackbone:
    """The backbone exported to `directory`; missing or corrupt files are a HarnessError naming the file."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    try:
        config = json.loads(config_path.read_text())
        model = MaskedDiffusionTransformer(TransformerConfig.from_dict(config["model"]))
        tokenizer_dir = directory / config["tokenizer"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise HarnessError(f"cannot read model config {config_path}: {err}") from None
    if not weights_path.is_file():
        raise HarnessError(f"missing model weights {weights_path}")
    try:
        load_model(model, str(weights_path))
    except (SafetensorError, RuntimeError, OSError, ValueError) as err:
        raise HarnessError(f"corrupt model weights {weights_path}: {str(err).splitlines()[0]}") from None
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) != model.config.vocab_size:
        raise HarnessError(f"tokenizer {tokenizer_dir} has {len(tokenizer)} tokens but {config_path} "
                           f"expects {model.config.vocab_size}")
    return EmbeddedBackbone(model, tokenizer, f"embedded-{config['family']}", dtype, device)


def embedded_families() -> list[str]:
    return sorted(p.parent.name for p in ASSETS.glob(f"*/{CONFIG}"))


def load_embedded(family: str, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> EmbeddedBackbone:
    """The shipped model of a task family ("math", "sudoku", "countdown", "names")."""
    if not (ASSETS / family / CONFIG).is_file():
        raise HarnessError(f"no embedded model for family {family!r}; shipped families: "
                           f"{', '.join(embedded_families()) or 'none'}")
    return load_embedded_dir(ASSETS / family, dtype, device)
