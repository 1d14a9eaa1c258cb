"""The audit's outputs: tidy data files and one self-contained HTML page that shows them.

Every table written here gets a ``row`` column (0, 1, ...) before it is saved as
``data/NAME.parquet`` and ``data/NAME.csv``; every table in the page shows that column and names
its file, and every chart names the file and columns it draws, so each number in the report can
be traced to its row. Charts are Vega-Lite specs (altair) rendered to inline SVG by vl-convert:
the page loads nothing, from anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["write_data", "write_report"]

_ARRAY_COLUMNS = ("esd",)


def write_data(out: Path, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Write each frame as Parquet and CSV under ``out/data``; return them with ``row`` added.

    Array-valued columns (the ESD) go to Parquet only.
    """
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, df in frames.items():
        df = df.reset_index(drop=True)
        df.insert(0, "row", range(len(df)))
        table = df.copy()
        # shapes are tuples, which Parquet does not take: make them lists
        for c in table.select_dtypes(include="object", exclude="str"):
            table[c] = table[c].map(lambda v: list(v) if isinstance(v, tuple) else v)
        table.to_parquet(data / f"{name}.parquet", index=False)
        flat = table.drop(columns=[c for c in _ARRAY_COLUMNS if c in table])
        flat.to_csv(data / f"{name}.csv", index=False)
        written[name] = df
    return written


def _svg(chart) -> str:
    try:
        import vl_convert
    except ImportError:
        return "<p><em>(chart omitted: install vl-convert-python to draw charts)</em></p>"
    return vl_convert.vegalite_to_svg(chart.to_dict())


def _table(df: pd.DataFrame, source: str, columns: list[str], max_rows: int = 60) -> str:
    shown = df[["row", *[c for c in columns if c in df]]].head(max_rows)
    more = f" (first {max_rows} of {len(df)})" if len(df) > max_rows else ""
    body = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–", border=0)
    return f'<p class="src">from <code>{source}</code>, column <code>row</code>{more}</p>{body}'


def _figure(chart, caption: str) -> str:
    return f"<figure>{_svg(chart)}<figcaption>{caption}</figcaption></figure>"


def _spectra_section(spec: pd.DataFrame) -> str:
    import altair as alt

    df = spec.drop(columns=[c for c in _ARRAY_COLUMNS if c in spec])
    charts = []
    for metric in ("effective_rank", "stable_rank", "alpha"):
        chart = (
            alt.Chart(df)
            .mark_line(point=True)
            .encode(
                x=alt.X("depth:O", title="depth"),
                y=alt.Y(f"mean({metric}):Q", title=metric),
                color=alt.Color("checkpoint:N"),
                strokeDash=alt.StrokeDash("checkpoint:N"),
            )
            .properties(width=260, height=180, title=f"{metric} (mean over roles)")
        )
        charts.append(chart)
    combined = alt.hconcat(*charts)
    cols = ["checkpoint", "address", "shape", "sv_max", "stable_rank", "effective_rank", "alpha"]
    return (
        "<h2>Weight spectra</h2>"
        + _figure(combined, "data/spectra.csv: columns depth, checkpoint and each metric")
        + _table(spec, "data/spectra.csv", cols + ["status"])
    )


def _compare_section(cmp: pd.DataFrame, intr: pd.DataFrame, pairing: pd.DataFrame) -> str:
    import altair as alt

    per_layer = cmp.drop_duplicates("address")
    heat = (
        alt.Chart(cmp)
        .mark_rect()
        .encode(
            x=alt.X("k:O"),
            y=alt.Y("address:N", sort=list(per_layer.address)),
            color=alt.Color("overlap_left:Q", scale=alt.Scale(domain=[0, 1]), title="overlap"),
        )
        .properties(title="subspace overlap (left singular vectors), mean cos² at k")
    )
    delta = (
        alt.Chart(per_layer)
        .mark_bar()
        .encode(x=alt.X("delta_rel:Q", title="||ΔW|| / ||W_A||"), y=alt.Y("address:N", sort=None))
        .properties(title="relative size of the update per matrix")
    )
    unmatched = pairing[pairing.status != "matched"]
    note = (
        f"<p>{len(pairing) - len(unmatched)} matrices matched; "
        f"{len(unmatched)} not (data/pairing.csv).</p>"
    )
    return (
        "<h2>What changed: subspaces and updates</h2>"
        + note
        + _figure(
            alt.hconcat(heat, delta),
            "data/compare.csv: overlap_left by address and k; delta_rel per address",
        )
        + "<h3>Largest updates</h3>"
        + _table(
            per_layer.sort_values("delta_rel", ascending=False),
            "data/compare.csv",
            ["address", "delta_rel", "delta_dominance", "delta_effective_rank", "n_intruders"],
            max_rows=10,
        )
        + "<h3>Intruder dimensions</h3>"
        + _table(
            intr, "data/intruders.csv", ["address", "k", "epsilon", "n_intruders", "min_max_cos"]
        )
    )


