"""explorer audit: report, data and provenance on the demo pair and on MiniLM vs a perturbed copy."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import explorer as ex
from explorer import demo
from explorer.audit import read_probe
from explorer.errors import ProbeError


def _tables(page: str) -> list[pd.DataFrame]:
    """The page's tables as strings (pandas.read_html would need lxml)."""

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.tables[-1][-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Tables()
    parser.feed(page)
    return [pd.DataFrame(rows[1:], columns=rows[0]) for rows in parser.tables if rows]


@pytest.fixture(scope="module")
def demo_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit-demo")
    messages = []
    probe = demo.probe("shifted")
    report = ex.audit(
        demo.load("base"), demo.load("lora"), probe, out, max_points=150, progress=messages.append
    )
    return out, report, messages


def test_demo_audit_writes_report_data_and_provenance(demo_audit):
    out, report, messages = demo_audit
    assert report == out / "report.html"
    for name in ("spectra", "compare", "intruders", "pairing", "similarity", "representation"):
        csv = pd.read_csv(out / "data" / f"{name}.csv")
        parquet = pd.read_parquet(out / "data" / f"{name}.parquet")
        assert len(csv) == len(parquet) > 0
        assert csv.row.tolist() == list(range(len(csv)))
    assert "esd" in pd.read_parquet(out / "data" / "spectra.parquet")  # arrays: Parquet only
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["checkpoints"]["a"]["name"] == "base"
    assert all(len(h) == 64 for h in prov["checkpoints"]["a"]["sha256"].values())
    assert prov["parameters"]["seed"] == 0 and prov["torch"] == torch.__version__
    assert prov["probe"]["name"] == "shifted"
    assert any("compare: done" in m for m in messages)


def test_numbers_in_the_report_trace_to_their_rows(demo_audit):
    out, report, _ = demo_audit
    page = report.read_text()
    intr = pd.read_csv(out / "data" / "intruders.csv")
    shown = next(t for t in _tables(page) if {"min_max_cos", "n_intruders"} <= set(t.columns))
    assert len(shown) == len(intr)
    for _, row in shown.iterrows():
        source = intr.loc[intr.row == int(row["row"])].iloc[0]
        assert source.address == row.address
        assert source.n_intruders == int(row.n_intruders)
        assert f"{source.min_max_cos:.4g}" == row.min_max_cos
    assert page.count("<svg") >= 4  # spectra, compare, CKA, representations
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page


def test_cli_audit_of_minilm_against_a_perturbed_copy(minilm_dir, tmp_path):
    perturbed = tmp_path / "perturbed"
    perturbed.mkdir()
    for f in minilm_dir.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name != "pytorch_model.bin":
            (perturbed / f.name).write_bytes(f.read_bytes())
    ck = ex.load(minilm_dir)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name in ck.parameter_names:
        t = ck.tensor(name).clone().contiguous()
        if name.endswith("encoder.layer.3.intermediate.dense.weight"):
            t += 0.05 * t.std() * torch.randn(t.shape, generator=gen)
        state[name] = t
    save_file(state, perturbed / "model.safetensors")
    probe = tmp_path / "probe.txt"
    probe.write_text("\n".join(f"sentence number {i} about topic {i % 5}" for i in range(40)))
    out = tmp_path / "audit"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "explorer",
            "audit",
            str(minilm_dir),
            str(perturbed),
            "--probe",
            str(probe),
            "--out",
            str(out),
            "--max-points",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("report.html")
    assert "[audit" in run.stderr  # progress on the terminal
    cmp = pd.read_csv(out / "data" / "compare.csv").drop_duplicates("address")
    changed = cmp.loc[cmp.delta_rel > 0, "address"].tolist()
    assert changed == ["blocks.4.mlp.up"]
    assert cmp.set_index("address").delta_rel["blocks.4.mlp.up"] == pytest.approx(0.05, rel=0.2)
    sim = pd.read_csv(out / "data" / "similarity.csv")
    diag = sim[sim.depth_a == sim.depth_b].set_index("depth_a").cka
    assert (diag.loc[:3] > 0.9999).all()  # unchanged below the perturbed block


def test_cli_errors_are_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "explorer", "audit", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "two checkpoints" in run.stderr


def test_read_probe_formats(tmp_path):
    (tmp_path / "p.txt").write_text("a\n\nb\n")
    assert read_probe(tmp_path / "p.txt").inputs == ["a", "b"]
    pd.DataFrame({"text": ["x", "y"], "label": [0, 1]}).to_csv(tmp_path / "p.csv", index=False)
    p = read_probe(tmp_path / "p.csv")
    assert p.inputs == ["x", "y"] and list(p.labels["label"]) == [0, 1]
    import numpy as np

    np.save(tmp_path / "p.npy", np.ones((3, 4)))
    assert read_probe(tmp_path / "p.npy").inputs.shape == (3, 4)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ProbeError, match="never unpickles"):
        read_probe(tmp_path / "o.npy")
    with pytest.raises(ProbeError, match="unknown probe format"):
        (tmp_path / "p.xyz").write_text("")
        read_probe(tmp_path / "p.xyz")
    assert read_probe("demo:sentences").name == "sentences"
