"""scripts/demo-workspace: the demo runs copies of the notebooks, refreshed when the repository's
change, never losing a copy the user changed; and settings that keep the news toast away."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "demo-workspace"

pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


def run(workspace: Path) -> str:
    done = subprocess.run(
        [str(SCRIPT), str(workspace)], capture_output=True, text=True, check=True, cwd="/"
    )
    return done.stderr


def test_copies_refresh_and_keep_yours(tmp_path):
    names = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert "tour.ipynb" in names
    run(tmp_path)
    copies = tmp_path / "notebooks"
    assert sorted(p.name for p in copies.iterdir()) == names
    tour = (REPO / "notebooks" / "tour.ipynb").read_bytes()
    assert (copies / "tour.ipynb").read_bytes() == tour
    settings = tmp_path / "settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert json.loads(settings.read_text()) == {"fetchNews": "false", "checkForUpdates": False}

    # the user runs and saves the tour (outputs in it): a launch keeps it as it is
    (copies / "tour.ipynb").write_bytes(tour + b"\n")
    assert run(tmp_path) == ""
    assert (copies / "tour.ipynb").read_bytes() == tour + b"\n"

    # the repository's tour changed since the copy (seen as: what was copied differs from it):
    # the user's copy is kept under a new name and the tour is the repository's again
    (tmp_path / "originals" / "tour.ipynb").write_bytes(b"an older tour")
    said = run(tmp_path)
    mine = [p for p in copies.iterdir() if p.name.startswith("tour.mine-")]
    assert len(mine) == 1 and mine[0].read_bytes() == tour + b"\n"
    assert mine[0].name in said
    assert (copies / "tour.ipynb").read_bytes() == tour

    # an untouched copy of a changed notebook is simply replaced
    (tmp_path / "originals" / "tour.ipynb").write_bytes(b"an older tour")
    (copies / "tour.ipynb").write_bytes(b"an older tour")
    assert run(tmp_path) == ""
    assert (copies / "tour.ipynb").read_bytes() == tour
    assert len([p for p in copies.iterdir() if p.name.startswith("tour.mine-")]) == 1

    # a user's own settings are kept
    settings.write_text('{"fetchNews": "true"}')
    run(tmp_path)
    assert settings.read_text() == '{"fetchNews": "true"}'
