"""``explorer.load``: open anything that holds a model's weights as a :class:`Checkpoint`."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explorer.errors import SourceError
from explorer.sources.checkpoint import Checkpoint
from explorer.sources.lora import build_lora_store, lora_store_from_module, read_adapter_config
from explorer.sources.pairing import PairedLayers, pair_layers
from explorer.sources.stores import DictStore, open_weight_dir, open_weight_file

Loadable = nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike | Checkpoint


def load(
    obj: Loadable,
    *,
    base: Loadable | None = None,
    name: str | None = None,
    meta: dict | None = None,
) -> Checkpoint:
    """Open a checkpoint.

    Parameters
    ----------
    obj
        An ``nn.Module`` (also a PEFT model: LoRA weights are folded in per matrix), a state_dict,
        a ``.safetensors`` / ``.pt`` / ``.bin`` file, a directory of weights or shards (with an
        ``*.index.json``), a local Hugging Face model directory (``config.json`` + weights), or a
        PEFT LoRA adapter directory (``adapter_config.json``; pass ``base=``).
    base
        The base model of a LoRA adapter directory (anything :func:`load` accepts). Without it,
        the adapter's ``base_model_name_or_path`` is used if it is a local directory. Nothing is
        ever downloaded.
    name
        A label for tables and plots (defaults to the file or class name).
    meta
        Provenance kept on ``ck.meta``.
    """
    if isinstance(obj, Checkpoint):
        return obj
    if isinstance(obj, nn.Module):
        return _from_module(obj, name, meta)
    if isinstance(obj, Mapping):
        store = DictStore(obj, description="<state_dict>")
        return Checkpoint(store, name=name or "state_dict", source="<state_dict>", meta=meta)
    if isinstance(obj, str | os.PathLike):
        path = Path(obj).expanduser()
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory")
        if path.is_dir():
            return _from_directory(path, base, name, meta)
        if base is not None:
            raise SourceError("base= is only used with a LoRA adapter directory")
        store = open_weight_file(path)
        return Checkpoint(store, name=name or path.stem, source=str(path), meta=meta)
    raise SourceError(
        f"cannot load a {type(obj).__name__}: pass an nn.Module, a state_dict, or a path to a "
        ".safetensors/.pt/.bin file or a model directory"
    )


def _from_module(model: nn.Module, name: str | None, meta: dict | None) -> Checkpoint:
    lora = lora_store_from_module(model)
    if lora is not None:
        state, info = lora
        meta = {**info, **(meta or {})}
    else:
        state = model.state_dict()
    store = DictStore(state, description=f"<{type(model).__name__}>")
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    # A PEFT wrapper runs its base model (LoRA layers injected in place) whose module names
    # match the parameter names above, without the ``base_model.model.`` prefix.
    runnable = (
        model.get_base_model() if lora is not None and hasattr(model, "get_base_model") else model
    )
    return Checkpoint(
        store,
        name=name or type(model).__name__,
        source="<nn.Module>",
        model_type=model_type,
        module_factory=lambda: runnable,
        tokenizer_factory=_tokenizer_from_config(config),
        meta=meta,
        config=_config_dict(config),
    )


def _from_directory(path: Path, base, name: str | None, meta: dict | None) -> Checkpoint:
    if (path / "adapter_config.json").exists():
        return _from_adapter(path, base, name, meta)
    if base is not None:
        raise SourceError(f"{path}: base= is only used with a LoRA adapter directory")
    hf_dir = _find_hf_dir(path)
    if hf_dir is None:
        store = open_weight_dir(path)
        return Checkpoint(store, name=name or path.name, source=str(path), meta=meta)
    config = _read_config(hf_dir)
    store = open_weight_dir(hf_dir)
    return Checkpoint(
        store,
        name=name or path.name,
        source=str(path),
        model_type=config.get("model_type"),
        module_factory=lambda: _hf_module(hf_dir, config),
        tokenizer_factory=lambda: _hf_tokenizer(hf_dir),
        meta={"config": config, **(meta or {})},
        config=config,
    )


def _from_adapter(path: Path, base, name: str | None, meta: dict | None) -> Checkpoint:
    if base is None:
        candidate = read_adapter_config(path).get("base_model_name_or_path")
        if candidate and Path(candidate).is_dir():
            base = candidate
        else:
            where = (
                f"its base model {candidate!r} is not a local directory and explorer never "
                "downloads"
                if candidate
                else "its adapter_config.json names no base model (base_model_name_or_path)"
            )
            raise SourceError(
                f"{path} is a LoRA adapter; {where}. Pass the base: ex.load(adapter_dir, base=...)"
            )
    base_ck = load(base)
    store = build_lora_store(base_ck._store, path)

    def module_factory() -> nn.Module:
        module = copy.deepcopy(base_ck.module())
        params = dict(module.named_parameters())
        changed = list(store.factors) + list(store.replaced)
        missing = [p for p in changed if p not in params]
        if missing:
            raise SourceError(
                f"{path}: cannot run the adapted model: the runnable base model has no "
                f"parameters named {missing[:3]} (its module names differ from its checkpoint's); "
                "weights can still be analysed. Load the base as an nn.Module to run it."
            )
        with torch.no_grad():
            for pname in changed:
                params[pname].copy_(store.get(pname))
        return module

    return Checkpoint(
        store,
        name=name or path.name,
        source=str(path),
        model_type=base_ck.model_type,
        module_factory=module_factory if base_ck.can_run else None,
        tokenizer_factory=base_ck._tokenizer_factory,
        config=base_ck.config,
        meta={"base": base_ck.source, "lora_modules": sorted(store.factors), **(meta or {})},
    )


def _config_dict(config) -> dict | None:
    """A module's ``config`` (transformers' PretrainedConfig or a dict) as a plain dict."""
    if isinstance(config, dict):
        return config
    to_dict = getattr(config, "to_dict", None)
    try:
        return to_dict() if callable(to_dict) else None
    except Exception:  # a user's config object whose to_dict fails: no config, no error
        return None


def _find_hf_dir(path: Path) -> Path | None:
    """A Hugging Face model directory (also a sentence-transformers one with the model inside)."""
    if (path / "config.json").exists():
        return path
    modules = path / "modules.json"
    if not modules.exists():
        return None
    try:
        listed = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{modules}: cannot read it ({exc})") from exc
    if not isinstance(listed, list) or not all(
        isinstance(m, dict) and isinstance(m.get("path", ""), str) for m in listed
    ):
        raise SourceError(
            f"{modules}: not a sentence-transformers module list (a JSON list of objects whose "
            '"path" is a string); fix or delete it to read the weight files as they are'
        )
    for mod in listed:
        sub = path / mod.get("path", "")
        if (sub / "config.json").exists():
            return sub
    return None


def _read_config(directory: Path) -> dict:
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{directory / 'config.json'}: cannot read it ({exc})") from exc
    if not isinstance(config, dict):
        raise SourceError(f"{directory / 'config.json'}: not a JSON object")
    archs = config.get("architectures")
    wrong = [
        f"{field} must be {kind}"
        for field, ok, kind in (
            ("model_type", isinstance(config.get("model_type"), str | None), "a string"),
            (
                "architectures",
                archs is None
                or (isinstance(archs, list) and all(isinstance(a, str) for a in archs)),
                "a list of class names (strings)",
            ),
        )
        if not ok
    ]
    if wrong:
        raise SourceError(f"{directory / 'config.json'}: {'; '.join(wrong)}")
    return config


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _hf_module(directory: Path, config: dict) -> nn.Module:
    """Build the model class named in config.json from local files only (never the hub)."""
    _offline()
    try:
        import transformers
    except ImportError as exc:
        raise SourceError(
            f"{directory}: running this model needs transformers: pip install 'explorer[hf]'"
        ) from exc
    transformers.utils.logging.disable_progress_bar()
    archs = config.get("architectures") or []
    cls = next((getattr(transformers, a) for a in archs if hasattr(transformers, a)), None)
    cls = cls or transformers.AutoModel
    try:
        model = cls.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # config/weights mismatch, missing code, unknown architecture...
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise SourceError(
            f"{directory}: transformers could not build the model ({type(exc).__name__}: "
            f"{first_line}); its weights can still be analysed, but it cannot be run"
        ) from exc
    return model.eval()


def _hf_tokenizer(directory: Path) -> Any:
    _offline()
    if not any(
        (directory / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer.model")
    ):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise SourceError(
            f"{directory}: its tokenizer files could not be read ({type(exc).__name__}: "
            f"{first_line}); pass token ids as a tensor instead of text"
        ) from exc


def _tokenizer_from_config(config) -> Any:
    path = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    if path and Path(path).is_dir():
        return lambda: _hf_tokenizer(Path(path))
    return None


def pair(a: Loadable, b: Loadable) -> PairedLayers:
    """Match two checkpoints' layers by address and shape; report what does not match."""
    return pair_layers(load(a), load(b))
