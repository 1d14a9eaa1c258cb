"""LoRA adapters: effective weights W + s * B @ A, formed per matrix on demand.

A PEFT LoRA adapter stores, for each adapted module, A (r x in) and B (out x r). The effective
weight is W_eff = W + s * B A with s = lora_alpha / r (or lora_alpha / sqrt(r) with rsLoRA), and
transposed when ``fan_in_fan_out`` is set (GPT-2's Conv1D stores (in, out)). Embeddings store
A (r x vocab) and B (dim x r), so their update is (B A)^T; convolutions store A as a
(r, in, k, k) kernel and B as a 1 x 1 kernel, so their update is B A over the rank axis.
Nothing is merged ahead of time: :class:`LoraStore` computes one effective matrix when it is read.
DoRA adapters (a learned magnitude per column) are refused rather than read wrongly.
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
    embedding: bool = False


def lora_delta(
    a: torch.Tensor, b: torch.Tensor, scale: float, *, fan_in_fan_out=False, embedding=False
) -> torch.Tensor:
    """The update s * B A in the layout of the base weight (see the module docstring)."""
    a, b = a.to(torch.float32), b.to(torch.float32)
    if a.ndim > 2:  # convolution: A is a (r, in, k, k) kernel, B a (out, r, 1, 1) one
        delta = torch.einsum("or,r...->o...", b.flatten(1), a)
    else:
        delta = b @ a
    if embedding or fan_in_fan_out:
        delta = delta.T
    return scale * delta


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

    @property
    def tied(self) -> dict[str, str]:
        return self.base.tied

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
        a = self.adapter.get(f.a_name)
        b = self.adapter.get(f.b_name)
        try:
            delta = lora_delta(
                a, b, f.scale, fan_in_fan_out=f.fan_in_fan_out, embedding=f.embedding
            )
        except RuntimeError as exc:  # inner dimensions of B and A disagree
            raise SourceError(
                f"{self.description}: LoRA factors for {name!r} do not fit together "
                f"(A {tuple(a.shape)}, B {tuple(b.shape)}): the adapter file is damaged"
            ) from exc
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
    if not isinstance(config, dict):
        raise SourceError(f"{path}: the adapter config is not a JSON object")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise SourceError(f"{path}: peft_type {peft_type} is not supported (only LoRA)")
    if config.get("use_dora"):
        raise SourceError(
            f"{path}: a DoRA adapter (use_dora) rescales every column by a learned magnitude; "
            "explorer reads plain LoRA only. Merge it with peft (merge_and_unload) and load "
            "the merged model."
        )
    wrong = _config_type_errors(config)
    if wrong:
        raise SourceError(
            f"{path}: {'; '.join(wrong)}. Fix these fields (peft writes them this way), or "
            "re-save the adapter with peft"
        )
    return config


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _config_type_errors(config: dict) -> list[str]:
    """What in an adapter config has the wrong type or range, one phrase per field."""
    wrong = []
    r = config.get("r", 8)
    if not (isinstance(r, int) and not isinstance(r, bool) and r > 0):
        wrong.append(f"r must be a positive integer (the LoRA rank), not {r!r}")
    alpha = config.get("lora_alpha", 8)
    if not (_is_number(alpha) and math.isfinite(alpha)):
        wrong.append(f"lora_alpha must be a number, not {alpha!r}")
    for field, check in (("rank_pattern", "rank"), ("alpha_pattern", "alpha")):
        pattern = config.get(field) or {}
        if not isinstance(pattern, dict):
            wrong.append(f"{field} must be an object mapping module names to numbers")
            continue
        for key, value in pattern.items():
            ok = (
                isinstance(value, int) and not isinstance(value, bool) and value > 0
                if check == "rank"
                else _is_number(value)
            )
            if not ok:
                wrong.append(f"{field}[{key!r}] must be a positive {check}, not {value!r}")
            try:
                re.compile(key)
            except re.error as exc:
                wrong.append(f"{field} key {key!r} is not a valid pattern ({exc})")
    for field in ("use_rslora", "fan_in_fan_out", "use_dora"):
        if not isinstance(config.get(field, False), bool | None):
            wrong.append(f"{field} must be true or false, not {config[field]!r}")
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str | None):
        wrong.append(f"base_model_name_or_path must be a path (a string), not {base!r}")
    return wrong


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
    adapter_names = set(adapter.names)
    for key in adapter.names:
        m = re.fullmatch(
            r"(?:base_model\.model\.)?(.+)\.lora_(A|embedding_A)(?:\.[^.]+)?(?:\.weight)?", key
        )
        if m:
            module, kind = m.group(1), m.group(2)
            b_key = key.replace(f".lora_{kind}", f".lora_{kind[:-1]}B")
            if b_key not in adapter_names:
                raise SourceError(f"{directory}: {key} has no matching lora_B tensor")
            target = _match_base_name(module + ".weight", base_names)
            if target is None:
                unmatched.append(module)
                continue
            r = int(_pattern_value(rank_pattern, module, r_default))
            alpha = float(_pattern_value(alpha_pattern, module, alpha_default))
            scale = alpha / math.sqrt(r) if rslora else alpha / r
            embedding = kind == "embedding_A"
            _check_factor_shapes(
                directory,
                target,
                base.shape(target),
                adapter.shape(key),
                adapter.shape(b_key),
                r,
                fan_in_fan_out or embedding,
            )
            factors[target] = LoraFactor(key, b_key, scale, fan_in_fan_out, embedding)
        elif not re.search(r"\.lora_(?:embedding_)?B(?:\.|$)", key):
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


def _check_factor_shapes(directory, target, w, a, b, r, transposed) -> None:
    """Refuse, before any data is read, factors that do not fit each other, the rank or the base.

    A is (r, in) (or (r, in, k, k) for a convolution), B is (out, r) (or (out, r, 1, 1)); the
    update B A has the base weight's shape, transposed for embeddings and ``fan_in_fan_out``.
    """
    if len(a) < 2 or len(b) < 2 or b[1] != a[0]:
        raise SourceError(
            f"{directory}: LoRA factors for {target!r} do not fit together (A {a}, B {b}): "
            "the adapter file is damaged"
        )
    if a[0] != r:
        raise SourceError(
            f"{directory}: adapter_config.json gives {target!r} rank r={r}, but its factors have "
            f"rank {a[0]} (A {a}): the config belongs to another adapter, and the scale "
            "lora_alpha / r would be wrong. Use the adapter's own adapter_config.json"
        )
    delta = (b[0], *a[1:]) if len(a) > 2 else (b[0], a[1])
    if transposed and len(delta) == 2:
        delta = delta[::-1]
    if tuple(delta) != tuple(w):
        raise SourceError(
            f"{directory}: the LoRA update for {target!r} has shape {tuple(delta)} but the base "
            f"weight is {tuple(w)}: the adapter was trained on another base model; load it with "
            "the base it was trained on"
        )


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

    Returns ``(state_dict, info)`` with every LoRA-wrapped weight replaced by W + s B A (PEFT's
    own ``get_delta_weight`` for each active adapter), or None if the module holds no LoRA
    layers. ``modules_to_save`` copies replace the originals; merged layers are taken as they are.
    """
    lora_modules = {
        name: mod
        for name, mod in model.named_modules()
        if hasattr(mod, "base_layer") and hasattr(mod, "lora_A") and hasattr(mod, "scaling")
    }
    if not lora_modules:
        return None
    active = _active_adapters(model)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if ".lora_" in name or ".original_module." in name:
            continue
        m = re.search(r"\.modules_to_save\.([^.]+)\.", name)
        if m:  # the trained copy of a fully fine-tuned module, for the active adapter only
            if m.group(1) not in active:
                continue
            name = name[: m.start()] + "." + name[m.end() :]
        clean = re.sub(r"^base_model\.model\.", "", name).replace(".base_layer.", ".")
        state[clean] = tensor
    adapted = []
    for name, mod in lora_modules.items():
        clean = re.sub(r"^base_model\.model\.", "", name) + ".weight"
        adapted.append(clean)
        w = mod.base_layer.weight.detach()
        if getattr(mod, "merged", False):
            state[clean] = w  # the update is already inside the base weight
            continue
        w = w.to(torch.float32)
        for adapter in getattr(mod, "active_adapters", active):
            known = set(mod.lora_A) | set(getattr(mod, "lora_embedding_A", {}))
            if adapter not in known:
                continue
            if (getattr(mod, "use_dora", None) or {}).get(adapter):
                raise SourceError(
                    f"<{type(model).__name__}>: {name} is a DoRA layer (a learned magnitude "
                    "per column); explorer reads plain LoRA only. Merge it first: "
                    "ex.load(model.merge_and_unload())"
                )
            w = w + mod.get_delta_weight(adapter).detach().to(torch.float32)
        state[clean] = w.to(mod.base_layer.weight.dtype)
    return state, {"lora_modules": sorted(adapted)}


def _active_adapters(model: torch.nn.Module) -> list[str]:
    active = getattr(model, "active_adapters", None)
    if callable(active):
        active = active()
    if isinstance(active, str):
        active = [active]
    return list(active or ["default"])
