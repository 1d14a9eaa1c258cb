"""Where a checkpoint's tensors live: in memory, in a safetensors file, in shards, in a torch file.

A store lists parameter names with their shapes and dtypes without reading any data, and reads one
tensor at a time on request. Safetensors files are memory-mapped through ``safe_open`` so only the
requested tensor is ever materialised; torch files are opened with ``weights_only=True`` and
``mmap=True`` (never unpickling code).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from explorer.errors import SourceError
from explorer.sources.families import natural_key

_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "U64": getattr(torch, "uint64", torch.int64),
    "U32": getattr(torch, "uint32", torch.int32),
    "U16": getattr(torch, "uint16", torch.int16),
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": getattr(torch, "float8_e4m3fn", torch.uint8),
    "F8_E5M2": getattr(torch, "float8_e5m2", torch.uint8),
    "F8_E8M0": getattr(torch, "float8_e8m0fnu", torch.uint8),
}


class TensorStore:
    """Read-only access to named tensors: ``names``, ``shape(n)``, ``dtype(n)``, ``get(n)``."""

    description: str = "tensors"

    @property
    def names(self) -> list[str]:
        raise NotImplementedError

    def shape(self, name: str) -> tuple[int, ...]:
        raise NotImplementedError

    def dtype(self, name: str) -> torch.dtype:
        raise NotImplementedError

    def get(self, name: str) -> torch.Tensor:
        raise NotImplementedError

    @property
    def tied(self) -> dict[str, str]:
        """Names whose tensor is the very same tensor as an earlier name's (tied weights).

        GPT-2's ``lm_head.weight`` is ``transformer.wte.weight``: a module's state_dict and a
        torch file list it twice, a safetensors file once. Explorer counts a tied matrix once,
        under its first name, so every format gives the same layer table.
        """
        return {}

    def __contains__(self, name: str) -> bool:
        return name in set(self.names)


def find_tied(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{later name: first name}`` for entries that share memory, shape and strides."""
    first: dict[tuple, str] = {}
    tied: dict[str, str] = {}
    for name, t in tensors.items():
        if (
            not isinstance(t, torch.Tensor)
            or t.numel() == 0
            or t.device.type == "meta"
            or t.layout != torch.strided  # sparse tensors have no single data pointer
        ):
            continue
        key = (t.device, t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if key in first:
            tied[name] = first[key]
        else:
            first[key] = name
    return tied


class DictStore(TensorStore):
    """Tensors already in memory: a state_dict or an ``nn.Module``'s parameters and buffers."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], description: str = "state_dict"):
        bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise SourceError(
                f"{description}: entries {bad[:5]} are not tensors; pass a state_dict "
                "(name -> tensor), e.g. model.state_dict()"
            )
        meta = [k for k, v in tensors.items() if v.device.type == "meta" and v.ndim >= 2]
        if meta:
            raise SourceError(
                f"{description}: {len(meta)} weights are on the meta device and hold no data "
                f"(e.g. {meta[:3]}); the model was built without its weights (device='meta', "
                "init_empty_weights or offloading). Load its weights first (load_state_dict(..., "
                "assign=True) or to_empty + load), then pass it to explorer"
            )
        self._tensors = dict(tensors)
        self.description = description
        self._tied = find_tied(self._tensors)

    @property
    def names(self) -> list[str]:
        return list(self._tensors)

    @property
    def tied(self) -> dict[str, str]:
        return self._tied

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def dtype(self, name: str) -> torch.dtype:
        return self._tensors[name].dtype

    def get(self, name: str) -> torch.Tensor:
        t = self._tensors[name].detach()
        # Sparse layouts (COO, CSR, ...) hold the same matrix: analyse its dense form.
        return t.to_dense() if t.layout != torch.strided else t


class SafetensorsStore(TensorStore):
    """One ``.safetensors`` file, read lazily: the header gives names, shapes and dtypes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.description = str(self.path)
        self._header = read_safetensors_header(self.path)
        self._handle = None

    @property
    def names(self) -> list[str]:
        # The writer sorts tensors by dtype, then name ("layers.10" before "layers.2"), so the
        # file keeps no module order; natural name order is the closest to it.
        return sorted((k for k in self._header if k != "__metadata__"), key=natural_key)

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._header.get("__metadata__") or {})

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._header[name]["shape"])

    def dtype(self, name: str) -> torch.dtype:
        code = self._header[name]["dtype"]
        if code not in _SAFETENSORS_DTYPES:
            raise SourceError(f"{self.path}: tensor {name!r} has unsupported dtype {code}")
        return _SAFETENSORS_DTYPES[code]

    def get(self, name: str) -> torch.Tensor:
        from safetensors import SafetensorError, safe_open

        try:
            if self._handle is None:
                self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            return self._handle.get_tensor(name)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise SourceError(
                f"{self.path}: could not read tensor {name!r} ({exc}); the file may be "
                "truncated or corrupt: re-download or re-save it"
            ) from exc


