"""The demo's data: scikit-learn's bundled digits, the shifted (rotated) task, the sentences.

Everything here is offline and deterministic. The digits are split once (stratified, seed 0,
25 % held out) and standardised per pixel with the train split's mean and standard deviation
(pixels that are constant in the train split are only centred). The shifted task is the same
images turned by 90 degrees counter-clockwise: a fixed permutation of the 64 standardised
features, with the same labels and the same split.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

SPLIT_SEED = 0
TEST_SIZE = 0.25
N_CLASSES = 10

# Feature i of a rotated image is feature ROT90[i] of the original (np.rot90, k=1, on 8 x 8).
ROT90 = np.rot90(np.arange(64).reshape(8, 8)).ravel()


@dataclass(frozen=True)
class Digits:
    """The fixed digits split, standardised: float32 inputs (N, 64), int64 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray

    def rotated(self) -> Digits:
        """The shifted task: every image turned by 90 degrees, same labels and split."""
        return Digits(
            x_train=_frozen(self.x_train[:, ROT90]),
            y_train=self.y_train,
            x_test=_frozen(self.x_test[:, ROT90]),
            y_test=self.y_test,
            mean=_frozen(self.mean[ROT90]),
            std=_frozen(self.std[ROT90]),
            train_index=self.train_index,
            test_index=self.test_index,
        )


@lru_cache(maxsize=1)
def digits() -> Digits:
    """scikit-learn's 1,797 8 x 8 digits, split (seed 0, 25 % test, stratified), standardised."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    train_index, test_index = train_test_split(
        np.arange(len(y)), test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    mean = x[train_index].mean(axis=0)
    std = x[train_index].std(axis=0)
    std[std == 0] = 1.0

    def scale(rows: np.ndarray) -> np.ndarray:
        return _frozen(((x[rows] - mean) / std).astype(np.float32))

    return Digits(
        x_train=scale(train_index),
        y_train=_frozen(y[train_index]),
        x_test=scale(test_index),
        y_test=_frozen(y[test_index]),
        mean=_frozen(mean.astype(np.float32)),
        std=_frozen(std.astype(np.float32)),
        train_index=_frozen(train_index),
        test_index=_frozen(test_index),
    )


def symmetric_noise(
    labels: np.ndarray, rate: float, seed: int, n_classes: int = N_CLASSES
) -> tuple[np.ndarray, float]:
    """Replace each label, with probability ``rate``, by a uniformly random *different* class.

    Returns the noisy labels and the realised noise rate (the fraction actually changed).
    """
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    shift = rng.integers(1, n_classes, size=len(labels))
    noisy = np.where(flip, (labels + shift) % n_classes, labels).astype(np.int64)
    return _frozen(noisy), float(np.mean(noisy != labels))


@lru_cache(maxsize=1)
def sentences() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The demo sentences (``sentences.tsv``: ``topic<TAB>sentence``), as (texts, topics)."""
    text = resources.files("explorer.demo").joinpath("sentences.tsv").read_text(encoding="utf-8")
    texts, topics = [], []
    for row in csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
        if not row or row[0].startswith("#"):
            continue
        topic, sentence = row
        topics.append(topic.strip())
        texts.append(sentence.strip())
    return tuple(texts), tuple(topics)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a
