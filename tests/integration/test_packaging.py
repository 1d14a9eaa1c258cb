"""The wheel carries the built JavaScript bundles and imports outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_wheel_contains_every_bundle_and_imports(tmp_path):
    bundles = sorted(p.name for p in (ROOT / "explorer" / "static").glob("*.js"))
    if not bundles:
        pytest.skip("JavaScript not built (scripts/setup builds it)")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("explorer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for bundle in bundles:
        assert f"explorer/static/{bundle}" in names
    assert not any(n.startswith(("tests/", "widgets_js/")) for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    code = (
        "import explorer, pathlib, sys; p = pathlib.Path(explorer.__file__).parent; "
        f"assert str(p).startswith({str(target)!r}), p; "
        f"missing = [b for b in {bundles!r} if not (p / 'static' / b).exists()]; "
        "sys.exit(1 if missing else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