def _similarity_section(sim: pd.DataFrame) -> str:
    import altair as alt

    chart = (
        alt.Chart(sim)
        .mark_rect()
        .encode(
            x=alt.X("depth_b:O"),
            y=alt.Y("depth_a:O"),
            color=alt.Color("cka:Q", scale=alt.Scale(domain=[0, 1])),
            tooltip=["row", "depth_a", "depth_b", "cka"],
        )
        .properties(width=240, height=240, title="linear CKA between depths")
    )
    diag = sim[sim.depth_a == sim.depth_b]
    return (
        "<h2>Representations: CKA</h2>"
        + _figure(chart, "data/similarity.csv: columns depth_a, depth_b, cka")
        + _table(diag, "data/similarity.csv", ["depth_a", "depth_b", "cka"])
    )


def _representation_section(rep: pd.DataFrame) -> str:
    import altair as alt

    needed = {"depth", "metric", "value"}
    if not needed <= set(rep.columns):
        return ""
    full = rep
    if "scale" in rep:  # scale curves (GRIDE) have a row per scale: chart their first scale
        rep = rep[rep.scale.isna() | ~rep.duplicated(["checkpoint", "depth", "metric"])]
    base = alt.Chart().encode(x=alt.X("depth:O"), color="checkpoint:N")
    layers = [base.mark_line(point=True).encode(y=alt.Y("value:Q", title=None))]
    if {"ci_low", "ci_high"} <= set(rep.columns):
        layers.insert(0, base.mark_errorbar().encode(y="ci_low:Q", y2="ci_high:Q"))
    chart = (
        alt.layer(*layers, data=rep.drop(columns=[c for c in ("estimator",) if c in rep]))
        .properties(width=200, height=150)
        .facet(facet=alt.Facet("metric:N"), columns=4)
        .resolve_scale(y="independent")
    )
    cols = [c for c in ("checkpoint", "depth", "metric", "value", "ci_low", "ci_high") if c in rep]
    return (
        "<h2>Representations per depth</h2>"
        + _figure(
            chart,
            "data/representation.csv: value (95 % CI) by metric, depth, checkpoint "
            "(for scale curves, the smallest scale; every scale is in the data)",
        )
        + _table(full, "data/representation.csv", cols + ["scale"], max_rows=80)
    )


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em; }
th, td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
th { background: #f4f4f4; } figure { margin: 1em 0; overflow-x: auto; }
figcaption, .src { color: #666; font-size: 12px; } code { font-size: 12px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { font-weight: 600; } dd { margin: 0; }
"""


def write_report(
    out: Path, frames: dict[str, pd.DataFrame], provenance: dict[str, Any], names: tuple[str, str]
) -> Path:
    """Write the data files and ``report.html`` into ``out``; return the HTML path."""
    frames = write_data(out, frames)
    a, b = (html.escape(n) for n in names)
    sections = [
        f"<h2>Not in this report</h2><p><strong>{html.escape(step)} failed</strong>: "
        f"<code>{html.escape(error)}</code></p>"
        for step, error in (provenance.get("failed") or {}).items()
    ]
    if "spectra" in frames:
        sections.append(_spectra_section(frames["spectra"]))
    if "compare" in frames:
        sections.append(_compare_section(frames["compare"], frames["intruders"], frames["pairing"]))
    if "similarity" in frames:
        sections.append(_similarity_section(frames["similarity"]))
    if "representation" in frames:
        sections.append(_representation_section(frames["representation"]))
    prov = provenance
    facts = {
        "A (reference)": f"{a} ({prov['checkpoints']['a']['family']}, "
        f"{prov['checkpoints']['a']['matrices']} matrices)",
        "B": f"{b} ({prov['checkpoints']['b']['family']}, "
        f"{prov['checkpoints']['b']['matrices']} matrices)",
        "explorer / torch": f"{prov['explorer']} / {prov['torch']}",
        "device": str(prov["device"]),
        "finished": prov["finished"],
        "run time": f"{prov['seconds']:.1f} s",
    }
    summary = "".join(f"<dt>{k}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>explorer audit: {a} vs {b}</title><style>{_STYLE}</style></head>
<body>
<h1>What changed from {a} to {b}</h1>
<dl>{summary}</dl>
<p class="src">Every number below is in <code>data/</code> (Parquet and CSV); tables show the
<code>row</code> it comes from. Provenance (file digests, versions, parameters):
<code>provenance.json</code>.</p>
{"".join(sections)}
<h2>Provenance</h2>
<pre>{html.escape(json.dumps(prov, indent=2, default=str))}</pre>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
