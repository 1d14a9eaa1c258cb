"""The content-keyed result cache: keys, round trip, corruption, killed writers, size cap."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.cache import Cache, cache_root, digest, key


@pytest.fixture
def cache(tmp_path) -> Cache:
    return Cache(tmp_path / "results")


def _arrays(seed=0, n=100):
    rng = np.random.default_rng(seed)
    return {"coords": rng.normal(size=(n, 2)).astype(np.float32), "ratio": np.array([0.5, 0.25])}


def test_keys_depend_on_content_and_parameters_only(tmp_path):
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert key("m", {"k": 2, "seed": 0}, x) == key("m", {"seed": 0, "k": 2}, x.clone())
    assert key("m", {"k": 2}, x) != key("m", {"k": 3}, x)
    assert key("m", x) != key("m", x + 1)
    assert key("m", x) != key("m", x.double())  # dtype is part of the content
    assert key("m", x) != key("m", x.reshape(4, 3))  # and the shape
    assert digest(x.numpy()) == digest(x.numpy().copy())
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    k1 = key(f)
    f.write_bytes(b"abd")
    assert key(f) != k1
    assert key(torch.ones(2, dtype=torch.bfloat16)) != key(torch.ones(2, dtype=torch.float16))
    with pytest.raises(TypeError, match="cache key"):
        key(object())


def test_key_includes_the_version(monkeypatch):
    import explorer

    k = key("m", 1)
    monkeypatch.setattr(explorer, "__version__", "999")
    assert key("m", 1) != k


def test_round_trip(cache):
    k = key("round trip")
    assert cache.get(k) is None
    cache.put(k, {**_arrays(), "t": torch.ones(3, dtype=torch.int64)}, {"layer": "blocks.1"})
    arrays, meta = cache.get(k)
    for name, value in _arrays().items():
        np.testing.assert_array_equal(arrays[name], value)
        assert arrays[name].dtype == value.dtype
    np.testing.assert_array_equal(arrays["t"], [1, 1, 1])
    assert meta == {"layer": "blocks.1"}
    assert cache.entries() == [cache.path(k)] and cache.size_bytes > 0
    with pytest.raises(TypeError, match="numeric"):
        cache.put(key("obj"), {"text": np.array(["a"], dtype=object)})


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_a_corrupt_entry_is_a_miss_and_is_removed(cache, damage):
    k = key("corrupt", damage)
    path = cache.put(k, _arrays())
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-5] ^= 0xFF  # inside the array bytes: parses fine, checksum differs
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = bytearray(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    path.write_bytes(bytes(raw))
    assert cache.get(k) is None
    assert not path.exists()
    cache.put(k, _arrays())
    assert cache.get(k) is not None


def test_an_entry_under_another_key_is_not_trusted(cache):
    k1, k2 = key("one"), key("two")
    cache.put(k1, _arrays())
    cache.path(k2).parent.mkdir(parents=True, exist_ok=True)
    os.replace(cache.path(k1), cache.path(k2))
    assert cache.get(k2) is None


_KILLED_WRITER = """
import os, sys, time
import numpy as np
from explorer.cache import Cache

def hang(fd):  # the data is in the temporary file; hang before it is renamed into place
    open(sys.argv[2], "w").close()
    time.sleep(600)

os.fsync = hang
Cache(sys.argv[1]).put("{key}", {{"x": np.ones((1000, 1000), dtype=np.float32)}})
"""


def test_a_writer_killed_mid_write_leaves_no_trusted_entry(cache, tmp_path):
    k = key("killed")
    flag = tmp_path / "writing"
    script = textwrap.dedent(_KILLED_WRITER.format(key=k))
    proc = subprocess.Popen([sys.executable, "-c", script, str(cache.root), str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, "the writer exited early"
            assert time.monotonic() < deadline, "the writer never reached the write"
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = list(cache.root.glob("*/*.tmp"))
    assert leftovers and leftovers[0].stat().st_size > 0  # it really was killed mid-write
    assert cache.get(k) is None and cache.entries() == []
    # a non-atomic writer killed half way through the final file is caught by the checksum
    good = cache.put(k, {"x": np.ones((1000, 1000), dtype=np.float32)})
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert cache.get(k) is None
    cache.put(k, {"x": np.ones((10, 10), dtype=np.float32)})
    assert cache.get(k)[0]["x"].shape == (10, 10)
    cache.clear()
    assert not list(cache.root.glob("*/*"))


def test_size_cap_evicts_least_recently_used(tmp_path):
    one = Cache(tmp_path).put(key("probe size"), _arrays(n=1000)).stat().st_size
    Cache(tmp_path).clear()
    cache = Cache(tmp_path, max_bytes=int(3.5 * one))
    keys = [key("cap", i) for i in range(3)]
    for i, k in enumerate(keys):
        cache.put(k, _arrays(i, n=1000))
        os.utime(cache.path(k), (1000.0 + i, 1000.0 + i))  # deterministic ages
    assert cache.get(keys[0]) is not None  # a hit refreshes its age: keys[1] is now the oldest
    cache.put(key("cap", 3), _arrays(3, n=1000))
    assert cache.get(keys[1]) is None
    assert all(cache.get(k) is not None for k in (keys[0], keys[2], key("cap", 3)))
    assert cache.size_bytes <= cache.max_bytes


def test_location_follows_explorer_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))
    assert Cache().root == tmp_path / "results"
    monkeypatch.delenv("EXPLORER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "explorer"
    assert Cache().root == Path(tmp_path / "xdg" / "explorer" / "results")
