"""ex.compare and ex.similarity on the demo pairs and on MiniLM: the two seed effects, measured.

Measured on the demo (ks 1..16, intruders at k = 10, epsilon = 0.5), recorded in the issue note:

* LoRA vs full fine-tune of ``base``: 8 intruder dimensions over the 4 matrices for LoRA (4, 2, 1,
  1), none for the full fine-tune; the full fine-tune's smallest row-maximum |cos| is 0.50.
* Clean vs 40 % noisy labels (same initialisation and batch order): the demo's 40-epoch models
  do *not* keep their principal subspaces aligned (mean overlap 0.28 at k = 1, 0.67 at k = 8;
  a clean rerun with another batch order: 0.92, 0.97): by then the MLP has memorised the noisy
  labels (test accuracy 0.756 vs 0.973). Before memorisation the seed effect is there: after 2
  epochs the overlap is 0.81-0.90 at k = 1..8, which the last test checks.
"""

from __future__ import annotations

import numpy as np
import pytest

import explorer as ex
from explorer import demo
from explorer.demo import data
from explorer.demo.models import DIGITS_WIDTHS
from explorer.demo.train import deterministic, fit, mlp


def test_lora_has_intruder_dimensions_that_full_fine_tuning_does_not():
    cmp = ex.compare(demo.load("base"), [demo.load("full"), demo.load("lora")])
    intr = cmp.intruders(k=10, epsilon=0.5).groupby("b").n_intruders.sum()
    assert intr["lora"] > intr["full"]
    assert intr["lora"] >= 4
    tidy = cmp.frame()
    assert set(tidy.b) == {"full", "lora"}
    # LoRA's update is low rank (r = 8 on the hidden layers): its effective rank is far below
    # the full fine-tune's, and one direction dominates more
    per_layer = tidy.groupby(["b", "address"]).first()
    hidden = per_layer.xs("blocks.2.mlp.up", level="address")
    assert (
        hidden.loc["lora", "delta_effective_rank"] < hidden.loc["full", "delta_effective_rank"] / 4
    )
    assert hidden.loc["lora", "delta_dominance"] > hidden.loc["full", "delta_dominance"]
    assert set(cmp.task_cosines) == set(tidy.address)


def _overlap(a, b, ks=(1, 2, 4, 8)):
    df = ex.compare(ex.load(a), ex.load(b), ks=list(ks)).frame()
    return df.groupby("k").overlap_left.mean()


def test_label_noise_leaves_the_principal_subspace_aligned_before_memorisation():
    d = data.digits()
    noisy, _ = data.symmetric_noise(d.y_train, 0.4, 1)

    def train(labels, shuffle):
        with deterministic(0):
            model = mlp(DIGITS_WIDTHS)
            fit(model, d.x_train, labels, epochs=2, lr=1e-3, batch_size=64, seed=shuffle)
        return model

    clean = train(d.y_train, 0)
    with deterministic(0):
        init = mlp(DIGITS_WIDTHS)
    to_noisy = _overlap(clean, train(noisy, 0))
    to_init = _overlap(clean, init)
    # aligned at small k, far more than the 2-epoch run is with its own initialisation
    assert (to_noisy > 0.75).all()
    assert (to_noisy > to_init + 0.3).all()


def test_demo_noisy_pair_memorised_and_lost_alignment_as_documented():
    overlap = _overlap(demo.load("digits-clean"), demo.load("digits-noisy"))
    assert overlap.loc[1] < 0.5  # see the module docstring: the honest negative at 40 epochs


def test_minilm_against_a_perturbed_copy(minilm):
    state = demo.perturbed(minilm, 1e-3, seed=0)
    layers = ["blocks.1.attn.q", "blocks.3.mlp.up", "blocks.6.mlp.down"]
    cmp = ex.compare(minilm, state, layers=layers, ks=[1, 8, 64])
    df = cmp.frame()
    assert sorted(df.address.unique()) == sorted(layers)
    assert (df.overlap_left > 0.99).all()
    np.testing.assert_allclose(df.delta_rel, 1e-3, rtol=0.2)
    # isotropic noise is spread over the whole basis: principal share ~ k / rank
    share = df.set_index(["address", "k"]).principal_share
    assert share.loc[("blocks.1.attn.q", 64)] == pytest.approx(64 / 384, rel=0.2)
    assert (cmp.intruders().n_intruders == 0).all()
