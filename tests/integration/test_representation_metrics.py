"""ex.representation_metrics on the demo MiniLM and its 320-sentence topic probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.representation import METRICS, representation_metrics, size_curve_metrics


@pytest.fixture(scope="module")
def acts(minilm_dir):
    from explorer import demo

    return ex.capture(demo.load("minilm"), demo.probe("sentences"), batch_size=64, progress=False)


def test_every_metric_at_every_depth(acts):
    df = representation_metrics(acts, n_boot=30, n_boot_spectral=10)
    assert list(df.depth.unique()) == acts.depths
    assert set(df.address) == {f"blocks.{d}" for d in acts.depths}
    metrics = set(df.metric)
    assert metrics >= set(METRICS) - {"pca"} and {"pca_90", "pca_95", "pca_99"} <= metrics
    assert (df.n_points == 320).all() and (df.n_duplicates == 0).all() and (df.seed == 0).all()
    with_ci = df[df.n_boot > 0]
    assert with_ci.ci_low.notna().all() and (with_ci.ci_low <= with_ci.ci_high).all()
    core = df[df.metric.isin(["twonn", "mle", "effective_rank", "rankme", "dse"])]
    inside = (core.ci_low <= core.value) & (core.value <= core.ci_high)
    assert inside.mean() > 0.8  # 30 replicates: a few percentile intervals just miss
    one = df.set_index(["depth", "metric"]).value
    for d in acts.depths:  # representations of a 384-d model are low-dimensional
        assert 3 < one[(d, "twonn")] < 60 and one[(d, "twonn")] < one[(d, "effective_rank")]
        assert 0.5 < one[(d, "knn_accuracy")] <= 1
    assert one[(6, "knn_accuracy")] > 0.8  # topics separate in the last block


def test_per_class_and_lasso_subsets(acts):
    df = representation_metrics(
        acts, methods=["twonn", "mle", "gride", "rankme"], subset="topic", n_boot=10
    )
    n_topics = len(np.unique(acts.labels["topic"]))
    assert df.subset.nunique() == n_topics and df.subset.str.startswith("topic=").all()
    assert df.ci_low.notna().all() and (df.n_points >= 8).all()
    sel = np.arange(0, 320, 2)
    lasso = representation_metrics(acts, methods="twonn", subset=sel, ci=False)
    assert (lasso.subset == "selection").all() and (lasso.n_points == 160).all()
    same = representation_metrics(
        acts, methods="twonn", subset=np.isin(np.arange(320), sel), ci=False
    )
    np.testing.assert_allclose(same.value, lasso.value)


def test_clear_errors(acts):
    with pytest.raises(ValueError, match="empty"):
        representation_metrics(acts, subset=np.array([], dtype=int))
    with pytest.raises(ValueError, match="at least"):
        representation_metrics(acts, subset=np.arange(4))
    with pytest.raises(ValueError, match="unknown metric"):
        representation_metrics(acts, methods=["nope"])
    states = {d: acts[d].clone() for d in acts.depths[:2]}
    states[1][7, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        representation_metrics(Activations(states), methods="twonn")


def test_duplicates_are_counted(acts):
    x = acts[3]
    states = {3: torch.cat([x, x[:32]])}
    df = representation_metrics(Activations(states), methods=["twonn", "rankme"], ci=False)
    twonn = df[df.metric == "twonn"].iloc[0]
    assert twonn.n_duplicates == 32 and twonn.n_points == 320


def test_size_curve(acts):
    sub = Activations({d: acts[d] for d in acts.depths[-2:]})
    df = size_curve_metrics(sub, methods=["twonn"])
    assert list(df.n_points.unique()) == [40, 80, 160, 320]
