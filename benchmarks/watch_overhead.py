"""How much ex.watch slows a training loop: the digits MLP of the demo, with and without watching.

    python benchmarks/watch_overhead.py [--every 50] [--epochs 6] [--repeat 3] [--drift]
                                        [--background process|thread]

The demo's digits MLP (64-128-128-64-10) trained with SGD, batch 32, for ``--epochs`` epochs
(~260 steps); the watched run records effective rank, RankMe and TwoNN per depth (and with
``--drift`` the subspace drift) of the 360 held-out digits every ``--every`` steps, metrics in
the background: in ex.watch's metrics process (default) or on a thread. Runs alternate (plain,
watched) ``--repeat`` times; prints the median times, the overhead ``(watched - plain) / plain`` and the time the loop spent blocked inside the
watch (the captures). Goal (issue 9): overhead <= 10 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from explorer.demo import data
from explorer.demo.train import mlp
from explorer.watch import watch


def train(x, y, epochs: int, make_watch=None):
    torch.manual_seed(0)
    model = mlp([64, 128, 128, 64, 10])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    w = make_watch(model) if make_watch else None
    step = 0
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            if w is not None:
                w(step)
            step += 1
    seconds = time.perf_counter() - start
    if w is not None:
        w.close()
    return seconds, w, step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--drift", action="store_true")
    p.add_argument("--background", choices=["process", "thread"], default="process")
    args = p.parse_args()
    d = data.digits()
    x = torch.tensor(d.x_train, dtype=torch.float32)
    y = torch.tensor(d.y_train)
    probe = torch.tensor(d.x_test, dtype=torch.float32)
    train(x, y, 1)  # warm-up
    plain, watched, blocking = [], [], []
    for _ in range(args.repeat):
        plain.append(train(x, y, args.epochs)[0])
        secs, w, steps = train(
            x,
            y,
            args.epochs,
            lambda m: watch(
                m, probe, every=args.every, drift=args.drift, background=args.background
            ),
        )
        watched.append(secs)
        blocking.append(w.seconds_blocking)
    a, b = statistics.median(plain), statistics.median(watched)
    records = len(w.frame.step.unique())
    print(
        f"digits MLP, {steps} steps, {records} records (every {args.every}), "
        f"drift={args.drift}, metrics on a {args.background}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"plain   {a:.3f} s (median of {args.repeat})")
    print(f"watched {b:.3f} s; blocked in captures {statistics.median(blocking):.3f} s")
    print(f"overhead {100 * (b - a) / a:+.1f} %  (goal <= 10 %)")


if __name__ == "__main__":
    main()
