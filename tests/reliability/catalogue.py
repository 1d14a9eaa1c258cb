"""The bad-input catalogue: every reliability test states the input and what the user gets.

A test is registered with ``@bad_input(area, what, expect)``; ``scripts/reliability_table.py``
collects the registry into ``docs/reliability.md`` (one table per area). Cases that could crash
the interpreter or hang run through :func:`run_isolated` (a fresh Python with a timeout), so a
regression shows up as a failed test rather than a dead test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

AREAS = (
    "loading",
    "weights",
    "compare",
    "lora",
    "probes and capture",
    "metrics",
    "projections",
    "similarity",
    "cli",
    "cache",
    "jobs",
    "memory",
)
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    area: str
    what: str
    expect: str
    test: str


REGISTRY: list[Case] = []


def bad_input(area: str, what: str, expect: str) -> Callable:
    """Register a test as one catalogue row: ``what`` the user did, ``expect`` what they get."""
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; use one of {AREAS}")

    def register(fn: Callable) -> Callable:
        REGISTRY.append(
            Case(area, what, expect, f"{fn.__module__.rsplit('.', 1)[-1]}::{fn.__name__}")
        )
        return pytest.mark.reliability(fn)

    return register


def run_isolated(
    code: str, timeout: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a crash is a non-zero return code, a hang a failure."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: no answer within {timeout:.0f} s")


def assert_clear_error(excinfo: pytest.ExceptionInfo, *words: str) -> None:
    """The error is explorer's own (never a raw third-party traceback) and names ``words``."""
    from explorer.errors import ExplorerError

    assert isinstance(excinfo.value, ExplorerError), (
        f"raw {type(excinfo.value).__name__}: {excinfo.value}"
    )
    text = str(excinfo.value).lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in message: {excinfo.value}"
