"""What every browser test does in JupyterLab: write a notebook, wait for its kernel, run a
cell, switch the theme (imported by the test modules next to it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
from playwright.sync_api import expect

RUN_CELL = """index => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  notebook.activeCellIndex = index;
  return window.jupyterapp.commands.execute("notebook:run-cell");
}"""

KERNEL_READY = (
    "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel"
    "?.connectionStatus === 'connected'"
)


DOCS = Path(__file__).resolve().parents[2] / "docs"


def screenshot(locator, artifacts: Path, name: str, docs_name: str) -> None:
    """Save a screenshot of ``locator`` in the test artifacts as ``name``; with
    ``EXPLORER_UPDATE_DOCS=1`` also as ``docs/docs_name`` (the README shows those)."""
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=artifacts / name)
    if os.environ.get("EXPLORER_UPDATE_DOCS"):
        shutil.copyfile(artifacts / name, DOCS / docs_name)


def write_notebook(lab, name: str, cells: list[str]) -> None:
    """A notebook that names the lab's kernel, so it opens without a "Select Kernel" dialog."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": lab.kernel, "display_name": lab.kernel}
    nbformat.write(notebook, lab.root / name)


def set_theme(page, name: str, light: str, settle_ms: int = 0) -> None:
    """Switch JupyterLab's theme (a saved setting: it outlives the test that set it)."""
    page.evaluate(
        f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})"
    )
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", light)
    if settle_ms:
        page.wait_for_timeout(settle_ms)
