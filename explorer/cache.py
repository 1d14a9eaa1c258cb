"""A content-keyed disk cache of analysis results: arrays in safetensors files, never pickles.

Keys are SHA-256 digests of everything a result depends on (:func:`key`): the bytes, dtype and
shape of the input tensors or arrays, the SHA-256 of input files, the parameters (as canonical
JSON) and explorer's version. An entry is one ``<root>/<key[:2]>/<key>.safetensors`` file holding
the result's arrays, with a JSON header that records the key, the result's metadata and the
SHA-256 of the array bytes:

* writes go to a temporary file in the same directory, are flushed to disk and renamed into place
  with ``os.replace``, so a reader sees the old entry or the complete new one, never a half file
  (a process killed mid-write leaves only a ``*.tmp`` file, which no lookup reads);
* every read recomputes the checksum; an entry that does not parse or does not match is deleted
  and reported as a miss, so the caller recomputes it — a corrupt entry is never trusted;
* the total size is capped (default 2 GiB): after a write, the least recently used entries (by
  modification time, refreshed on every hit) are removed until the cache fits. Temporary files
  count towards the cap; those older than ``tmp_max_age`` seconds (left by killed writers) are
  removed;
* a cache directory that cannot be used (read-only, full, a file) never fails a computation: the
  first failed write warns once, naming the directory and ``EXPLORER_CACHE``, and the cache is
  off for the rest of the session (reads miss, writes are skipped).

The cache lives in ``$EXPLORER_CACHE/results`` if that variable is set, else
``~/.cache/explorer/results`` (``$XDG_CACHE_HOME`` replaces ``~/.cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = ["Cache", "CacheWarning", "cache_root", "digest", "file_sha256", "key"]

_FORMAT = "explorer.result/1"
_SUFFIX = ".safetensors"
DEFAULT_MAX_BYTES = 2 << 30
DEFAULT_TMP_MAX_AGE = 3600.0  # seconds: no writer takes this long to write one entry


def cache_root() -> Path:
    """``$EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/explorer``, else ``~/.cache/explorer``."""
    root = os.environ.get("EXPLORER_CACHE")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "explorer"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest(value) -> str:
    """SHA-256 (hex) of a tensor's or array's dtype, shape and bytes, or of a file's bytes."""
    h = hashlib.sha256()
    if isinstance(value, str | os.PathLike):
        h.update(b"file:")
        with open(value, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"torch:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        return h.hexdigest()
    a = np.ascontiguousarray(value)
    if a.dtype.hasobject:
        raise TypeError("object arrays cannot be digested: convert them to strings or numbers")
    h.update(f"numpy:{a.dtype.str}:{a.shape}:".encode())
    h.update(memoryview(a.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def key(*parts) -> str:
    """The cache key of a result: SHA-256 over the parts and explorer's version.

    A tensor or array part contributes its :func:`digest`; a :class:`pathlib.Path` the digest of
    the file's bytes; anything else its canonical JSON (sorted keys; tuples as lists), so
    ``{"k": 10, "seed": 0}`` and ``{"seed": 0, "k": 10}`` give the same key.

    The parts must name everything that changes the numbers: the inputs (a digest covers their
    dtype, so float16 and float32 activations differ), the method, its parameters and the seed,
    plus a format tag of the caller (e.g. ``"explorer.project/1"``), bumped when an algorithm
    changes its output between releases (the version moves only at releases). The device is
    deliberately left out, with the working precision it implies (float64 on the CPU, float32 on a
    GPU, for PCA): the CUDA results agree with the CPU's to the tolerances ``tests/gpu`` checks
    (``project`` coordinates to 1e-3 of their largest magnitude on the demo, explained variance
    ratios to 1e-4 relative), far below what a layout shows, so a result computed on a GPU serves
    the same call on the CPU and back (a notebook reopened on a laptop reuses the server's
    results). A result whose numbers depend on the device beyond such a tolerance must put the
    device, or its precision, in the key.
    """
    import explorer

    h = hashlib.sha256(f"explorer {explorer.__version__}".encode())
    for part in parts:
        if isinstance(part, torch.Tensor | np.ndarray | Path):
            h.update(b"\x00d" + digest(part).encode())
        else:
            h.update(b"\x00j" + json.dumps(part, sort_keys=True, default=_json).encode())
    return h.hexdigest()


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    raise TypeError(f"cannot use a {type(value).__name__} in a cache key: pass its digest()")


class Cache:
    """Results on disk, keyed by content. ``get`` returns ``(arrays, meta)`` or ``None``.

    Parameters
    ----------
    root : path, optional
        Directory of the entries (default ``cache_root() / "results"``, looked up at each use).
    max_bytes : int
        Size cap of all entries (and temporary files) together; least recently used entries go
        first.
    tmp_max_age : float
        Temporary files older than this (seconds) are orphans of killed writers and are removed.

    Attributes
    ----------
    disabled : str or None
        Why the cache is off (the first write that failed), or None while it works.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        tmp_max_age: float = DEFAULT_TMP_MAX_AGE,
    ):
        self._root = Path(root) if root is not None else None
        self.max_bytes = int(max_bytes)
        self.tmp_max_age = float(tmp_max_age)
        self.disabled: str | None = None

    @property
    def root(self) -> Path:
        """The directory (the default follows ``$EXPLORER_CACHE`` at each use)."""
        return self._root if self._root is not None else cache_root() / "results"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    def get(self, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """The entry's arrays and metadata, or ``None`` if absent or corrupt (then it is removed)."""
        from safetensors.numpy import load

        if self.disabled:
            return None
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        try:
            header = _header(raw)
            arrays = load(raw)
            ok = (
                header.get("format") == _FORMAT
                and header.get("key") == key
                and header.get("sha256") == _checksum(arrays)
            )
        except Exception:  # noqa: BLE001 - anything unreadable is a miss, never an error
            ok = False
        if not ok:
            _unlink(path)
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return arrays, header.get("meta", {})

    def put(
        self, key: str, arrays: Mapping[str, np.ndarray], meta: dict | None = None
    ) -> Path | None:
        """Store ``arrays`` (numeric numpy arrays or tensors) and JSON-able ``meta`` atomically.

        Returns the entry's path, or None when the cache directory cannot be written (then the
        cache turns itself off with one warning; see the module docstring).
        """
        from safetensors.numpy import save

        if self.disabled:
            return None
        arrays = {k: _array(k, v) for k, v in arrays.items()}
        header = {"format": _FORMAT, "key": key, "sha256": _checksum(arrays), "meta": meta or {}}
        data = save(arrays, metadata={"explorer": json.dumps(header, default=_json)})
        path = self.path(key)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            _unlink(tmp)
            self._disable(exc)
            return None
        self._evict()
        return path

    def _disable(self, exc: OSError) -> None:
        self.disabled = f"{exc.strerror or exc}"
        root = str(self.root)
        if root not in _WARNED:
            _WARNED.add(root)
            warnings.warn(
                f"explorer's result cache at {root} cannot be written ({self.disabled}); results "
                "are computed without it for the rest of this session. Point EXPLORER_CACHE at a "
                "writable directory with free space to cache them.",
                CacheWarning,
                stacklevel=3,
            )

    def entries(self) -> list[Path]:
        return sorted(self.root.glob(f"*/*{_SUFFIX}")) if self.root.exists() else []

    def temporary_files(self) -> list[Path]:
        """Files of writes in progress, or left by writers that were killed."""
        return sorted(self.root.glob("*/*.tmp")) if self.root.exists() else []

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: entries and temporary files."""
        return sum(_size(p) for p in [*self.entries(), *self.temporary_files()])

    def clear(self) -> None:
        """Remove every entry and every temporary file left by an interrupted write."""
        if not self.root.exists():
            return
        for p in [*self.root.glob(f"*/*{_SUFFIX}"), *self.root.glob("*/*.tmp")]:
            p.unlink(missing_ok=True)

    def _evict(self) -> None:
        """Remove orphan temporary files, then least recently used entries beyond the cap.

        Recent temporary files (a concurrent writer's) are left alone but count towards the cap.
        """
        now = time.time()
        total = 0
        for p in self.temporary_files():
            try:
                st = p.stat()
            except OSError:
                continue
            if now - st.st_mtime > self.tmp_max_age and _unlink(p):
                continue
            total += st.st_size
        stats = []
        for p in self.entries():
            try:
                st = p.stat()
            except OSError:
                continue
            stats.append((st.st_mtime, st.st_size, p))
        total += sum(s for _, s, _ in stats)
        for _, size, p in sorted(stats, key=lambda s: s[0]):
            if total <= self.max_bytes:
                break
            if _unlink(p):
                total -= size


class CacheWarning(UserWarning):
    """The result cache cannot be used; explorer computes without it."""


_WARNED: set[str] = set()  # cache directories already warned about in this process


def _unlink(p: Path) -> bool:
    """Remove a file; False (never an error) if it cannot be removed."""
    try:
        p.unlink(missing_ok=True)
    except OSError:
        return False
    return True


def _array(name: str, value) -> np.ndarray:
    a = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"cannot cache {name!r} of dtype {a.dtype}: only numeric arrays")
    return np.ascontiguousarray(a)


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}:".encode())
        h.update(memoryview(a.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def _header(raw: bytes) -> dict:
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + n]).get("__metadata__", {})
    return json.loads(meta["explorer"])


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0