def read_safetensors_header(path: Path) -> dict:
    """Parse and validate a safetensors header without reading tensor data.

    Format: 8-byte little-endian header length n, then n bytes of JSON mapping each name to
    ``{"dtype", "shape", "data_offsets": [begin, end]}`` relative to the end of the header.
    Checks that every tensor's byte range lies inside the file and matches its shape and dtype,
    so a truncated download is refused here with a clear message rather than later in torch.
    """
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise SourceError(f"{path}: not a safetensors file (only {size} bytes)")
        n = int.from_bytes(head, "little")
        if n <= 0 or n > min(size - 8, 100_000_000):
            raise SourceError(
                f"{path}: not a valid safetensors file (header length {n} does not fit a "
                f"{size}-byte file); it may be truncated, corrupt, or another format"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise SourceError(f"{path}: safetensors header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise SourceError(f"{path}: safetensors __metadata__ must map strings to strings")
    data_size = size - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
            shape = [int(d) for d in info["shape"]]
            code = info["dtype"]
            ok = all(isinstance(x, int) for x in (begin, end, *info["shape"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{path}: malformed header entry for {name!r}") from exc
        if not ok or min(shape, default=0) < 0 or not 0 <= begin <= end:
            raise SourceError(
                f"{path}: malformed header entry for {name!r} (shape {info['shape']}, "
                f"data_offsets {info['data_offsets']})"
            )
        if end > data_size:
            raise SourceError(
                f"{path}: tensor {name!r} ends at byte {end} but the file holds only "
                f"{data_size} data bytes: the file is truncated; re-download or re-save it"
            )
        dtype = _SAFETENSORS_DTYPES.get(code)
        if dtype is not None and dtype.itemsize * math.prod(shape) != end - begin:
            raise SourceError(f"{path}: tensor {name!r} byte range does not match its shape")
        spans.append((begin, end, name))
    # Like safetensors itself: the tensors tile the data section exactly, without gaps.
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise SourceError(
                f"{path}: tensor {name!r} starts at byte {begin}, expected {position}: the "
                "header is corrupt"
            )
        position = end
    if position != data_size:
        raise SourceError(
            f"{path}: the header describes {position} data bytes but the file holds "
            f"{data_size}: the file is corrupt or was written incompletely"
        )
    return header


class TorchFileStore(TensorStore):
    """A ``.pt``/``.bin``/``.pth`` state_dict, opened with ``weights_only=True`` and memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.description = str(self.path)
        self._tensors = _torch_load_state_dict(self.path)
        self._tied = find_tied(self._tensors)

    @property
    def names(self) -> list[str]:
        return list(self._tensors)

    @property
    def tied(self) -> dict[str, str]:
        return self._tied

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def dtype(self, name: str) -> torch.dtype:
        return self._tensors[name].dtype

    def get(self, name: str) -> torch.Tensor:
        return self._tensors[name]


# torch's weights_only unpickler names what it refused: a global (class, function) or a module.
_NEEDS_CODE = re.compile(
    r"GLOBAL [A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+ was not an allowed global"
    r"|whose module \S+ is blocked|\S+ must be \S+ to load"
)


def _torch_load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    mmap = zipfile.is_zipfile(path)  # the modern torch format; legacy files cannot be mmapped
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if not _NEEDS_CODE.search(str(exc)):
            raise SourceError(
                f"{path}: could not read this torch file (its pickle stream is damaged); it "
                "may be truncated or corrupt, or not a torch checkpoint"
            ) from exc
        raise SourceError(
            f"{path}: this file needs to run pickled code to load, which explorer refuses "
            "(it could execute anything). If you trust it, convert it once in a separate "
            "process: `sd = torch.load(path, weights_only=False)`; "
            "`safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, "
            "'model.safetensors')`, then load the .safetensors file."
        ) from exc
    except Exception as exc:  # torch raises many types for damaged files (KeyError, EOFError...)
        first_line = (str(exc).splitlines() or [""])[0][:200]
        raise SourceError(
            f"{path}: could not read this torch file ({type(exc).__name__}: {first_line}); it "
            "may be truncated or corrupt, or not a torch checkpoint"
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise SourceError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict (name -> tensor mapping)"
        )
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SourceError(f"{path}: contains no tensors")
    return tensors


class ShardedStore(TensorStore):
    """Several shard files named by an index (``*.index.json`` with a ``weight_map``), or a list."""

    def __init__(self, shards: Mapping[str, TensorStore], description: str):
        self.description = description
        self._shards = dict(shards)
        self._where: dict[str, TensorStore] = {}
        for store in self._shards.values():
            for name in store.names:
                self._where.setdefault(name, store)

    @classmethod
    def from_index(cls, index_path: Path) -> ShardedStore:
        """The shards an index names; the index and the shards must agree tensor by tensor."""
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(f"{index_path}: not a valid shard index ({exc})") from exc
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
        ):
            raise SourceError(
                f'{index_path}: not a valid shard index: it needs a "weight_map" object that maps '
                "each tensor name to the file (a string) holding it; re-save the model or delete "
                "the index to read the weight files as they are"
            )
        if not weight_map:
            raise SourceError(f"{index_path}: the shard index lists no tensors")
        directory = index_path.parent.resolve()
        files = list(dict.fromkeys(weight_map.values()))
        outside = [f for f in files if directory not in (directory / f).resolve().parents]
        if outside:
            raise SourceError(
                f"{index_path}: shard files must lie in the index's directory, but it names "
                f"{outside[:3]}"
            )
        missing = [f for f in files if not (index_path.parent / f).is_file()]
        if missing:
            raise SourceError(
                f"{index_path}: shard files listed in the index are missing: {missing[:5]}; "
                "the download is incomplete: fetch the missing shards"
            )
        store = cls(
            {f: open_weight_file(index_path.parent / f) for f in files}, description=str(index_path)
        )
        held = {f: set(shard.names) for f, shard in store._shards.items()}
        absent = [k for k, f in weight_map.items() if k not in held[f]]
        if absent:
            raise SourceError(
                f"{index_path}: {len(absent)} tensors the index places in a shard are not in it "
                f"(e.g. {absent[0]!r} in {weight_map[absent[0]]!r}): the index and the shards "
                "belong to different saves; re-download or re-save the model"
            )
        return store

    @property
    def names(self) -> list[str]:
        return list(self._where)

    @property
    def tied(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for store in self._shards.values():
            out.update({k: v for k, v in store.tied.items() if self._where.get(k) is store})
        return out

    def shape(self, name: str) -> tuple[int, ...]:
        return self._where[name].shape(name)

    def dtype(self, name: str) -> torch.dtype:
        return self._where[name].dtype(name)

    def get(self, name: str) -> torch.Tensor:
        return self._where[name].get(name)


WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def _looks_like_safetensors(path: Path) -> bool:
    """A file that starts like a safetensors file: 8-byte header length, then ``{"``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
    except OSError:
        return False
    return len(head) == 10 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little")


def open_weight_file(path: Path) -> TensorStore:
    """Open one weight file by its extension (safetensors is also sniffed by content)."""
    if path.name.endswith(".index.json"):
        return ShardedStore.from_index(path)
    if path.suffix == ".safetensors":
        return SafetensorsStore(path)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        if _looks_like_safetensors(path):  # some tools write safetensors under .bin
            return SafetensorsStore(path)
        return TorchFileStore(path)
    raise SourceError(
        f"{path}: unknown weight format {path.suffix!r}; explorer reads .safetensors, "
        ".pt/.pth/.bin (torch state_dicts), shard indexes (*.index.json) and directories of those"
    )


def _weight_files(directory: Path) -> list[Path]:
    """The files of ``directory`` with a weight suffix (shards included), sorted."""
    return sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def open_weight_dir(directory: Path) -> TensorStore:
    """The weights of a model directory: an index of shards, one file, or several files."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index_name).exists():
            return ShardedStore.from_index(directory / index_name)
    indexes = sorted(directory.glob("*.index.json"))
    if indexes:
        return ShardedStore.from_index(indexes[0])
    for preferred in ("model.safetensors", "pytorch_model.bin"):
        if (directory / preferred).exists():
            return open_weight_file(directory / preferred)
    files = _weight_files(directory)
    safes = [p for p in files if p.suffix == ".safetensors"]
    files = safes or files
    if not files:
        inside = [d.name for d in sorted(directory.iterdir()) if d.is_dir() and _weight_files(d)]
        hint = (
            f"; weights are one folder down, in {', '.join(inside)}: load {directory / inside[0]}"
            if inside
            else "; point explorer at the model's weight file or its directory"
        )
        raise SourceError(
            f"{directory}: no weights found (looked for *.safetensors, *.index.json, *.bin, "
            f"*.pt){hint}"
        )
    if len(files) == 1:
        return open_weight_file(files[0])
    stores = {p.name: open_weight_file(p) for p in files}
    seen: dict[str, str] = {}
    for fname, store in stores.items():
        for name in store.names:
            if name in seen:
                raise SourceError(
                    f"{directory}: holds several checkpoints, not the shards of one: "
                    f"{seen[name]} and {fname} both hold {name!r}. Load one file "
                    f"(ex.load('{directory / fname}')), or add an index.json naming the shards"
                )
            seen[name] = fname
    return ShardedStore(stores, description=str(directory))
