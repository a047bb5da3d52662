"""LoRA adapters on a backbone's network, through peft, in the layout d1's adapters use
(`adapter_config.json` + `adapter_model.safetensors`, written by `save_pretrained`).

LoRA goes on every attention (q, k, v, o) and MLP (gate, up, down) projection of the
transformer layers, named as each family's modeling code names them (LORA_TARGETS). d1 lists
them by their Llama names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj);
those are Dream's names, but on LLaDA they match only q_proj, k_proj, v_proj and up_proj
(LLaDA calls the others attn_out, ff_proj and ff_out). Adapters shipped for the embedded
model live in `baselines/assets/<family>/`, each with a compute.json naming the backbone it
was trained on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import load_peft_weights

from harness.errors import HarnessError
from harness.shipped import shipped_assets, shipped_for

ASSETS = Path(__file__).resolve().parents[1] / "assets"
LORA_TARGETS = {
    "embedded": ("qkv", "out", "gate", "up", "down"),  # fused q,k,v projection
    # A regular expression: `ff_out` alone would also match LLaDA's output head, transformer.ff_out.
    "llada": r".*\.blocks\.\d+\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)",
    "dream": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}
ADAPTER_CONFIG = "adapter_config.json"


def network(backbone) -> torch.nn.Module:
    """The trainable network behind a backbone (`backbone.model`); a HarnessError if it has none."""
    model = getattr(backbone, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise HarnessError(f"backbone {backbone.name} exposes no torch module to put a LoRA adapter on")
    return model


def lora_targets(backbone) -> tuple[str, ...] | str:
    """The projections LoRA goes on in `backbone`'s network (peft `target_modules`)."""
    return LORA_TARGETS[backbone.architecture or "embedded"]


def add_lora(model: torch.nn.Module, rank: int, alpha: float,
             targets: tuple[str, ...] | str = LORA_TARGETS["embedded"]) -> PeftModel:
    """`model` with fresh LoRA weights on the `targets` projections (names, or one regular expression
    over module paths); only those train."""
    modules = targets if isinstance(targets, str) else list(targets)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=modules, lora_dropout=0.0, bias="none")
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
    _check_fits(path, backbone)
    try:
        merged = PeftModel.from_pretrained(copy.deepcopy(network(backbone)), str(path)).merge_and_unload()
    except (ValueError, RuntimeError, OSError, KeyError) as err:
        raise HarnessError(f"cannot apply the LoRA adapter {path} to backbone {backbone.name}: "
                           f"{str(err).splitlines()[0]}") from None
    tuned = copy.copy(backbone)
    tuned.model = merged.eval()
    tuned.name = f"{backbone.name}+{path.name}"
    return tuned


def _check_fits(path: Path, backbone) -> None:
    """Every module the adapter's weights adapt must be in the backbone's network. peft only warns
    about weights it cannot place, and the run would then decode as the base model under the
    adapter's name (e.g. a Dream adapter on LLaDA)."""
    try:
        keys = load_peft_weights(str(path), device="cpu").keys()
    except (OSError, ValueError, RuntimeError) as err:
        raise HarnessError(f"cannot read the LoRA adapter weights in {path}: {str(err).splitlines()[0]}") from None
    modules = {key.removeprefix("base_model.model.").rsplit(".lora_", 1)[0] for key in keys}
    missing = sorted(modules - {name for name, _ in network(backbone).named_modules()})
    if missing:
        base = json.loads((path / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
        raise HarnessError(f"the LoRA adapter {path} (base model {base!r}) does not fit backbone {backbone.name}: "
                           f"{len(missing)} of the {len(modules)} modules it adapts are not in its network, "
                           f"e.g. {missing[0]}")
