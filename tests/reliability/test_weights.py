"""Weights that cannot be analysed as they are: non-finite, quantised, without data, sparse, and
checkpoints that do not pair. Each is flagged or refused by name, never analysed silently."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import save_file

import explorer as ex
from tests.reliability.catalogue import assert_clear_error, bad_input


def state(**replace: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {
        "layers.0.weight": torch.randn(16, 8, generator=g),
        "layers.1.weight": torch.randn(12, 16, generator=g),
        "layers.2.weight": torch.randn(4, 12, generator=g),
    }
    return {**sd, **replace}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@bad_input(
    "weights",
    "a weight matrix holding NaN or Inf (in a .safetensors file)",
    "ex.spectra: that layer's status says skipped with the count of NaN/Inf, the others are analysed",
)
def test_non_finite_weights_are_flagged(tmp_path, value):
    bad = torch.randn(12, 16)
    bad[3, :5] = value
    save_file(state(**{"layers.1.weight": bad}), tmp_path / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = ex.spectra(ex.load(tmp_path / "model.safetensors")).set_index("address")
    flagged = df[df["status"] != "ok"]
    assert len(flagged) == 1 and "5 NaN/Inf" in flagged["status"].iloc[0]
    assert (
        flagged.index[0]
        == ex.load(tmp_path / "model.safetensors")
        .select(lambda e: e.name == "layers.1.weight")[0]
        .address
    )
    assert df.loc[df["status"] == "ok", "sv_max"].notna().all()


@bad_input(
    "weights",
    "ck.weight() of a layer holding NaN",
    "LayerError naming the layer, the parameter and the count",
)
def test_non_finite_weight_read_directly():
    w = torch.randn(12, 16)
    w[0, 0] = float("nan")
    ck = ex.load(state(**{"layers.1.weight": w}))
    address = ck.select(lambda e: e.name == "layers.1.weight")[0].address
    with pytest.raises(ex.LayerError) as excinfo:
        ck.weight(address)
    assert_clear_error(excinfo, address, "layers.1.weight", "1 NaN/Inf")


@bad_input(
    "weights",
    "int8 (quantised) weight matrices among float ones",
    "a warning naming them; ck.skipped lists them; the float matrices are analysed",
)
def test_int8_weights_are_not_dropped_silently():
    q = torch.randint(-100, 100, (12, 16), dtype=torch.int8)
    with pytest.warns(UserWarning, match=r"1 quantised .*layers\.1\.weight"):
        ck = ex.load(state(**{"layers.1.weight": q}))
    assert list(ck.skipped) == ["layers.1.weight"]
    assert "int8" in ck.skipped["layers.1.weight"]
    assert "layers.1.weight" not in set(ck.layers["name"])


@bad_input(
    "weights",
    "GPTQ-style packed int32 qweight matrices",
    "a warning naming them as quantised; ck.skipped lists them",
)
def test_packed_qweights_are_named():
    sd = state()
    sd["layers.1.qweight"] = torch.randint(0, 2**30, (2, 12), dtype=torch.int32)
    del sd["layers.1.weight"]
    with pytest.warns(UserWarning, match="quantised"):
        ck = ex.load(sd)
    assert list(ck.skipped) == ["layers.1.qweight"]


@bad_input(
    "weights",
    "a checkpoint whose every matrix is int8",
    "SourceError: every weight matrix is quantised, dequantise first",
)
def test_all_quantised():
    sd = {k: torch.zeros(v.shape, dtype=torch.int8) for k, v in state().items()}
    with pytest.raises(ex.SourceError) as excinfo, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex.load(sd)
    assert_clear_error(excinfo, "quantised", "dequantise")


@bad_input(
    "weights",
    "integer buffers that are not weights (position_ids, attention masks)",
    "no warning, nothing skipped",
)
def test_integer_buffers_are_not_called_quantised():
    sd = state()
    sd["embeddings.position_ids"] = torch.arange(8).reshape(1, 8)
    sd["layers.0.attn.bias"] = torch.ones(1, 1, 8, 8, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ck = ex.load(sd)
    assert ck.skipped == {}


@bad_input(
    "weights",
    "a model built on the meta device (no data in its weights)",
    "SourceError at load naming the weights and how to materialise them",
)
def test_meta_device_weights():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    with pytest.raises(ex.SourceError) as excinfo:
        ex.load(model)
    assert_clear_error(excinfo, "meta device", "0.weight", "load its weights")


@bad_input(
    "weights",
    "sparse (COO and CSR) weight tensors",
    "analysed as their dense matrices: the same spectra as the dense checkpoint",
)
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sparse_weights_give_the_dense_answer():
    dense = state()
    sparse = {
        k: v.to_sparse() if i % 2 else v.to_sparse_csr() for i, (k, v) in enumerate(dense.items())
    }
    a = ex.spectra(ex.load(dense))
    b = ex.spectra(ex.load(sparse))
    assert (b["status"] == "ok").all()
    torch.testing.assert_close(
        torch.tensor(b["stable_rank"].to_numpy()), torch.tensor(a["stable_rank"].to_numpy())
    )


@bad_input(
    "weights",
    "ex.pair of checkpoints of different sizes (no layer with the same shape)",
    "SourceError: different architectures or sizes, with the counts",
)
def test_pair_with_nothing_in_common():
    small = state()
    big = {k: torch.randn(v.shape[0] * 2, v.shape[1] * 2) for k, v in small.items()}
    with pytest.raises(ex.SourceError) as excinfo:
        ex.pair(small, big)
    assert_clear_error(excinfo, "different architectures or sizes", "3 with different shapes")


@bad_input(
    "weights",
    "ex.pair of checkpoints where one layer's shape differs",
    "the pairing lists it as shape_mismatch with both shapes; the others match",
)
def test_pair_partially_mismatched():
    p = ex.pair(state(), state(**{"layers.2.weight": torch.randn(5, 12)}))
    frame = p.frame().set_index("address")
    assert len(p.matched) == 2
    assert frame["status"].str.startswith("shape_mismatch").sum() == 1
    assert "(4, 12) vs (5, 12)" in " ".join(frame["status"])
