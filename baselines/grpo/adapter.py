"""LoRA adapters on a backbone's network, through peft, in the layout d1's adapters use
(`adapter_config.json` + `adapter_model.safetensors`, written by `save_pretrained`).

The embedded model's attention (fused `qkv`, `out`) and MLP (`gate`, `up`, `down`)
projections get LoRA, as d1 puts it on LLaDA's q,k,v,o,gate,up,down. Adapters shipped
for the embedded model live in `baselines/assets/<family>/`, each with a compute.json
naming the backbone it was trained on.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from harness.errors import HarnessError
from harness.shipped import shipped_assets, shipped_for

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EMBEDDED_TARGETS = ("qkv", "out", "gate", "up", "down")
ADAPTER_CONFIG = "adapter_config.json"


def network(backbone) -> torch.nn.Module:
    """The trainable network behind a backbone (`backbone.model`); a HarnessError if it has none."""
    model = getattr(backbone, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise HarnessError(f"backbone {backbone.name} exposes no torch module to put a LoRA adapter on")
    return model


def add_lora(model: torch.nn.Module, rank: int, alpha: float, targets=EMBEDDED_TARGETS) -> PeftModel:
    """`model` with fresh LoRA weights on the `targets` projections; only those train."""
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none")
    return get_peft_model(model, config)


def shipped_adapters() -> dict[str, Path]:
    """Backbone name -> directory of the adapter shipped for it."""
    return shipped_assets(ASSETS, "compute.json", lambda record: record.get("backbone"), required=ADAPTER_CONFIG)


def default_adapter_path(backbone_name: str) -> Path:
    return shipped_for("diffu-GRPO adapter", shipped_adapters(), backbone_name, "diffu-grpo:adapter=PATH")


def adapted(backbone, path: str | Path):
    """A copy of `backbone` whose network has the adapter at `path` merged in (decoding then
    costs what the base costs); the original backbone is left untouched."""
    path = Path(path)
    if not (path / ADAPTER_CONFIG).is_file():
        raise HarnessError(f"no LoRA adapter at {path} (expected {ADAPTER_CONFIG} and adapter weights)")
    try:
        merged = PeftModel.from_pretrained(copy.deepcopy(network(backbone)), str(path)).merge_and_unload()
    except (ValueError, RuntimeError, OSError, KeyError) as err:
        raise HarnessError(f"cannot apply the LoRA adapter {path} to backbone {backbone.name}: "
                           f"{str(err).splitlines()[0]}") from None
    tuned = copy.copy(backbone)
    tuned.model = merged.eval()
    tuned.name = f"{backbone.name}+{path.name}"
    return tuned
