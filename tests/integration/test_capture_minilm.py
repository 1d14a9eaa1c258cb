"""Capture on the real MiniLM: every depth equals transformers' own hidden states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex

SENTENCES = [
    "The telescope resolved two faint galaxies.",
    "Whisk the eggs before folding in the flour.",
    "The striker scored in the final minute.",
    "Bond yields rose after the announcement.",
    "A short one.",
]


@pytest.fixture(scope="module")
def reference(minilm):
    tok = minilm.tokenizer()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        out = minilm.module()(**enc, output_hidden_states=True)
    return enc, out


def test_layer_table_of_minilm(minilm):
    layers = minilm.layers
    assert minilm.family == "bert" and minilm.n_blocks == 6
    assert len(layers) == 40
    assert set(layers.depth) == set(range(8))


def test_mean_pooled_states_match_transformers(minilm, reference):
    enc, out = reference
    acts = ex.capture(minilm, SENTENCES, batch_size=2)
    assert acts.depths == list(range(8))
    mask = enc["attention_mask"].unsqueeze(-1).float()
    for d in range(7):  # depth 0 = embeddings output, depth i = block i output
        want = (out.hidden_states[d] * mask).sum(1) / mask.sum(1)
        torch.testing.assert_close(acts[d], want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(acts[7], out.pooler_output, rtol=1e-4, atol=1e-5)
    assert list(acts.labels["text"]) == SENTENCES


def test_first_and_last_token_pooling(minilm, reference):
    enc, out = reference
    first = ex.capture(minilm, SENTENCES, pooling="first", depths=[3])
    torch.testing.assert_close(first[3], out.hidden_states[3][:, 0], rtol=1e-4, atol=1e-5)
    last = ex.capture(minilm, SENTENCES, pooling="last", depths=[3])
    lengths = enc["attention_mask"].sum(1) - 1
    want = out.hidden_states[3][torch.arange(len(SENTENCES)), lengths]
    torch.testing.assert_close(last[3], want, rtol=1e-4, atol=1e-5)


def test_all_tokens_subsampled_with_sample_and_position(minilm, reference):
    enc, out = reference
    n_real = int(enc["attention_mask"].sum())
    full = ex.capture(minilm, SENTENCES, pooling="all", depths=[2], batch_size=2)
    assert full.n_points == n_real
    sub = ex.capture(minilm, SENTENCES, pooling="all", depths=[2], max_points=20, seed=3)
    again = ex.capture(minilm, SENTENCES, pooling="all", depths=[2], max_points=20, seed=3)
    assert sub.n_points == 20
    np.testing.assert_array_equal(sub.labels["sample"], again.labels["sample"])
    s, p = sub.labels["sample"], sub.labels["position"]
    assert enc["attention_mask"][s, p].all()  # only real tokens, never padding
    torch.testing.assert_close(sub[2], out.hidden_states[2][s, p], rtol=1e-4, atol=1e-5)
    ids = enc["input_ids"][s, p].tolist()
    assert list(sub.labels["token"]) == minilm.tokenizer().convert_ids_to_tokens(ids)
    assert list(sub.labels["text"]) == [SENTENCES[i] for i in s]
