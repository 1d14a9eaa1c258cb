"""A result cache that cannot be used never fails a computation: one warning naming the directory
and EXPLORER_CACHE, then the results are computed without it. Orphan temporary files of killed
writers are removed and counted in the size cap."""

from __future__ import annotations

import errno
import os
import time
import warnings

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.cache import _WARNED, Cache, CacheWarning, key
from explorer.jobs import JobEngine
from tests.reliability.catalogue import bad_input


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).normal(size=(50, 2)).astype(np.float32)}


@pytest.fixture(autouse=True)
def fresh_warnings():
    _WARNED.clear()
    yield
    _WARNED.clear()


def broken_cache(tmp_path, monkeypatch, kind: str) -> Cache:
    """A cache whose directory is a file, read-only (simulated) or full (simulated)."""
    if kind == "a file":
        (tmp_path / "cache").write_text("not a directory")
        return Cache(tmp_path / "cache")
    code = {"read-only": errno.EROFS, "full": errno.ENOSPC}[kind]
    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).startswith(str(tmp_path)):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    return Cache(tmp_path / "cache")


@pytest.mark.parametrize("kind", ["a file", "read-only", "full"])
@bad_input(
    "cache",
    "a cache directory that is a file, read-only, or full (ENOSPC)",
    "put returns None and the cache turns off with ONE warning naming the directory and "
    "EXPLORER_CACHE; later puts and gets neither fail nor warn",
)
def test_unusable_cache_warns_once(tmp_path, monkeypatch, kind):
    cache = broken_cache(tmp_path, monkeypatch, kind)
    with pytest.warns(CacheWarning) as record:
        for i in range(5):
            assert cache.put(key("entry", i), arrays(i)) is None
            assert cache.get(key("entry", i)) is None
    assert len(record) == 1
    text = str(record[0].message)
    assert str(cache.root) in text and "EXPLORER_CACHE" in text
    assert cache.disabled
    assert not list(tmp_path.glob("**/*.tmp"))  # no half-written file left behind


@bad_input(
    "cache",
    "ex.project with EXPLORER_CACHE pointing at a file",
    "every depth is computed (same coordinates as without a cache), with one warning",
)
def test_project_runs_without_a_usable_cache(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path / "file"))
    g = torch.Generator().manual_seed(0)
    acts = Activations({d: torch.randn(60, 6, generator=g) for d in range(3)})
    engine = JobEngine(max_workers=1)
    try:
        with pytest.warns(CacheWarning, match="EXPLORER_CACHE") as record:
            coords = ex.project(acts, "pca", engine=engine)
        reference = ex.project(acts, "pca", cache=False)
    finally:
        engine.shutdown()
    assert len([w for w in record if issubclass(w.category, CacheWarning)]) == 1
    for d in range(3):
        np.testing.assert_allclose(coords.coords[d], reference.coords[d], atol=1e-5)


@bad_input(
    "cache",
    "orphan .tmp files left by killed writers (older than tmp_max_age)",
    "removed at the next write; recent ones (a writer at work) are kept",
)
def test_orphan_tmp_files_are_removed(tmp_path):
    cache = Cache(tmp_path / "c", tmp_max_age=60)
    cache.put(key("first"), arrays())
    folder = cache.path(key("first")).parent
    old, recent = folder / "x.old.tmp", folder / "x.recent.tmp"
    old.write_bytes(b"0" * 1000)
    recent.write_bytes(b"0" * 1000)
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    cache.put(key("second"), arrays(1))
    assert not old.exists() and recent.exists()


@bad_input(
    "cache",
    "temporary files filling the cache",
    "counted in size_bytes and in the size cap: entries are evicted to make room",
)
def test_tmp_files_count_in_the_cap(tmp_path):
    cache = Cache(tmp_path / "c", max_bytes=10_000)
    cache.put(key("a"), arrays())
    entry = cache.size_bytes
    (cache.path(key("a")).parent / "w.tmp").write_bytes(b"0" * 9_000)
    assert cache.size_bytes == entry + 9_000
    cache.put(key("b"), arrays(1))
    assert cache.size_bytes <= 10_000 or len(cache.entries()) == 1
    assert cache.get(key("a")) is None  # evicted to make room for the temporary file


@bad_input(
    "cache",
    "a cache entry that cannot be deleted when found corrupt",
    "a miss (recomputed), never an error",
)
def test_undeletable_corrupt_entry_is_a_miss(tmp_path, monkeypatch):
    cache = Cache(tmp_path / "c")
    path = cache.put(key("k"), arrays())
    path.write_bytes(b"corrupt")

    def refuse(self, missing_ok=False):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "unlink", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(key("k")) is None
