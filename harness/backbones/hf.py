"""LLaDA- and Dream-style models through transformers (`AutoModel` with the authors' remote code).

A model is an alias (`llada-8b-instruct`, `dream-7b-instruct`), a local checkpoint directory or a
hub id, read from the Hugging Face cache (`HF_HUB_OFFLINE=1` is honoured by transformers itself).
Its family comes from `config.model_type` and brings the published decoding defaults (DESIGN.md
4.1). Running a repository's Python code needs consent: the aliases imply it (their code is the
authors' own, pinned by name), anything else needs `--trust-remote-code`.

Special ids come from the checkpoint, never from guesses: its own config.json must declare
`mask_token_id` (LLaDA's and Dream's both do; the config classes' defaults are not the checkpoint's
word), eos/pad come from the tokenizer or the config, and the aliases must match the released
values, so a wrong or altered checkpoint is refused before decoding anything. The vocabulary is
the width of the logits: LLaDA-style configs may pad `embedding_size` beyond `vocab_size`, and
every per-token distribution (and so a CoDD circuit's emission table) spans the padded width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from harness.backbones.base import Backbone, DecodingDefaults
from harness.errors import HarnessError


@dataclass(frozen=True)
class Architecture:
    defaults: DecodingDefaults
    shifted_logits: bool


ARCHITECTURES = {
    # LLaDA: block diffusion, greedy, low-confidence remasking, blocks of 32.
    "llada": Architecture(DecodingDefaults(mode="block", temperature=0.0, remasking="low_confidence"),
                          shifted_logits=False),
    # Dream: full diffusion, T 0.2, top-p 0.95, entropy ordering; predicts position j at j - 1. Top-k 50:
    # the authors call diffusion_generate without top_k, so the generation config built from the model
    # config carries transformers' default of 50.
    "dream": Architecture(DecodingDefaults(mode="full", temperature=0.2, remasking="entropy", top_p=0.95, top_k=50),
                          shifted_logits=True),
}


@dataclass(frozen=True)
class Release:
    """A released checkpoint and the ids it must have."""

    repo: str
    family: str
    mask_id: int
    vocab_size: int


ALIASES = {
    "llada-8b-instruct": Release("GSAI-ML/LLaDA-8B-Instruct", "llada", mask_id=126336, vocab_size=126464),
    "dream-7b-instruct": Release("Dream-org/Dream-v0-Instruct-7B", "dream", mask_id=151666, vocab_size=152064),
}
# The authors' remote code breaks under transformers 5 (DESIGN.md section 6).
SUPPORTED_TRANSFORMERS = "4.57"


class TransformersBackbone(Backbone):
    """A transformers masked diffusion model behind the Backbone interface."""

    def __init__(self, model, tokenizer, name: str, family: str, mask_id: int, eos_id: int, pad_id: int,
                 vocab_size: int, device: torch.device):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.architecture = family
        self.mask_id, self.eos_id, self.pad_id, self.vocab_size = mask_id, eos_id, pad_id, vocab_size
        self.shifted_logits = ARCHITECTURES[family].shifted_logits
        self.defaults = ARCHITECTURES[family].defaults
        self.device = device

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # Keywords only: LLaDA's second positional parameter is input_embeddings.
        if attention_mask is None or bool(attention_mask.all()):
            return self.model(input_ids=ids).logits
        if self.architecture == "llada":
            return self.model(input_ids=ids, attention_mask=attention_mask).logits
        # Dream takes a pairwise [B, 1, T, T] mask and position ids that skip the left padding.
        keep = attention_mask.bool()
        positions = (keep.long().cumsum(-1) - 1).clamp(min=0)
        pairwise = (keep[:, None, :, None] & keep[:, None, None, :])
        return self.model(input_ids=ids, attention_mask=pairwise, position_ids=positions).logits

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(ids, attention_mask)


def check_transformers() -> None:
    import transformers
    if not transformers.__version__.startswith(SUPPORTED_TRANSFORMERS + "."):
        raise HarnessError(f"LLaDA and Dream need transformers {SUPPORTED_TRANSFORMERS}.x (their remote code fails "
                           f"under 5.x), found {transformers.__version__}; "
                           f"pip install 'transformers>={SUPPORTED_TRANSFORMERS},<{_next_minor()}'")


def _next_minor() -> str:
    major, minor = SUPPORTED_TRANSFORMERS.split(".")
    return f"{major}.{int(minor) + 1}"


def load_transformers(model: str, dtype: torch.dtype, device: torch.device,
                      trust_remote_code: bool = False) -> TransformersBackbone:
    """The backbone `model` (alias, directory or hub id) on `device` in `dtype`."""
    check_transformers()
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    release = ALIASES.get(model)
    source = release.repo if release else model
    if not (release or trust_remote_code):
        raise HarnessError(f"model {model!r} is no known alias, and a checkpoint would run its own Python code: "
                           f"pass --trust-remote-code to allow that (valid models: embedded, {', '.join(ALIASES)}, "
                           f"or a checkpoint directory / hub id with --trust-remote-code)")
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
    except (OSError, ValueError) as err:
        where = "directory" if Path(source).is_dir() else "hub id (offline: only the local Hugging Face cache)"
        raise HarnessError(f"cannot load model {source!r} as a {where}: {str(err).splitlines()[0]}") from None
    family = str(getattr(config, "model_type", "")).lower()
    if family not in ARCHITECTURES:
        raise HarnessError(f"model {source!r} has model_type {config.model_type!r}; supported families: "
                           f"{', '.join(ARCHITECTURES)}")
    mask_id, eos_id, pad_id, vocab_size = _special_ids(source, config, _declared_config(source), tokenizer)
    if release and (family, mask_id, vocab_size) != (release.family, release.mask_id, release.vocab_size):
        raise HarnessError(f"{source} is not the released {model}: family {family}, mask id {mask_id}, vocab "
                           f"{vocab_size}; expected {release.family}, {release.mask_id}, {release.vocab_size}")
    if getattr(tokenizer, "chat_template", None) is None:
        raise HarnessError(f"the tokenizer of {source!r} has no chat template")
    network = AutoModel.from_pretrained(source, trust_remote_code=True, dtype=dtype).to(device)
    return TransformersBackbone(network, tokenizer, model, family, mask_id, eos_id, pad_id, vocab_size, device)


def _declared_config(source: str) -> dict:
    """The checkpoint's config.json as written, without the defaults its config class fills in."""
    from transformers import PretrainedConfig
    return PretrainedConfig.get_config_dict(source)[0]


