"""LoRA adapters: effective weights W + s * B @ A, formed per matrix on demand.

A PEFT LoRA adapter stores, for each adapted module, A (r x in) and B (out x r). The effective
weight is W_eff = W + s * B A with s = lora_alpha / r (or lora_alpha / sqrt(r) with rsLoRA), and
transposed when ``fan_in_fan_out`` is set (GPT-2's Conv1D stores (in, out)). Nothing is merged
ahead of time: :class:`LoraStore` computes one effective matrix when it is read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer.errors import SourceError
from explorer.sources.stores import TensorStore, open_weight_file


@dataclass(frozen=True)
class LoraFactor:
    a_name: str
    b_name: str
    scale: float
    fan_in_fan_out: bool


class LoraStore(TensorStore):
    """A base store seen through a LoRA adapter: adapted weights are W + s * B @ A."""

    def __init__(
        self,
        base: TensorStore,
        adapter: TensorStore,
        factors: dict[str, LoraFactor],
        replaced: dict[str, str],
        description: str,
    ):
        self.base = base
        self.adapter = adapter
        self.factors = factors  # base parameter name -> its low-rank factors
        self.replaced = replaced  # base parameter name -> adapter tensor that replaces it
        self.description = description

    @property
    def names(self) -> list[str]:
        return self.base.names

    def shape(self, name: str) -> tuple[int, ...]:
        return self.base.shape(name)

    def dtype(self, name: str) -> torch.dtype:
        return self.base.dtype(name)

    def get(self, name: str) -> torch.Tensor:
        if name in self.replaced:
            return self.adapter.get(self.replaced[name])
        w = self.base.get(name)
        f = self.factors.get(name)
        if f is None:
            return w
        a = self.adapter.get(f.a_name).to(torch.float32)
        b = self.adapter.get(f.b_name).to(torch.float32)
        delta = f.scale * (b @ a)
        if f.fan_in_fan_out:
            delta = delta.T
        if delta.shape != w.shape:
            raise SourceError(
                f"{self.description}: LoRA update for {name!r} has shape {tuple(delta.shape)} "
                f"but the base weight is {tuple(w.shape)}: adapter and base do not match"
            )
        return (w.to(torch.float32) + delta).to(w.dtype)


def read_adapter_config(directory: Path) -> dict:
    path = directory / "adapter_config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read the adapter config ({exc})") from exc
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise SourceError(f"{path}: peft_type {peft_type} is not supported (only LoRA)")
    return config


def open_adapter_weights(directory: Path) -> TensorStore:
    for fname in ("adapter_model.safetensors", "adapter_model.bin"):
        if (directory / fname).exists():
            return open_weight_file(directory / fname)
    raise SourceError(
        f"{directory}: adapter_config.json found but no adapter_model.safetensors or "
        "adapter_model.bin next to it"
    )


def build_lora_store(base: TensorStore, directory: Path) -> LoraStore:
    """Match an adapter directory's factors to the base's parameter names."""
    config = read_adapter_config(directory)
    adapter = open_adapter_weights(directory)
    r_default = int(config.get("r", 8))
    alpha_default = float(config.get("lora_alpha", r_default))
    rank_pattern = config.get("rank_pattern") or {}
    alpha_pattern = config.get("alpha_pattern") or {}
    rslora = bool(config.get("use_rslora", False))
    fan_in_fan_out = bool(config.get("fan_in_fan_out", False))
    base_names = base.names

    factors: dict[str, LoraFactor] = {}
    replaced: dict[str, str] = {}
    unmatched: list[str] = []
    for key in adapter.names:
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_A(?:\.[^.]+)?\.weight", key)
        if m:
            module = m.group(1)
            b_key = key.replace(".lora_A", ".lora_B")
            if b_key not in adapter:
                raise SourceError(f"{directory}: {key} has no matching lora_B tensor")
            target = _match_base_name(module + ".weight", base_names)
            if target is None:
                unmatched.append(module)
                continue
            r = int(_pattern_value(rank_pattern, module, r_default))
            alpha = float(_pattern_value(alpha_pattern, module, alpha_default))
            scale = alpha / math.sqrt(r) if rslora else alpha / r
            factors[target] = LoraFactor(key, b_key, scale, fan_in_fan_out)
        elif ".lora_B" not in key:
            plain = re.sub(r"^base_model\.model\.", "", key)
            plain = re.sub(r"\.modules_to_save(?:\.[^.]+)?\.", ".", plain)
            target = _match_base_name(plain, base_names)
            if target is None:
                unmatched.append(plain)
            else:
                replaced[target] = key
    if unmatched:
        raise SourceError(
            f"{directory}: the adapter adapts modules the base checkpoint does not have: "
            f"{unmatched[:5]}; load it together with the base model it was trained on"
        )
    if not factors:
        raise SourceError(f"{directory}: the adapter holds no LoRA factors")
    return LoraStore(base, adapter, factors, replaced, description=str(directory))


def _match_base_name(name: str, base_names: list[str]) -> str | None:
    if name in base_names:
        return name
    hits = [n for n in base_names if n.endswith("." + name) or name.endswith("." + n)]
    return hits[0] if len(hits) == 1 else None


def _pattern_value(patterns: dict, module: str, default):
    for pattern, value in patterns.items():
        if module == pattern or module.endswith("." + pattern) or re.fullmatch(pattern, module):
            return value
    return default


def lora_store_from_module(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict] | None:
    """An in-memory PEFT model: its effective weights under the base model's parameter names.

    Returns ``(state_dict, info)`` with every LoRA-wrapped weight replaced by W + s B A, or None
    if the module holds no LoRA layers.
    """
    lora_modules = {
        name: mod
        for name, mod in model.named_modules()
        if hasattr(mod, "base_layer") and hasattr(mod, "lora_A") and hasattr(mod, "scaling")
    }
    if not lora_modules:
        return None
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if ".lora_" in name or "lora_embedding" in name:
            continue
        clean = re.sub(r"^base_model\.model\.", "", name).replace(".base_layer.", ".")
        state[clean] = tensor
    for name, mod in lora_modules.items():
        clean = re.sub(r"^base_model\.model\.", "", name)
        w = mod.base_layer.weight.detach().to(torch.float32)
        for adapter in getattr(mod, "active_adapters", list(mod.lora_A.keys())):
            if adapter not in mod.lora_A:
                continue
            a = mod.lora_A[adapter].weight.detach().to(torch.float32)
            b = mod.lora_B[adapter].weight.detach().to(torch.float32)
            delta = mod.scaling[adapter] * (b @ a)
            if getattr(mod, "fan_in_fan_out", False):
                delta = delta.T
            w = w + delta
        state[clean + ".weight"] = w.to(mod.base_layer.weight.dtype)
    return state, {"lora_modules": sorted(lora_modules)}
