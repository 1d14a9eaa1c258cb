"""The demo's on-disk cache: one directory per model, written atomically, checked on every read.

Layout: ``<cache_dir()>/<name>/`` holds the model's files and a ``manifest.json`` with the size
and SHA-256 of each of them. An entry is written into a temporary sibling directory and renamed
into place only when complete (the manifest is written last), so an interrupted build never
leaves a half entry; an entry whose manifest is missing or does not match its files is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from explorer.cache import file_sha256

DEMO_VERSION = "1"  # bump when a recipe changes: old caches are then left alone, not reused
MANIFEST = "manifest.json"
_FORMAT = "explorer.demo/1"
_STALE_SECONDS = 3600.0


def cache_dir() -> Path:
    """Where the demo lives: ``$EXPLORER_CACHE/demo/<version>`` if set, else
    ``~/.cache/explorer/demo/<version>`` (``$XDG_CACHE_HOME`` replaces ``~/.cache``)."""
    root = os.environ.get("EXPLORER_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "explorer"
    return base / "demo" / f"v{DEMO_VERSION}"


def entry_dir(name: str) -> Path:
    return cache_dir() / name


def is_valid(path: Path) -> bool:
    """True if ``path`` holds a complete entry whose files match its manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        if manifest.get("format") != _FORMAT or not files:
            return False
        for rel, expected in files.items():
            f = path / rel
            if f.stat().st_size != expected["size"] or file_sha256(f) != expected["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def write_entry(name: str, fill: Callable[[Path], None]) -> Path:
    """Build an entry with ``fill(tmp_dir)`` and move it into place atomically; return its path.

    An entry already there (damaged, stale, or rebuilt on purpose) is replaced. If another
    process puts a complete entry in place during the swap, that one is kept.
    """
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    final = root / name
    tmp = root / f".tmp-{name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        fill(tmp)
        files = {
            str(f.relative_to(tmp).as_posix()): {"size": f.stat().st_size, "sha256": file_sha256(f)}
            for f in sorted(tmp.rglob("*"))
            if f.is_file()
        }
        manifest = {"format": _FORMAT, "name": name, "demo_version": DEMO_VERSION, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if final.exists():  # damaged, stale or rebuilt on purpose: swap it out
            trash = root / f".trash-{name}-{uuid.uuid4().hex}"
            try:
                os.replace(final, trash)
            except FileNotFoundError:  # another process swapped it meanwhile
                pass
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_valid(final):  # another process put a good entry in place first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_stale(root: Path) -> None:
    """Delete leftovers of interrupted builds (older than an hour, so never a live one)."""
    now = time.time()
    for p in root.glob(".tmp-*"):
        _remove_if_old(p, now)
    for p in root.glob(".trash-*"):
        _remove_if_old(p, now)


def _remove_if_old(p: Path, now: float) -> None:
    try:
        if now - p.stat().st_mtime > _STALE_SECONDS:
            shutil.rmtree(p, ignore_errors=True)
    except OSError:
        pass
