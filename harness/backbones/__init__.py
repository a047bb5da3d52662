"""Backbones: the models samplers decode with (see base.Backbone), found by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.backbones.base import Backbone
from harness.errors import HarnessError
from harness.registry import Registry


@dataclass(frozen=True)
class Loader:
    """How to load the backbones of one model name: `load(model, family, dtype, device, trust_remote_code)`."""

    description: str
    load: Callable[[str, str, torch.dtype, torch.device, bool], Backbone]
    per_family: bool = False  # one backbone per task family (the embedded models), else one serving every task


def _embedded(model, family, dtype, device, trust_remote_code) -> Backbone:
    from harness.backbones.embedded import load_embedded  # imported on use: each loader pulls in its own framework
    return load_embedded(family, dtype=dtype, device=device)


def _transformers(model, family, dtype, device, trust_remote_code) -> Backbone:
    from harness.backbones.hf import load_transformers
    return load_transformers(model, dtype, device, trust_remote_code)


LOADERS: Registry[Loader] = Registry("model")
LOADERS.add("embedded", Loader("small masked diffusion LMs trained by this project, one per task family, shipped in "
                               "the package (CPU, no network)", _embedded, per_family=True))
LOADERS.add("llada-8b-instruct", Loader("GSAI-ML/LLaDA-8B-Instruct through transformers (HF cache; block diffusion, "
                                        "greedy, Lb 32)", _transformers))
LOADERS.add("dream-7b-instruct", Loader("Dream-org/Dream-v0-Instruct-7B through transformers (HF cache; full "
                                        "diffusion, T 0.2, top-p 0.95)", _transformers))
# Any other name is a checkpoint directory or hub id.
ANY_CHECKPOINT = Loader("any LLaDA- or Dream-style checkpoint declaring mask_token_id (needs --trust-remote-code)",
                        _transformers)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def list_models() -> dict[str, str]:
    named = {name: loader.description for name, loader in LOADERS.items()}
    return {**named, "PATH or HUB_ID": ANY_CHECKPOINT.description}


def _loader(model: str) -> Loader:
    return LOADERS.get(model) if model in LOADERS else ANY_CHECKPOINT


def resolve_device(name: str) -> torch.device:
    """The device a user asked for (`cpu`, `cuda`, `cuda:1`); asking for a GPU that is not there is a HarnessError."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HarnessError(f"unknown device {name!r}; valid devices: cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"device {name!r} requested but CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise HarnessError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def backbone_key(model: str, family: str) -> str:
    """Which loaded backbone serves a task family: the embedded model has one per family, others serve all."""
    return family if _loader(model).per_family else model


def load_backbone(model: str, family: str, dtype: str | None = None, device: torch.device | str = "cpu",
                  trust_remote_code: bool = False) -> Backbone:
    """The backbone `model` serving tasks of `family`, on `device`; `dtype` defaults to bfloat16 on CUDA,
    float32 elsewhere."""
    device = torch.device(device)
    dtype = dtype or ("bfloat16" if device.type == "cuda" else "float32")
    if dtype not in DTYPES:
        raise HarnessError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(DTYPES)}")
    return _loader(model).load(model, family, DTYPES[dtype], device, trust_remote_code)
