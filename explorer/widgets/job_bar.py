"""The job bar: what is computing in the background, how far it is, and a button to stop it.

One row per running :class:`explorer.jobs.Job` (title, progress bar, the layer running, layers
done and an ETA, a cancel button); a finished job leaves its row and is summed up in one line;
failed layers stay listed with their layer and error, so an error never passes silently and never
reaches the kernel. The job engine calls back from its worker threads: every update here holds
one lock.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Hashable

import ipywidgets as w

from explorer.jobs import Job, Progress

__all__ = ["JobBar", "format_eta", "layer_label"]

_MUTED = "color: var(--jp-ui-font-color2, #616161)"
_WARN = "color: var(--jp-warn-color1, #f57c00)"


def layer_label(layer: Hashable | None) -> str:
    """``"depth 3"`` for an int layer, the layer itself otherwise ("" for None)."""
    if layer is None:
        return ""
    return f"depth {layer}" if isinstance(layer, int) else str(layer)


def format_eta(seconds: float | None) -> str:
    """``"ETA 4 s"``, ``"ETA 2 min 5 s"``; ``""`` before the first layer has finished."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"ETA {seconds:.0f} s" if seconds >= 1 else "ETA <1 s"
    return f"ETA {int(seconds // 60)} min {int(seconds % 60)} s"


class _Row:
    def __init__(self, bar: JobBar, job: Job, title: str):
        self.job = job
        self.title = title
        self.label = w.HTML(f"<b>{html.escape(title)}</b>", layout=w.Layout(width="190px"))
        self.progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, bar_style="info", layout=w.Layout(width="180px")
        )
        self.status = w.HTML(layout=w.Layout(flex="1 1 auto"))
        self.cancel = w.Button(
            description="cancel",
            icon="stop",
            tooltip=f"stop {title} after the layer now running",
            layout=w.Layout(width="90px"),
        )
        self.cancel.on_click(lambda _: bar.cancel(job))
        self.box = w.HBox(
            [self.label, self.progress, self.status, self.cancel],
            layout=w.Layout(align_items="center", width="100%"),
        )
        self.box.add_class("explorer-job")

    def show(self, p: Progress) -> None:
        self.progress.value = p.fraction
        current = layer_label(p.current)
        if p.running and p.state == "running":  # how far the layer running has got
            current = f"{current} {100 * p.running:.0f} %"
        parts = [current, f"{p.done}/{p.total}", format_eta(p.eta_s)]
        if self.job.cancelled:
            parts.append("cancelling…")
        text = " · ".join(x for x in parts if x)
        self.status.value = f"<span style='{_MUTED}'>{html.escape(text)}</span>"


class JobBar:
    """Progress, current layer, ETA and a cancel button for each background job.

    ``track(job, title)`` adds a job; the bar follows it through the job's callbacks. Errors of
    failed layers, and those :meth:`error` is told about, are kept in :attr:`errors` and shown
    under the rows with their layer.

    Attributes
    ----------
    widget : ipywidgets.VBox
    errors : list of str
        ``"title · depth 3: ValueError: ..."`` lines, oldest first.
    finished : list of (title, state, seconds)
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[int, _Row] = {}
        self.errors: list[str] = []
        self.finished: list[tuple[str, str, float]] = []
        self._note = ""
        self._rows_box = w.VBox(layout=w.Layout(width="100%"))
        self._summary = w.HTML()
        self._errors_html = w.HTML()
        self.widget = w.VBox(
            [self._rows_box, self._summary, self._errors_html], layout=w.Layout(width="100%")
        )
        self.widget.add_class("explorer-job-bar")
        self._redraw()

    # -- tracking ---------------------------------------------------------------------------------
    def track(self, job: Job, title: str | None = None) -> Job:
        """Show ``job`` until it ends; return it."""
        title = title or job.name
        with self._lock:
            row = _Row(self, job, title)
            self._rows[job.id] = row
            row.show(job.progress)
            self._redraw()
        job.on_progress(lambda p: self._progress(job, p))
        job.on_done(lambda j: self._done(j, title))
        return job

    def _progress(self, job: Job, p: Progress) -> None:
        with self._lock:
            row = self._rows.get(job.id)
            if row is not None:
                row.show(p)

    def _done(self, job: Job, title: str) -> None:
        p = job.progress
        with self._lock:
            self._rows.pop(job.id, None)
            state = "cancelled" if job.cancelled and p.done < p.total else "done"
            if job.errors:
                state = f"{len(job.errors)} failed"
            self.finished.append((title, state, p.elapsed_s))
            for layer, exc in job.errors.items():
                self.errors.append(
                    f"{title} · {layer_label(layer)}: {type(exc).__name__}: {exc}".strip()
                )
            self._redraw()

    def cancel(self, job: Job | None = None) -> None:
        """Cancel ``job``, or every job shown when ``None``."""
        with self._lock:
            jobs = [job] if job is not None else [r.job for r in self._rows.values()]
            for j in jobs:
                row = self._rows.get(j.id)
                if row is not None:
                    row.cancel.disabled = True
        for j in jobs:
            j.cancel()
        with self._lock:
            for j in jobs:
                row = self._rows.get(j.id)
                if row is not None:
                    row.show(j.progress)

    def error(self, title: str, message: str) -> None:
        """Show an error that happened outside a job's layers (drawing a result, say)."""
        with self._lock:
            self.errors.append(f"{title}: {message}")
            self._redraw()

    def note(self, message: str) -> None:
        """A one-line message under the rows (``""`` clears it)."""
        with self._lock:
            self._note = message
            self._redraw()

    # -- state ------------------------------------------------------------------------------------
    @property
    def running(self) -> list[Job]:
        with self._lock:
            return [r.job for r in self._rows.values()]

    @property
    def titles(self) -> list[str]:
        """Titles of the jobs shown now."""
        with self._lock:
            return [r.title for r in self._rows.values()]

    def _redraw(self) -> None:
        self._rows_box.children = tuple(r.box for r in self._rows.values())
        parts = []
        if not self._rows:
            parts.append("all done" if self.finished else "idle")
        recent = [
            f"{t} ({sec:.1f} s)" if s == "done" else f"{t} {s} ({sec:.1f} s)"
            for t, s, sec in self.finished[-3:]
        ]
        if recent:
            more = len(self.finished) - len(recent)
            parts.append("last: " + ", ".join(recent) + (f" and {more} more" if more else ""))
        if self._note:
            parts.append(self._note)
        self._summary.value = (
            f"<div class='explorer-job-summary' style='{_MUTED}; font-size: 12px'>"
            f"{html.escape(' · '.join(parts))}</div>"
        )
        if self.errors:
            items = "".join(f"<li>{html.escape(e)}</li>" for e in self.errors[-10:])
            self._errors_html.value = (
                f"<ul class='explorer-job-errors' style='{_WARN}; margin: 2px 0; "
                f"padding-left: 18px; font-size: 12px'>{items}</ul>"
            )
        else:
            self._errors_html.value = ""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is shown (``False`` if ``timeout`` seconds passed first)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = self.running
            if not jobs:
                return True
            for job in jobs:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not job.wait(left):
                    return False
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)  # the done callback removes the row just after the job ends

    def __repr__(self) -> str:
        return f"JobBar(running={self.titles}, errors={len(self.errors)})"
