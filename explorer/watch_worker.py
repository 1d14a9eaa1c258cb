"""A separate Python process that computes :func:`explorer.watch`'s metrics.

Training loops with small steps are bound by the Python interpreter, and the metric code
(hundreds of small tensor operations per record) would hold the same interpreter lock from a
thread: measured on the digits demo, a metric thread slowed training by about as much as the
metrics took to compute. In a process of its own, limited to one thread, the work runs beside the
loop on another core. Records go to the process on its stdin and rows come back on its stdout, as
pickles between two processes of this library (nothing from outside is unpickled).

:class:`ProcessWorker` is the training side; ``python -m explorer.watch_worker`` the other.
If the process cannot start or dies, the records it had not answered are handed back
(``on_failure``) so that the caller can compute them itself: nothing is lost.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["ProcessWorker"]

Job = tuple  # (step, states, weights)

# the lowest CPU priority before anything is imported: when the training loop's threads want a
# core, they get it at once (an OpenMP team that waits for a descheduled thread stalls every step)
_CHILD = "import os; os.nice(19); from explorer.watch_worker import main; main()"


class ProcessWorker:
    """Send records to a metrics process; ``on_rows(rows)`` is called as each one is answered."""

    def __init__(
        self,
        metrics: Sequence[str],
        drift_k: int,
        on_rows: Callable[[list[dict]], None],
        on_failure: Callable[[str, list[Job]], None],
    ):
        self._on_rows, self._on_failure = on_rows, on_failure
        self._cond = threading.Condition()
        self._outstanding: dict[int, Job] = {}
        self._next = 0
        self.failed: str | None = None
        root = str(Path(__file__).resolve().parent.parent)  # where `explorer` is importable from
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        options = json.dumps({"metrics": list(metrics), "drift_k": int(drift_k)})
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, options],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="explorer-watch-send", daemon=True)
        self._reader = threading.Thread(target=self._read, name="explorer-watch-recv", daemon=True)
        self._writer.start()
        self._reader.start()

    def submit(self, step: int, states, weights) -> bool:
        """Queue one record (``states``: depth -> array; ``weights``: address -> (depth, array)).

        False when the process has failed: the caller computes the record itself.
        """
        with self._cond:
            if self.failed is not None:
                return False
            seq = self._next
            self._next += 1
            self._outstanding[seq] = (step, states, weights)
        self._jobs.put(seq)
        return True

    def _write(self) -> None:
        stdin = self._proc.stdin
        while (seq := self._jobs.get()) is not None:
            with self._cond:
                job = self._outstanding.get(seq)
            if job is None:  # handed back after a failure
                continue
            try:
                pickle.dump((seq, *job), stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
            except (OSError, ValueError):  # the process is gone; the reader reports it
                break
        try:
            stdin.close()
        except OSError:
            pass

    def _read(self) -> None:
        stdout = self._proc.stdout
        while True:
            try:
                seq, kind, payload = pickle.load(stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            if kind != "rows":
                self._fail(f"the metrics process failed:\n{payload}")
                return
            self._on_rows(payload)
            with self._cond:
                self._outstanding.pop(seq, None)
                self._cond.notify_all()
        code = self._proc.wait()
        with self._cond:
            lost = bool(self._outstanding)
        if lost or code not in (0, None):
            self._fail(f"the metrics process ended (exit code {code})")

    def _fail(self, reason: str) -> None:
        with self._cond:
            if self.failed is not None:
                return
            self.failed = reason
            jobs = [self._outstanding[s] for s in sorted(self._outstanding)]
        self._jobs.put(None)
        if self._proc.poll() is None:
            self._proc.kill()
        self._on_failure(reason, jobs)  # before wait() can return: the caller takes them over
        with self._cond:
            self._outstanding.clear()
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every record sent so far is answered (or handed back); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._outstanding, timeout)

    def stop(self) -> None:
        """Tell the process to end after what it has (it exits when its stdin closes)."""
        self._jobs.put(None)

    def close(self, timeout: float = 30.0) -> None:
        """Let the process finish what it has, then end it."""
        self.wait(timeout)
        self.stop()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._reader.join(timeout)


def main() -> None:
    """The metrics process: ``(seq, step, states, weights)`` in, ``(seq, kind, payload)`` out."""
    import torch

    from explorer.watch_metrics import Recorder

    options = json.loads(sys.argv[1])
    torch.set_num_threads(1)  # one core: the training loop keeps the others
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the reply stream
    recorder = Recorder(options["metrics"], options["drift_k"])
    stdin = sys.stdin.buffer
    while True:
        try:
            seq, step, states, weights = pickle.load(stdin)
        except EOFError:
            break
        try:
            reply = (seq, "rows", recorder.rows(step, states, weights))
        except Exception:  # noqa: BLE001 - reported to the training side, which recomputes
            reply = (seq, "error", traceback.format_exc())
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    main()
