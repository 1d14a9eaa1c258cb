"""docs/reliability.md is generated from this directory and must not go stale."""

import subprocess
import sys

from tests.reliability.catalogue import ROOT


def test_reliability_doc_is_current():
    done = subprocess.run(
        [sys.executable, "scripts/reliability_table.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
