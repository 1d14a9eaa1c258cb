"""Every transformers AutoModel type, tiny, through explorer: docs/architectures.md must hold.

Each selected type is built and checked afresh (see ``architectures.py``; the selected types are
swept once, in two processes, before the first of them runs) and its row must equal the one in
``docs/architectures.md``: a type that starts passing or starts failing changes its row, so the doc
can never go stale (regenerate it with ``python scripts/architectures.py``). Types that fail a check
today are xfail with the reason from the sweep; types that do not instantiate here are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tests.integration import architectures as sweep  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "architectures.md"
TARGET = 0.95  # of the types that instantiate here, the share that must pass every check
REGENERATE = "run `python scripts/architectures.py` and commit docs/architectures.md"


def _doc_rows() -> dict[str, str]:
    return sweep.doc_rows(DOC.read_text()) if DOC.is_file() else {}


@pytest.fixture(scope="session")
def swept(request) -> dict[str, sweep.Result]:
    """The results of every model type this session selected, swept in parallel."""
    types = [
        item.callspec.params["model_type"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_architecture"
    ]
    results = sweep.sweep(types, workers=min(2, os.cpu_count() or 1))
    return {r.model_type: r for r in results}


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sweep.model_types())
def test_architecture(model_type, swept):
    result = swept[model_type]
    line = sweep.row(result) if result.instantiated else sweep.not_built_row(result)
    assert _doc_rows().get(model_type) == line, f"{model_type} changed: {REGENERATE}"
    if not result.instantiated:
        pytest.skip(f"does not instantiate here: {result.reason}")
    if not result.passed:
        pytest.xfail("; ".join(result.failures))


def test_doc_lists_every_type():
    listed = set(_doc_rows())
    types = set(sweep.model_types())
    assert listed == types, (
        f"missing {sorted(types - listed)[:5]}, gone {sorted(listed - types)[:5]}: {REGENERATE}"
    )


def test_pass_rate():
    rows = _doc_rows()
    built = [r for r in rows.values() if r.count("|") > 4]  # the table of instantiated types
    passing = [r for r in built if r.split(" | ")[5] == "yes"]
    assert built and len(passing) >= TARGET * len(built), (
        f"{len(passing)} of {len(built)} instantiated types pass every check "
        f"({100 * len(passing) / max(len(built), 1):.1f} %), below {TARGET:.0%}"
    )


def test_the_checks_can_fail():
    """On GPT-2's blocks, a table that splits a block, reverses depths, leaves a matrix out or
    names no roles fails the matching check (so a passing row means something)."""
    model = sweep.build("gpt2")
    blocks = sweep.find_blocks(model)
    assert [b.prefix for b in blocks] == ["h.0", "h.1", "h.2"]
    names = [f"h.{i}.{m}.weight" for i in range(3) for m in ("attn.c_attn", "mlp.c_fc")]

    def rows(depth=lambda name: int(name.split(".")[1]) + 1, role="attn.q"):
        return [(n, depth(n), role) for n in names]

    good = rows()
    depth_of = sweep._block_depths(good, blocks)
    assert sweep._check_one_depth(depth_of)[0]
    assert sweep._check_increasing(depth_of, blocks)[0]
    assert sweep._check_roles(good, blocks, sweep.Result("gpt2"))[0]

    split = rows(depth=lambda n: names.index(n) + 1)
    assert not sweep._check_one_depth(sweep._block_depths(split, blocks))[0]
    reversed_ = rows(depth=lambda n: 4 - int(n.split(".")[1]))
    assert not sweep._check_increasing(sweep._block_depths(reversed_, blocks), blocks)[0]
    assert not sweep._check_roles(rows(role="other"), blocks, sweep.Result("gpt2"))[0]
    every = {n for n, t in model.state_dict().items() if t.ndim >= 2}
    assert sweep._check_covered(model, every)[0]
    assert not sweep._check_covered(model, every - {"h.1.mlp.c_fc.weight"})[0]


def test_sibling_lists_called_in_turn_are_one_stack():
    """XLM's attentions.i and ffns.i run in turn: one stack; an encoder list then a decoder list
    run one after the other: two stacks."""
    att = [sweep.Block("m.attentions", i, f"m.attentions.{i}") for i in range(3)]
    ffn = [sweep.Block("m.ffns", i, f"m.ffns.{i}") for i in range(3)]
    in_turn = [b for pair in zip(att, ffn, strict=True) for b in pair]
    merged = sweep.zip_interleaved(att + ffn, in_turn)
    assert {b.stack for b in merged} == {"m.attentions"}
    assert [(b.index, b.prefix) for b in merged[3:]] == [(i, f"m.ffns.{i}") for i in range(3)]
    one_after_the_other = sweep.zip_interleaved(att + ffn, att + ffn)
    assert {b.stack for b in one_after_the_other} == {"m.attentions", "m.ffns"}
    depths = [("m.attentions.0.w", 1, ""), ("m.ffns.0.w", 2, ""), ("m.attentions.1.w", 3, "")]
    depths += [("m.ffns.1.w", 4, ""), ("m.attentions.2.w", 5, ""), ("m.ffns.2.w", 6, "")]
    split = sweep._block_depths(depths, merged)  # a block's two lists at different depths
    assert not sweep._check_increasing(split, merged)[0]
