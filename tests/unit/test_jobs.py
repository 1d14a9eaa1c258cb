"""The job engine: streaming, progress, cancel, errors with their layer, concurrency, cache, Dask."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from explorer.activations import Activations
from explorer.cache import Cache, key
from explorer.jobs import JobEngine, JobError, layer_progress
from explorer.projection import project


@pytest.fixture
def engine(tmp_path):
    eng = JobEngine(cache=Cache(tmp_path / "results"), max_workers=2)
    yield eng
    eng.shutdown()


def test_parts_stream_in_layer_order_with_progress(engine):
    parts, progress = [], []
    job = engine.submit(
        lambda d: d * d,
        range(6),
        on_part=lambda d, v: parts.append((d, v)),
        on_progress=progress.append,
    )
    streamed = list(job.parts(timeout=10))
    assert job.result(timeout=10) == {d: d * d for d in range(6)}
    assert streamed == parts == [(d, d * d) for d in range(6)]
    assert job.state == "finished" and job.progress.fraction == 1.0
    done = [p.done for p in progress]
    assert done == sorted(done) and progress[-1].done == 6 and progress[-1].state == "finished"
    assert all(p.eta_s is not None for p in progress if p.done)
    late = []
    job.on_part(lambda d, v: late.append(d))  # a late subscriber gets every finished part
    assert late == list(range(6))


def test_progress_moves_within_a_long_layer(engine):
    reached, release = threading.Event(), threading.Event()
    events = []

    def long_layer(d):
        if d == 1:
            layer_progress(0.5)  # half of this layer's work is done
            reached.set()
            release.wait(10)
        return d

    job = engine.submit(long_layer, range(4), on_progress=events.append)
    assert reached.wait(10)
    deadline = time.monotonic() + 10
    while job.progress.running != 0.5:  # the first layer finished, the second is half done
        assert time.monotonic() < deadline
        time.sleep(0.005)
    p = job.progress
    assert (p.done, p.current, p.fraction) == (1, 1, 1.5 / 4)
    # the ETA counts the half layer: elapsed x (4 - 1.5) / 1.5
    assert p.eta_s == pytest.approx(p.elapsed_s * 2.5 / 1.5, rel=0.05)
    assert any(e.running == 0.5 for e in events)  # subscribers saw the layer move
    release.set()
    assert job.result(timeout=10) == {d: d for d in range(4)}
    assert job.progress.running == 0.0 and job.progress.fraction == 1.0


def test_layer_progress_outside_a_job_does_nothing():
    layer_progress(0.3)  # no job runs in this thread: nothing to report to, no error


def test_cancel_stops_within_one_layer(engine):
    started, release = [], threading.Event()

    def slow(d):
        started.append(d)
        if d == 3:
            release.wait(10)
        else:
            time.sleep(0.02)
        return d

    job = engine.submit(slow, range(50))
    deadline = time.monotonic() + 10
    while 3 not in started:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    job.cancel()
    release.set()
    assert job.wait(10)
    assert job.state == "cancelled" and job.cancelled
    assert started == [0, 1, 2, 3]  # the running layer finished, no further layer began
    assert sorted(job.results) == [0, 1, 2, 3]
    assert job.result() == {d: d for d in range(4)}


def test_errors_name_the_layer_and_the_other_layers_complete(engine):
    def fn(d):
        if d == 2:
            raise ValueError("singular matrix")
        return d

    job = engine.submit(fn, [0, 1, 2, 3, 4], name="spectra")
    with pytest.raises(JobError, match=r"blocks\.2: ValueError: singular matrix") as info:
        job.result(timeout=10)
    assert info.value.results == {0: 0, 1: 1, 3: 3, 4: 4}
    assert list(info.value.errors) == [2] and job.state == "finished"
    assert [d for d, _ in job.parts()] == [0, 1, 3, 4]


def test_a_failing_callback_warns_and_the_job_goes_on(engine):
    def bad(d, v):
        raise RuntimeError("widget gone")

    with pytest.warns(UserWarning, match="widget gone"):
        job = engine.submit(lambda d: d, range(3), on_part=bad)
        assert job.result(timeout=10) == {0: 0, 1: 1, 2: 2}


def test_100_concurrent_submissions_lose_and_duplicate_nothing(engine):
    calls = []
    lock = threading.Lock()

    def make(i):
        def fn(d):
            with lock:
                calls.append((i, d))
            return (i, d)

        return fn

    streamed = {i: [] for i in range(100)}
    jobs = {}

    def submit(i):
        jobs[i] = engine.submit(
            make(i), range(5), parallel=1 + i % 3, on_part=lambda d, v, i=i: streamed[i].append(v)
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(100)))
    for i, job in jobs.items():
        assert job.result(timeout=30) == {d: (i, d) for d in range(5)}
        assert sorted(streamed[i]) == [(i, d) for d in range(5)]
    assert sorted(calls) == [(i, d) for i in range(100) for d in range(5)]
    assert len({j.id for j in jobs.values()}) == 100


def test_cache_recomputes_only_what_changed(engine):
    calls = []

    def fn(d, scale):
        calls.append(d)
        return {"x": np.full(3, d * scale, dtype=np.float32)}

    def run(scales):
        return engine.submit(
            lambda d: fn(d, scales[d]), range(4), key=lambda d: key("test", d, scales[d])
        )

    first = run([1, 1, 1, 1]).result(timeout=10)
    assert calls == [0, 1, 2, 3]
    calls.clear()
    again = run([1, 1, 1, 1])
    assert again.result(timeout=10).keys() == first.keys() and calls == []
    assert again.cached == {0, 1, 2, 3}
    np.testing.assert_array_equal(again.results[3]["x"], first[3]["x"])
    changed = run([1, 1, 2, 1])
    assert changed.result(timeout=10)[2]["x"][0] == 4 and calls == [2]
    assert changed.cached == {0, 1, 3}
    # a damaged entry is recomputed, never trusted
    calls.clear()
    path = engine.cache.path(key("test", 1, 1))
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    assert run([1, 1, 1, 1]).result(timeout=10)[1]["x"][0] == 1 and calls == [1]


def test_a_cached_job_must_return_arrays(engine):
    job = engine.submit(lambda d: "text", [0], key=lambda d: key("bad", d))
    with pytest.raises(JobError, match="mapping of names to arrays"):
        job.result(timeout=10)


def test_bad_submissions(engine):
    with pytest.raises(ValueError, match="distinct"):
        engine.submit(lambda d: d, [1, 1])
    with pytest.raises(ValueError, match="parallel"):
        engine.submit(lambda d: d, [1], parallel=0)
    job = engine.submit(lambda d: d, [])
    assert job.result(timeout=1) == {} and job.state == "finished"


def test_a_shut_down_executor_fails_each_layer_with_a_message():
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    job = JobEngine(pool, cache=False).submit(lambda d: d, [0, 1])
    with pytest.raises(JobError, match="blocks.0: RuntimeError"):
        job.result(timeout=5)


def test_a_background_projection_leaves_the_caller_free(engine, monkeypatch):
    """The notebook contract at the Python level: the cell that starts a long projection returns
    at once, and the next cell can read its progress and the depths done so far while the rest
    are still running (each depth here waits until the test lets it finish)."""
    import explorer.projection

    step = threading.Semaphore(0)
    real = explorer.projection._layout

    def slow_layout(*args):
        assert step.acquire(timeout=10), "the test never let this depth finish"
        return real(*args)

    monkeypatch.setattr(explorer.projection, "_layout", slow_layout)
    g = torch.Generator().manual_seed(0)
    acts = Activations({d: torch.randn(100, 8, generator=g) for d in range(4)})
    try:
        start = time.perf_counter()
        p = project(acts, "pca", engine=engine, background=True, cache=False)
        assert time.perf_counter() - start < 0.5
        for d in acts.depths:
            # "another cell": the job is running, its progress and partial layouts readable
            _until(lambda d=d: p.job.progress.current == d, f"depth {d} never started")
            progress = p.job.progress
            assert p.job.state == "running" and progress.done == d
            assert sorted(p.coords) == list(range(d))
            step.release()
            _until(lambda d=d: d in p.coords, f"depth {d} never arrived")
        assert p.wait(5).job.state == "finished" and p.job.progress.fraction == 1.0
        assert sorted(p.coords) == acts.depths
    finally:
        for _ in acts.depths:
            step.release()


def _until(condition, message, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.002)


def test_dask_executor(tmp_path):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        engine = JobEngine(client.get_executor(), cache=Cache(tmp_path))
        parts = []
        job = engine.submit(
            lambda d: {"sq": np.array([d * d])},
            range(8),
            key=lambda d: key("dask", d),
            parallel=3,
            on_part=lambda d, v: parts.append(d),
        )
        result = job.result(timeout=60)
        assert {d: int(v["sq"][0]) for d, v in result.items()} == {d: d * d for d in range(8)}
        assert sorted(parts) == list(range(8))
        again = engine.submit(lambda d: 1 / 0, range(8), key=lambda d: key("dask", d))
        assert len(again.result(timeout=60)) == 8 and again.cached == set(range(8))
        failing = engine.submit(lambda d: 1 / d, [1, 0, 2])
        with pytest.raises(JobError, match=r"blocks\.0: ZeroDivisionError"):
            failing.result(timeout=60)
        # a real analysis: the same numbers as on the thread pool (its layout must pickle)
        g = torch.Generator().manual_seed(0)
        acts = Activations({d: torch.randn(200, 16, generator=g) for d in range(4)})
        threads = JobEngine(cache=False, max_workers=2)
        try:
            ours = project(acts, "pca", engine=threads)
        finally:
            threads.shutdown()
        theirs = project(acts, "pca", engine=JobEngine(client.get_executor(), cache=False))
        for d in acts.depths:
            np.testing.assert_array_equal(theirs.coords[d], ours.coords[d])
    finally:
        client.close()
        cluster.close()
