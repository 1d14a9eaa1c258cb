"""Jobs: nested submissions, failures, cancel and interpreter exit never hang or lose results."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.errors import ArgumentError
from explorer.jobs import JobEngine, JobError
from tests.reliability.catalogue import assert_clear_error, bad_input, run_isolated


@bad_input(
    "jobs",
    "a job whose layers call ex.project on the same engine, parallel = the pool size",
    "finishes (was a nested pool deadlock): the nested job's layers run inline on the worker",
)
def test_nested_project_with_full_pool_finishes():
    engine = JobEngine(cache=False, max_workers=2)
    torch.manual_seed(0)
    acts = Activations({d: torch.randn(30, 6) for d in range(3)})

    def layer(i):
        return ex.project(acts, "pca", engine=engine).array().shape

    job = engine.submit(layer, list(range(4)), parallel=2)
    assert job.result(timeout=60) == {i: (3, 30, 2) for i in range(4)}
    engine.shutdown()


@bad_input(
    "jobs",
    "a layer that submits a job to the same engine and waits for it, from every worker",
    "finishes; the nested job runs inline (no deadlock)",
)
def test_nested_submit_and_wait_finishes():
    engine = JobEngine(cache=False, max_workers=1)
    job = engine.submit(lambda i: engine.submit(lambda j: i * 10 + j, [0, 1]).result(), [1, 2])
    assert job.result(timeout=30) == {1: {0: 10, 1: 11}, 2: {0: 20, 1: 21}}
    engine.shutdown()


@bad_input(
    "jobs",
    "the interpreter exits while a layer is still running (a kernel being shut down)",
    "the process exits at once (the pool's threads are daemons), nothing waits for the layer",
)
def test_exit_with_a_running_layer():
    code = """
    import time
    from explorer.jobs import default_engine
    job = default_engine().submit(lambda i: time.sleep(600), [0])
    time.sleep(0.2)
    print(job.state)
    """
    start = time.monotonic()
    done = run_isolated(code, timeout=90)
    assert done.returncode == 0 and done.stdout.split() == ["running"], done.stderr[-1000:]
    assert time.monotonic() - start < 80


@bad_input(
    "jobs",
    "one layer of a job raises",
    "JobError naming the layer and the error; every other layer's result is kept",
)
def test_failed_layer_keeps_the_others():
    engine = JobEngine(cache=False, max_workers=2)

    def layer(i):
        if i == 2:
            raise RuntimeError("boom at 2")
        return i * i

    job = engine.submit(layer, range(5), parallel=2)
    with pytest.raises(JobError) as excinfo:
        job.result(timeout=30)
    assert_clear_error(excinfo, "blocks.2", "boom at 2", "4 completed")
    assert excinfo.value.results == {0: 0, 1: 1, 3: 9, 4: 16}
    engine.shutdown()


@bad_input(
    "jobs",
    "cancel while a layer runs",
    "no further layer starts, the running one finishes and is kept, state 'cancelled'",
)
def test_cancel_keeps_finished_layers():
    engine = JobEngine(cache=False, max_workers=1)
    started = threading.Event()
    release = threading.Event()

    def layer(i):
        started.set()
        release.wait(10)
        return i

    job = engine.submit(layer, range(5))
    assert started.wait(10)
    job.cancel()
    release.set()
    assert job.wait(10)
    assert job.state == "cancelled" and job.result() == {0: 0}
    engine.shutdown()


@bad_input(
    "jobs",
    "a progress or part callback that raises",
    "a warning naming the callback; the job completes",
)
def test_callback_error_is_a_warning():
    engine = JobEngine(cache=False, max_workers=1)

    def bad(*_):
        raise ValueError("bad callback")

    with pytest.warns(UserWarning, match="bad callback"):
        job = engine.submit(lambda i: i, [0, 1], on_part=bad)
        assert job.result(timeout=10) == {0: 0, 1: 1}
    engine.shutdown()


@bad_input(
    "jobs",
    "parallel=0 / max_workers=0",
    "ArgumentError naming the argument and its valid range",
)
@pytest.mark.parametrize("which", ["parallel", "max_workers"])
def test_bad_parallel(which):
    with pytest.raises(ArgumentError) as excinfo:
        if which == "parallel":
            JobEngine(cache=False).submit(lambda i: i, [0], parallel=0)
        else:
            JobEngine(cache=False, max_workers=0)
    assert_clear_error(excinfo, which, ">= 1", "0")


@bad_input(
    "jobs",
    "submit to an engine that was shut down",
    "JobError naming each layer ('after shutdown'), no hang",
)
def test_submit_after_shutdown():
    engine = JobEngine(cache=False, max_workers=1)
    engine.shutdown()
    with pytest.raises(JobError) as excinfo:
        engine.submit(lambda i: i, [0, 1]).result(timeout=10)
    assert_clear_error(excinfo, "blocks.0", "blocks.1", "shutdown")
