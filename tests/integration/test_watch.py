"""ex.watch: records per depth while a model trains, from a plain loop and a Trainer callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.kernel import rankme
from explorer.kernel.dimension import twonn


def _train(model, w, steps=21):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for step in range(steps):
        idx = torch.randint(0, 256, (32,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        w(step)
    return w.wait()


@pytest.mark.parametrize("background", ["process", "thread", False])
def test_watch_records_every_n_steps_per_depth(mlp, background):
    probe = torch.randn(200, 8, generator=torch.Generator().manual_seed(1))
    w = _train(mlp, ex.watch(mlp, probe, every=10, drift=True, background=background))
    df = w.frame
    assert sorted(df.step.unique()) == [0, 10, 20]
    assert set(df.metric) == {"effective_rank", "rankme", "twonn", "drift"}
    assert df.value.notna().all()
    drift = df[df.metric == "drift"].set_index(["depth", "step"]).value
    np.testing.assert_allclose(drift.xs(0, level="step"), 0, atol=1e-12)  # from the first record
    assert (drift.xs(20, level="step") > 0).any()
    # the last record equals the kernel on a capture taken now (training has stopped)
    acts = ex.capture(mlp, probe, progress=False)
    last = df[df.step == 20].set_index(["metric", "depth"]).value
    for d in acts.depths:
        assert last["rankme", d] == pytest.approx(float(rankme(acts[d].double())), rel=1e-6)
        assert last["twonn", d] == pytest.approx(twonn(acts[d]), rel=1e-5)
    assert mlp.training  # the capture put the train flag back
    w.close()


def test_a_failed_metrics_process_loses_no_record(mlp):
    probe = torch.randn(120, 8, generator=torch.Generator().manual_seed(1))
    w = ex.watch(mlp, probe, every=1, metrics=["rankme"], drift=True)
    w(0)
    w.wait()
    with pytest.warns(RuntimeWarning, match="metrics process"):
        w._worker._proc.kill()  # the metrics process dies; records keep coming
        for step in range(1, 6):
            w(step)
        w.wait(timeout=60)
    assert w.background == "thread"
    df = w.frame
    assert sorted(df.step.unique()) == list(range(6))
    assert df.value.notna().all()
    drift = df[df.metric == "drift"].set_index(["depth", "step"]).value
    np.testing.assert_allclose(drift.xs(5, level="step"), 0, atol=1e-12)  # still from step 0
    w.close()


def test_a_dropped_watch_ends_its_process(mlp):
    import gc

    w = ex.watch(mlp, torch.randn(64, 8), every=1, metrics=["rankme"])
    proc = w._worker._proc
    del w
    gc.collect()
    assert proc.wait(timeout=60) == 0


def test_watch_rejects_bad_arguments(mlp):
    with pytest.raises(ValueError, match="unknown metrics"):
        ex.watch(mlp, torch.zeros(4, 8), metrics=["magic"])
    with pytest.raises(ValueError, match="positive"):
        ex.watch(mlp, torch.zeros(4, 8), every=0)
    with pytest.raises(ValueError, match="background"):
        ex.watch(mlp, torch.zeros(4, 8), background="gpu")


def test_trainer_callback_calls_on_global_steps(mlp):
    pytest.importorskip("transformers")
    from types import SimpleNamespace

    w = ex.watch(mlp, torch.randn(64, 8), every=5, metrics=["rankme"], background=False)
    cb = w.trainer_callback()
    for step in range(1, 12):
        cb.on_step_end(None, SimpleNamespace(global_step=step), None)
    cb.on_train_end(None, SimpleNamespace(global_step=11), None)
    assert sorted(w.frame.step.unique()) == [5, 10]


def test_lightning_callback_calls_on_global_steps(mlp, monkeypatch):
    """Lightning is not a test dependency (it would pull its own torch): a stand-in module with
    Lightning 2's ``Callback`` hooks checks the wiring; the signatures are Lightning's."""
    import sys
    from types import ModuleType, SimpleNamespace

    if "lightning" not in sys.modules:
        fake = ModuleType("lightning.pytorch")
        fake.Callback = type("Callback", (), {})
        monkeypatch.setitem(sys.modules, "lightning", ModuleType("lightning"))
        monkeypatch.setitem(sys.modules, "lightning.pytorch", fake)
    w = ex.watch(mlp, torch.randn(64, 8), every=4, metrics=["rankme"], background="thread")
    cb = w.lightning_callback()
    for step in range(1, 10):
        trainer = SimpleNamespace(global_step=step)
        cb.on_train_batch_end(trainer, mlp, None, None, step - 1)
    cb.on_train_end(SimpleNamespace(global_step=9), mlp)
    assert sorted(w.frame.step.unique()) == [4, 8]  # on_train_end waited for both


def test_watch_widget_streams_the_frame(mlp):
    w = ex.watch(mlp, torch.randn(64, 8), every=1, metrics=["effective_rank"], background=False)
    view = w.widget()
    w(0)
    w._view.refresh(force=True)
    values = view.spec["data"]["values"]
    assert {v["depth"] for v in values} == set(w.frame.depth)
    assert np.isclose(sorted(v["value"] for v in values), sorted(w.frame.value)).all()
