"""ex.spectra against WeightWatcher 0.7.7's default ``analyze()`` on MiniLM and the demo models.

What agrees, and how closely (measured: every MiniLM number to 1e-13 relative):

* the layers: WeightWatcher's ``longname + ".weight"`` is our ``name``; it analyses every matrix
  we do except those with fewer than 8 eigenvalues (``min_evals``: MiniLM's 2 x 384 token-type
  embedding). It does analyse the 30522 x 384 word embedding (it would skip one above 50,000
  rows, ``max_N``; we would not).
* ``spectral_norm`` is ``lambda_max`` of ``W^T W`` (no normalisation) = ``sv_max**2`` here, and
  ``stable_rank`` is the same ``sum lambda / lambda_max``: checked to 1e-3 relative (the issue's
  bar; they agree to rounding).
* alpha, xmin, D, the tail size (``num_pl_spikes``) and ``alpha_weighted``: same candidates, MLE,
  KS distance and tie rule, so they agree to rounding (checked to 1e-6) on every layer where
  WeightWatcher's fit is not flagged (``status == "success"`` and no ``warning``) and which has at
  least 20 eigenvalues. Below 20 eigenvalues WeightWatcher replaces Clauset's rule with a
  bias-corrected small-sample objective (``WWFit.fit_powerlaw_smallN``: alpha with ``n - 1``,
  xmin by ``D - 0.868/sqrt(n)`` over tails of at least 8): the demo models' 10 x 64 heads differ
  for that reason alone. Flagged layers (alpha < 2 or > 6) are compared too where the fit is
  standard: they agree as well, the flag is an interpretation, not a different fit.
* ``matrix_rank`` (numpy's rule on float64 singular values on the CPU) equals ``numerical_rank``.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pandas as pd
import pytest

import explorer as ex
from explorer.spectra import spectra

ww = pytest.importorskip("weightwatcher")
pytest.importorskip("powerlaw")

pytestmark = pytest.mark.filterwarnings("ignore")


def weightwatcher(ck) -> pd.DataFrame:
    """WeightWatcher's default analyze() on the checkpoint's module, keyed by our ``name``."""
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    limits = contextlib.nullcontext()
    try:  # one BLAS thread: same numbers, and no thread thrashing on a busy 2-core machine
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    except ImportError:
        pass
    with limits:
        details = ww.WeightWatcher(model=ck.module()).analyze()
    details["name"] = details["longname"] + ".weight"
    return details.set_index("name")


def compare(ck):
    theirs = weightwatcher(ck)
    ours = spectra(ck, device="cpu").set_index("name")
    return ours, theirs


@pytest.fixture(scope="module")
def minilm_pair(minilm):
    return compare(minilm)


def test_same_layers(minilm_pair, minilm):
    ours, theirs = minilm_pair
    assert len(ours) == len(minilm.entries) == 40
    skipped_by_ww = set(ours.index) - set(theirs.index)
    assert skipped_by_ww == {"embeddings.token_type_embeddings.weight"}
    assert (ours.loc[list(skipped_by_ww), "m"] < 8).all()  # WeightWatcher's min_evals = 8
    assert set(theirs.index) <= set(ours.index)
    assert "embeddings.word_embeddings.weight" in theirs.index
    assert (ours.loc[list(skipped_by_ww), "status"] == "ok").all()


def test_spectral_norm_and_stable_rank(minilm_pair):
    ours, theirs = minilm_pair
    o = ours.loc[theirs.index]
    np.testing.assert_allclose(o.sv_max**2, theirs.spectral_norm, rtol=1e-3)
    np.testing.assert_allclose(o.sv_max, theirs.sv_max, rtol=1e-3)
    np.testing.assert_allclose(o.stable_rank, theirs.stable_rank, rtol=1e-3)
    np.testing.assert_allclose(o.frobenius**2, theirs.norm, rtol=1e-3)
    np.testing.assert_array_equal(o.numerical_rank, theirs.matrix_rank)


def standard_fit(theirs: pd.DataFrame) -> pd.Series:
    return (theirs.status == "success") & (theirs.num_evals >= 20)


def test_alpha_where_weightwatcher_is_not_flagged(minilm_pair):
    ours, theirs = minilm_pair
    clean = theirs[standard_fit(theirs) & (theirs.warning == "")]
    assert len(clean) >= 30  # 34 of 39 on MiniLM
    check_fit(ours.loc[clean.index], clean)


def test_flagged_layers_fit_the_same_tail(minilm_pair):
    ours, theirs = minilm_pair
    flagged = theirs[standard_fit(theirs) & (theirs.warning != "")]
    assert set(flagged.warning) <= {"over-trained", "under-trained"}
    check_fit(ours.loc[flagged.index], flagged)


def check_fit(o: pd.DataFrame, t: pd.DataFrame) -> None:
    np.testing.assert_allclose(o.alpha, t.alpha, rtol=1e-6)
    np.testing.assert_allclose(o.xmin, t.xmin, rtol=1e-6)
    np.testing.assert_allclose(o.D, t.D, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(o.n_tail, t.num_pl_spikes)
    np.testing.assert_allclose(o.alpha_weighted, t.alpha_weighted, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["digits-noisy", "full", "lora"])
def test_demo_checkpoints(name):
    demo = pytest.importorskip("explorer.demo")
    ours, theirs = compare(demo.load(name))
    assert set(ours.index) == set(theirs.index)  # every demo matrix has >= 8 eigenvalues
    o = ours.loc[theirs.index]
    np.testing.assert_allclose(o.sv_max**2, theirs.spectral_norm, rtol=1e-3)
    np.testing.assert_allclose(o.stable_rank, theirs.stable_rank, rtol=1e-3)
    std = standard_fit(theirs)
    assert std.sum() == 3  # the 10 x 64 head has 10 eigenvalues: WeightWatcher's small-N fit
    check_fit(o[std.values], theirs[std])
    assert ex.load(demo.load(name)).addresses == list(spectra(demo.load(name)).address)
