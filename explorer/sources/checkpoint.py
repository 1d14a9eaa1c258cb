"""``Checkpoint``: one model's weights on the depth axis, read one matrix at a time."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from explorer.errors import LayerError, SourceError
from explorer.kernel.device import resolve_device
from explorer.sources.families import LayerEntry, Layout, parse_address, resolve
from explorer.sources.matrices import apply_transforms
from explorer.sources.stores import TensorStore

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

LayerSelector = str | Iterable[str] | Callable[[LayerEntry], bool] | None


class Checkpoint:
    """A model checkpoint whose weight matrices are addressed as ``blocks.{depth}.{role}``.

    Weights stay where they are (in memory, or on disk memory-mapped) until :meth:`weight` asks for
    one. Built by :func:`explorer.load`; not meant to be constructed by hand.

    Attributes
    ----------
    name : str
        A short label (file or directory name, or the module's class name).
    family : str
        A label: a well-known family (``bert``, ``gpt2``, ``llama``, ``vit``, ``resnet``), else the
        config's ``model_type``, else ``blocks`` when blocks were found in the structure, and
        ``mlp`` or ``sequential`` for models without blocks (module order).
    source : str
        Where it came from (a path, or ``"<nn.Module>"`` / ``"<state_dict>"``).
    meta : dict
        Free-form provenance (the demo stores how it was trained, its accuracy and seed here).
    """

    def __init__(
        self,
        store: TensorStore,
        *,
        name: str,
        source: str,
        model_type: str | None = None,
        module_factory: Callable[[], nn.Module] | None = None,
        tokenizer_factory: Callable[[], Any] | None = None,
        meta: dict | None = None,
        config: dict | None = None,
    ):
        self._store = store
        self.name = name
        self.source = source
        self.meta = dict(meta or {})
        self._module_factory = module_factory
        self._tokenizer_factory = tokenizer_factory
        self._module: nn.Module | None = None
        self.model_type = model_type
        tied = store.tied
        names = [n for n in store.names if store.dtype(n).is_floating_point and n not in tied]
        self.skipped: dict[str, str] = {
            n: f"{str(store.dtype(n)).replace('torch.', '')} (quantised): not analysed"
            for n in store.names
            if _quantised(n, store.shape(n), store.dtype(n))
        }
        if self.skipped:
            warnings.warn(
                f"{source}: {len(self.skipped)} quantised (integer) weight matrices are left out "
                f"of every analysis, e.g. {list(self.skipped)[:3]}: explorer analyses "
                "floating-point weights only. Dequantise the model first (e.g. load it in "
                "float16) to include them; ck.skipped lists them.",
                stacklevel=3,
            )
        self._layout: Layout = resolve(
            names,
            {n: store.shape(n) for n in names},
            {n: str(store.dtype(n)).replace("torch.", "") for n in names},
            model_type=model_type,
            config=config,
        )
        self.config = dict(config or {})
        self._by_address = {e.address: e for e in self._layout.entries}
        if not self._layout.entries:
            if self.skipped:
                raise SourceError(
                    f"{source}: every weight matrix is quantised ({len(self.skipped)} integer "
                    "matrices, no floating-point one); explorer analyses floating-point weights: "
                    "dequantise the model first (e.g. load it in float16 and save that)"
                )
            raise SourceError(
                f"{source}: no weight matrices found (only 1-D tensors or none at all); "
                "explorer analyses 2-D weights and conv kernels"
            )

    # -- what it holds ----------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self._layout.family_name

    @property
    def n_blocks(self) -> int:
        """L, the number of blocks: depths run 0 (embeddings) .. L+1 (head)."""
        return self._layout.n_blocks

    @property
    def entries(self) -> tuple[LayerEntry, ...]:
        return self._layout.entries

    @property
    def addresses(self) -> list[str]:
        return [e.address for e in self._layout.entries]

    @property
    def layers(self) -> pd.DataFrame:
        """One row per weight matrix: address, depth, role, name, shape, dtype, params, stack.

        ``stack`` names the stack of blocks a row belongs to (``encoder``, ``decoder``,
        ``vision``, ``text``, ``main``...; empty for a shared embedding or head, and for models
        without blocks). Depth runs across the stacks in forward order: see
        :mod:`explorer.sources.structure`.
        """
        import pandas as pd

        return pd.DataFrame(
            {
                "address": [e.address for e in self.entries],
                "depth": [e.depth for e in self.entries],
                "role": [e.role for e in self.entries],
                "name": [e.name for e in self.entries],
                "shape": [e.shape for e in self.entries],
                "dtype": [e.dtype for e in self.entries],
                "params": [e.params for e in self.entries],
                "stack": [e.stack for e in self.entries],
            }
        )

    def entry(self, address: str) -> LayerEntry:
        """The layer at a full address such as ``"blocks.3.attn.q"``."""
        try:
            return self._by_address[address]
        except (KeyError, TypeError):
            raise LayerError(self._unknown_address(address)) from None

    def _unknown_address(self, address) -> str:
        msg = f"{self.name} has no layer {address!r}."
        if not isinstance(address, str):
            return f"{msg} Give a full address as a string, e.g. {self.addresses[0]!r}."
        by_name = [e.address for e in self.entries if e.name in (address, address + ".weight")]
        tied = self._store.tied.get(address)
        if len(by_name) == 1:
            hint = f" {address!r} is a parameter name; its address is {by_name[0]!r}."
        elif by_name:
            hint = f" {address!r} is a parameter name; its matrices are at {by_name}."
        elif tied is not None:
            hint = f" {address!r} is tied to {tied!r} and listed once, under that name."
        else:
            hint = self._address_hint(address)
        return f"{msg}{hint} See ck.layers for all addresses."

    def select(self, layers: LayerSelector = None) -> list[LayerEntry]:
        """Entries chosen by a full address, a list of addresses, or a predicate on entries."""
        if layers is None:
            return list(self.entries)
        if isinstance(layers, str):
            return [self.entry(layers)]
        if callable(layers):
            return [e for e in self.entries if layers(e)]
        return [self.entry(a) for a in layers]

    def _address_hint(self, address: str) -> str:
        addresses = list(self._by_address)
        try:
            depth, _ = parse_address(address)
        except ValueError:
            close = difflib.get_close_matches(address, addresses, n=5)
            hint = f" Did you mean one of {close}?" if close else ""
            return hint + " Addresses look like 'blocks.3.attn.q' (depth, then role)."
        at_depth = [e.address for e in self.entries if e.depth == depth]
        if not at_depth:
            return f" Its depths run from 0 to {max(e.depth for e in self.entries)}."
        close = [a for a in at_depth if a.startswith(address + ".")]
        close = close or difflib.get_close_matches(address, at_depth, n=5)
        if close:
            return f" Did you mean one of {close[:5]}?"
        return f" Depth {depth} holds {at_depth[:8]}."

    # -- reading weights --------------------------------------------------------------------
    def weight(
        self,
        address: str,
        *,
        device: str | torch.device | None = "cpu",
        dtype: torch.dtype = torch.float32,
        check_finite: bool = True,
    ) -> torch.Tensor:
        """The (out, in) matrix at ``address`` as ``dtype`` on ``device``, read on its own.

        Raises :class:`~explorer.errors.LayerError` if it holds NaN or Inf (``check_finite``).
        """
        e = self.entry(address)
        dev = resolve_device(device)
        mat = apply_transforms(self._store.get(e.name), e.transforms)
        mat = mat.to(device=dev, dtype=dtype)
        if check_finite and not bool(torch.isfinite(mat).all()):
            n_bad = int((~torch.isfinite(mat)).sum())
            raise LayerError(
                f"{self.name}: layer {address} ({e.name}) holds {n_bad} NaN/Inf values; the "
                "checkpoint is damaged or training diverged. Analyses skip such layers and "
                "report them in their status column."
            )
        return mat

    def weights(self, layers: LayerSelector = None, **kwargs) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(address, matrix)`` one at a time (never the whole model in memory)."""
        for e in self.select(layers):
            yield e.address, self.weight(e.address, **kwargs)

    def tensor(self, name: str) -> torch.Tensor:
        """A stored tensor by its original parameter name, untransformed."""
        if name not in self._store:
            close = difflib.get_close_matches(name, self._store.names, n=3)
            hint = f" Did you mean one of {close}?" if close else ""
            raise LayerError(
                f"{self.name} has no parameter named {name!r}.{hint} See ck.parameter_names."
            )
        return self._store.get(name)

    @property
    def parameter_names(self) -> list[str]:
        return self._store.names

    # -- running the model --------------------------------------------------------------------
    @property
    def can_run(self) -> bool:
        return self._module_factory is not None

    def module(self) -> nn.Module:
        """The runnable ``nn.Module`` (built on first use), for capturing activations."""
        if self._module is None:
            if self._module_factory is None:
                raise SourceError(
                    f"{self.source} holds weights only, so it cannot be run on a probe. Load "
                    "the nn.Module itself (ex.load(model)) or a model directory with a "
                    "config.json to capture activations."
                )
            self._module = self._module_factory()
        return self._module

    def tokenizer(self):
        """The checkpoint's own tokenizer (Hugging Face directories), or None."""
        return self._tokenizer_factory() if self._tokenizer_factory else None

    def __repr__(self) -> str:
        return (
            f"Checkpoint({self.name!r}, family={self.family!r}, blocks={self.n_blocks}, "
            f"matrices={len(self.entries)}, source={self.source!r})"
        )


_QUANTISED_DTYPES = {
    torch.int8,
    torch.uint8,
    torch.qint8,
    torch.quint8,
    torch.qint32,
    torch.quint4x2,
}


def _quantised(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> bool:
    """An integer weight matrix (int8/uint8, torch's quantised dtypes, GPTQ's packed qweight).

    Integer masks and index buffers (``attn.bias``, ``position_ids``) are not weights.
    """
    leaf = name.rsplit(".", 1)[-1]
    if len(shape) < 2 or "mask" in leaf or leaf in ("bias", "masked_bias") or leaf.endswith("_ids"):
        return False
    return dtype in _QUANTISED_DTYPES or (not dtype.is_floating_point and leaf == "qweight")
