"""Capture on small models: the right tensor at every depth, probes of every kind, bad probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex


def manual_states(model, x):
    """Depth 0 = input, depth i = output of block i after its activation, L+1 = logits."""
    h1 = model[1](model[0](x))
    h2 = model[3](model[2](h1))
    return {0: x, 1: h1, 2: h2, 3: model[4](h2)}


def test_mlp_depths_are_post_activation_states(mlp):
    x = torch.randn(50, 8)
    acts = ex.capture(mlp, x, batch_size=7)
    assert acts.depths == [0, 1, 2, 3]
    want = manual_states(mlp, x)
    for d in acts.depths:
        torch.testing.assert_close(acts[d], want[d].detach(), rtol=0, atol=1e-6)
    assert acts["blocks.2"] is acts[2]
    assert acts.meta["n_inputs"] == 50 and acts.meta["pooling"] == "mean"


def test_hooks_removed_and_mode_restored_even_on_error(mlp):
    mlp.train()
    with pytest.raises(ex.ProbeError, match="shape"):
        ex.capture(mlp, torch.randn(4, 5))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in mlp.modules())
    assert mlp.training
    ex.capture(mlp, torch.randn(4, 8))
    assert mlp.training


def test_numpy_probe_with_labels_and_depth_selection(mlp):
    x = np.random.default_rng(0).normal(size=(20, 8))  # float64 is converted
    y = np.arange(20) % 3
    acts = ex.capture(mlp, x, labels={"label": y}, depths=[1, 3])
    assert acts.depths == [1, 3]
    np.testing.assert_array_equal(acts.labels["label"], y)
    with pytest.raises(ex.ProbeError, match="do not exist"):
        ex.capture(mlp, x, depths=[9])


def test_max_points_takes_a_seeded_subset_and_keeps_labels_aligned(mlp):
    x = torch.randn(100, 8)
    y = np.arange(100)
    a = ex.capture(mlp, x, labels={"label": y}, max_points=30, seed=1)
    b = ex.capture(mlp, x, labels={"label": y}, max_points=30, seed=1)
    assert a.n_points == 30
    np.testing.assert_array_equal(a.labels["label"], b.labels["label"])
    full = manual_states(mlp, x)
    torch.testing.assert_close(a[2], full[2][a.labels["label"]].detach(), rtol=0, atol=1e-6)


def test_dataset_and_dataloader_probes(mlp):
    x = torch.randn(24, 8)
    y = torch.arange(24) % 4
    ds = torch.utils.data.TensorDataset(x, y)
    for probe in (ds, torch.utils.data.DataLoader(ds, batch_size=5)):
        acts = ex.capture(mlp, probe)
        np.testing.assert_array_equal(acts.labels["label"], y.numpy())
        torch.testing.assert_close(acts[1], manual_states(mlp, x)[1].detach())


def test_probe_object_and_float16_storage(mlp):
    probe = ex.Probe(torch.randn(10, 8), labels={"label": list("abcdefghij")}, name="toy")
    acts = ex.capture(mlp, probe, dtype=torch.float16)
    assert acts[0].dtype == torch.float16
    assert acts.meta["probe"] == "toy"
    assert list(acts.labels["label"]) == list("abcdefghij")


def test_memory_budget_refuses_before_filling_memory(mlp):
    with pytest.raises(ex.ProbeError, match="max_points"):
        ex.capture(mlp, torch.randn(1000, 8), max_bytes=10_000)


@pytest.mark.parametrize(
    "probe, match",
    [
        (torch.empty(0, 8), "empty"),
        ([], "empty"),
        (torch.randn(3, 8).fill_(float("nan")), "NaN"),
        (np.array([object(), object()]), "objects"),
        (torch.tensor(1.0), "scalar"),
        ({"a": 1}, "cannot use"),
        (["some text"], "tokenizer"),
        (torch.randn(4, 9), "shape"),
    ],
)
def test_bad_probes_give_clear_errors(mlp, probe, match):
    with pytest.raises(ex.ProbeError, match=match):
        ex.capture(mlp, probe)


def test_bad_arguments(mlp):
    with pytest.raises(ValueError, match="pooling"):
        ex.capture(mlp, torch.randn(2, 8), pooling="max")
    with pytest.raises(ex.DeviceError):
        ex.capture(mlp, torch.randn(2, 8), device="cuda:7")


def test_weights_only_checkpoint_cannot_run(tmp_path, mlp):
    from safetensors.torch import save_file

    save_file(mlp.state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ex.SourceError, match="weights only"):
        ex.capture(tmp_path / "w.safetensors", torch.randn(2, 8))


def test_activations_save_load_round_trip(tmp_path, mlp):
    x = torch.randn(12, 8)
    acts = ex.capture(
        mlp, x, labels={"label": np.arange(12) % 2, "name": [f"p{i}" for i in range(12)]}
    )
    path = acts.save(tmp_path / "acts")
    assert path.suffix == ".safetensors"
    back = ex.Activations.load(path)
    assert back.depths == acts.depths
    for d in acts.depths:
        assert torch.equal(back[d], acts[d])
    np.testing.assert_array_equal(back.labels["label"], acts.labels["label"])
    assert list(back.labels["name"]) == list(acts.labels["name"])
    assert back.meta == acts.meta


def test_activations_load_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2, 2)}, tmp_path / "other.safetensors")
    with pytest.raises(ex.SourceError, match="not an explorer activations file"):
        ex.Activations.load(tmp_path / "other.safetensors")


def test_kernel_import_does_not_load_notebook_packages():
    import subprocess
    import sys

    code = (
        "import sys, explorer.kernel; "
        "bad = [m for m in ('pandas', 'ipywidgets', 'anywidget', 'altair') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


class _StreamBlock(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.q_proj = torch.nn.Linear(width, width)
        self.o_proj = torch.nn.Linear(width, width)

    def forward(self, h):
        return h + self.o_proj(torch.tanh(self.q_proj(h)))


class _HyperConnected(torch.nn.Module):
    """Blocks that carry 3 residual streams per token: (batch, tokens, streams, width)."""

    def __init__(self, width: int = 8, streams: int = 3):
        super().__init__()
        self.streams = streams
        self.embed_tokens = torch.nn.Embedding(20, width)
        self.layers = torch.nn.ModuleList(_StreamBlock(width) for _ in range(3))

    def forward(self, input_ids):
        h = self.embed_tokens(input_ids).unsqueeze(2).expand(-1, -1, self.streams, -1)
        for layer in self.layers:
            h = layer(h + 0.1 * torch.arange(self.streams).view(1, 1, -1, 1))
        return h.mean(2)


def test_hyper_connection_streams_become_their_mean():
    torch.manual_seed(0)
    model = _HyperConnected().eval()
    ids = torch.randint(0, 20, (5, 4))
    acts = ex.capture(ex.load(model), ids, device="cpu", progress=False)
    outputs = []
    hooks = [m.register_forward_hook(lambda *a: outputs.append(a[2])) for m in model.layers]
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    for depth, out in enumerate(outputs, start=1):
        expected = out.mean(dim=2).mean(dim=1)  # streams, then tokens
        assert acts[depth].shape == (5, 8)
        torch.testing.assert_close(acts[depth].float(), expected, rtol=1e-5, atol=1e-5)


class _UnusedHead(torch.nn.Module):
    """A classifier that forward never calls (a training-only head)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(20, width)
        self.layers = torch.nn.ModuleList(_StreamBlock(width) for _ in range(3))
        self.classifier = torch.nn.Linear(width, 2)

    def forward(self, input_ids):
        h = self.embed_tokens(input_ids)
        for layer in self.layers:
            h = layer(h)
        return h


def test_a_head_that_does_not_run_is_dropped_with_a_warning():
    model = _UnusedHead().eval()
    ids = torch.randint(0, 20, (4, 5))
    with pytest.warns(UserWarning, match="'classifier', taken as the head .depth 4., did not run"):
        acts = ex.capture(ex.load(model), ids, device="cpu", progress=False)
    assert acts.depths == [0, 1, 2, 3]
    with pytest.raises(ex.ProbeError, match="depth 4 produced no hidden state"):
        ex.capture(ex.load(model), ids, depths=[3, 4], device="cpu", progress=False)