def _special_ids(source: str, config, declared: dict, tokenizer) -> tuple[int, int, int, int]:
    """(mask, eos, pad, vocab size) as the checkpoint declares them (`declared`: its config.json); a
    HarnessError if missing or inconsistent. The vocabulary size is the logits' width (padded embeddings
    included)."""
    mask_id = declared.get("mask_token_id")
    if mask_id is None:
        raise HarnessError(f"the config.json of {source!r} declares no mask_token_id; a masked diffusion "
                           f"checkpoint must name its mask token")
    if tokenizer.mask_token_id is not None and tokenizer.mask_token_id != mask_id:
        raise HarnessError(f"{source!r}: config mask_token_id {mask_id} but the tokenizer's mask token is "
                           f"{tokenizer.mask_token_id}")
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else getattr(config, "eos_token_id", None)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else getattr(config, "pad_token_id", None)
    pad_id = eos_id if pad_id is None else pad_id
    vocab_size = max(config.vocab_size, getattr(config, "embedding_size", None) or 0)
    for name, value in (("mask", mask_id), ("eos", eos_id), ("pad", pad_id)):
        if not isinstance(value, int) or not 0 <= value < vocab_size:
            raise HarnessError(f"{source!r}: {name} id {value!r} is not a token of the {vocab_size}-token vocabulary")
    if len(tokenizer) > vocab_size:
        raise HarnessError(f"{source!r}: the tokenizer has {len(tokenizer)} tokens, more than the model's "
                           f"vocabulary of {vocab_size}")
    return mask_id, eos_id, pad_id, vocab_size
