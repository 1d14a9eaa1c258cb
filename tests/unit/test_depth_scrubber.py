"""The dashboard's depth cursor: the summary line and the controls, headless."""

import numpy as np
import pandas as pd

from explorer.widgets.depth_scrubber import DepthScrubber, describe_depth


def spectra():
    return pd.DataFrame(
        {
            "depth": [1, 2, 2],
            "role": ["mlp.up", "attn.q", "mlp.up"],
            "m": [64, 8, 8],
            "n": [32, 8, 16],
            "effective_rank": [20.0, 5.5, 7.25],
        }
    )


def metrics():
    rows = []
    for name, value in [("a", 4.0), ("b", 6.5)]:
        for metric in ["twonn", "mle"]:
            rows.append(
                dict(
                    checkpoint=name,
                    depth=1,
                    subset="all",
                    metric=metric,
                    value=value,
                    ci_low=value - 0.5,
                    ci_high=value + 0.5,
                )
            )
    rows.append(
        dict(
            checkpoint="a",
            depth=1,
            subset="selection",
            metric="twonn",
            value=99.0,
            ci_low=np.nan,
            ci_high=np.nan,
        )
    )
    return pd.DataFrame(rows)


def test_the_summary_names_the_address_and_whatever_results_exist():
    assert describe_depth(3) == "blocks.3"
    assert describe_depth(1, spectra=spectra()) == (
        "blocks.1 · 1 weight matrix (mlp.up 64×32), effective rank 20"
    )
    assert describe_depth(2, spectra=spectra()) == (
        "blocks.2 · 2 weight matrices (attn.q, mlp.up), effective rank 5.5–7.25"
    )
    line = describe_depth(
        1,
        metrics=metrics(),
        names=["a", "b"],
        comparison=pd.DataFrame({"depth": [1, 1, 2], "delta_rel": [0.1, 0.25, 9.0]}),
        similarity=pd.DataFrame([[1.0, 0.5], [0.4, 0.875]], index=[0, 1], columns=[0, 1]),
    )
    # all points, not the selection; both checkpoints with their intervals
    assert (
        line == "blocks.1 · twonn 4 [3.5, 4.5] a, 6.5 [6, 7] b · ‖B − A‖/‖A‖ up to 0.25 · CKA 0.875"
    )
    one = metrics().query("checkpoint == 'a'")
    assert (
        describe_depth(1, metrics=one, metric="mle", names=["a"]) == "blocks.1 · mle 4 [3.5, 4.5]"
    )
    assert describe_depth(5, spectra=spectra(), metrics=metrics()) == "blocks.5"


def test_the_controls_step_over_existing_depths_and_call_back_only_for_the_user():
    moved = []
    scrubber = DepthScrubber([0, 1, 3, 4], 1, moved.append, lambda d: f"<at {d}>")
    assert "&lt;at 1&gt;</span>" in scrubber.summary.value  # escaped
    scrubber.next.click()
    assert scrubber.depth == 3 and moved == [3]  # 2 does not exist
    scrubber.previous.click()
    scrubber.previous.click()
    scrubber.previous.click()  # nothing before 0
    assert scrubber.depth == 0 and moved == [3, 1, 0]
    scrubber.show(4)  # from Python: no call back, but described
    assert moved == [3, 1, 0] and "at 4" in scrubber.summary.value
    scrubber.slider.value = 3  # the user drags the slider
    assert moved[-1] == 3
    # play runs in the browser, linked to the slider
    assert (scrubber.play.min, scrubber.play.max) == (0, 4)
