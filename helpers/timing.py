"""Measuring speed, one way for the whole course: throughput, batch sizes, median latency, best of repeats."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Throughput:
    """What :func:`throughput` measured at one batch size."""

    items_per_second: float
    seconds_per_call: float  # the latency every item of a batch waits for


def throughput(fn: Callable, items, batch_size: int, *, calls: int | None = None, min_seconds: float | None = None):
    """``fn(batch)`` on slices of ``items`` after a warm-up: ``calls`` calls, or 10,000 at most in ``min_seconds``."""
    n = len(items)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch size {batch_size} must be between 1 and the {n} items available")
    starts = [(i * batch_size) % (n - batch_size + 1) for i in range(min(calls or 10_000, 64))]
    batches = [items[s : s + batch_size] for s in starts]
    fn(batches[0])  # warm-up: tracing and first-call costs are not throughput
    done, start = 0, time.perf_counter()
    while True:
        fn(batches[done % len(batches)])
        done += 1
        elapsed = time.perf_counter() - start
        if done >= (calls or 10_000) or (min_seconds is not None and elapsed >= min_seconds):
            return Throughput(done * batch_size / elapsed, elapsed / done)


def batch_sizes(largest: int) -> list[int]:
    """Powers of two from 1 up to ``largest`` (and ``largest`` itself if it is not one)."""
    if largest < 1:
        raise ValueError(f"the largest batch must be at least 1, got {largest}")
    sizes = [2**i for i in range(largest.bit_length())]
    return sizes if sizes[-1] == largest else sizes + [largest]


def median_ms(fn: Callable, arg, seconds: float = 1.0) -> float:
    """Median wall time of ``fn(arg)`` in milliseconds, over ``seconds`` of calls (at least 5, after a warm-up)."""
    fn(arg)
    times, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def best_of(repeats: int, run: Callable):
    """Run ``run()`` ``repeats`` times; return the result that took the shortest ``result.seconds``."""
    return min((run() for _ in range(repeats)), key=lambda result: result.seconds)
