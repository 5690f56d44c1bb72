"""Chapter 07's experiments on the service (against clients, batch sizes; side by side), their tables and figures."""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd

from helpers import timing, words
from helpers.serving import loadtest


def sweep(columns: dict, predict_url: str, totals, bodies: list[bytes], levels) -> list[dict]:
    """One row per number of clients: ``columns``, the load generator's figures, and the mean images per model call
    from ``totals()`` (batches and images served so far, e.g. ``/stats``) before and after each run."""
    rows = []
    for clients in levels:
        loadtest.run_load(predict_url, bodies[: 2 * clients], clients)  # connections open, replicas warm
        before = totals()
        result = loadtest.run_load(predict_url, bodies, clients)
        after = totals()
        batches, images = (after[key] - before[key] for key in ("batches", "images"))
        rows.append({**columns, **result.row(), "images/batch": images / batches if batches else float("nan")})
    return rows


def sweep_concurrency(services: dict, images: np.ndarray, levels, n_requests: int, encodings=("json",)):
    """:func:`sweep`'s rows per encoding and service (a label, e.g. "off", mapped to a running ``Service``)."""
    rows = []
    for encoding in encodings:
        bodies = loadtest.request_bodies(images, 1, n_requests, encoding)
        for label, service in services.items():
            totals = functools.partial(loadtest.service_stats, service.url)
            columns = {"encoding": encoding, "batching": label}
            rows += sweep(columns, f"{service.model_url}:predict", totals, bodies, levels)
    return pd.DataFrame(rows)


def side_by_side(
    services: dict, images: np.ndarray, clients: int, n_requests: int, encodings=("json",), repeats: int = 3
):
    """Requests/s and p99 of each service at ``clients`` clients, one row per (repeat, encoding, service): the
    services take turns, so a slow spell of the machine touches them alike (:func:`ratios` are read per turn)."""
    rows = []
    for repeat in range(repeats):
        for encoding in encodings:
            bodies = loadtest.request_bodies(images, 1, n_requests, encoding)
            for label, service in services.items():
                result = loadtest.run_load(f"{service.model_url}:predict", bodies, clients, 1, warmup=clients)
                row = {"repeat": repeat + 1, "encoding": encoding, "service": label}
                measured = {"requests/s": result.requests_per_second, "p99 ms": result.percentile(99)}
                rows.append(row | measured | {"errors": result.errors})
    return pd.DataFrame(rows)


def ratios(runs, numerator: str, denominator: str):
    """Per repeat and encoding, requests/s of ``numerator`` over ``denominator`` (a :func:`side_by_side` table)."""
    table = runs.pivot_table(index=["encoding", "repeat"], columns="service", values="requests/s")
    return (table[numerator] / table[denominator]).rename(f"{numerator} / {denominator}")


def sweep_batch_sizes(service, predict, images, sizes, n_images: int, clients: int, encodings=("json",)):
    """Images per second against images per request: in-process ``predict`` and over HTTP."""

    def in_process(size: int) -> float:
        return timing.throughput(predict, images, size, min_seconds=0.5).items_per_second

    rows = []
    for size in sizes:
        ceiling, row = in_process(size), {"images/request": size}  # and after HTTP: the better of the two
        n_requests = max(2 * clients, -(-n_images // size))
        for encoding in encodings:
            bodies = loadtest.request_bodies(images, size, n_requests, encoding)
            result = loadtest.run_load(f"{service.model_url}:predict", bodies, clients, size, warmup=clients)
            mb = float(np.mean([len(b) for b in bodies])) / 1e6
            values = result.images_per_second, result.percentile(50), result.errors, mb
            names = "HTTP images/s", "HTTP p50 ms", "errors", "request MB"
            row |= {f"{name} ({encoding})": value for name, value in zip(names, values)}
        rows.append(row | {"in-process images/s": max(ceiling, in_process(size))})
    return pd.DataFrame(rows)


def column_zh(column: str) -> str:
    """A column of this module's tables in Chinese; an encoding in parentheses, ``"HTTP images/s (b64)"``, is kept."""
    if m := re.fullmatch(r"(.+) \((\w+)\)", column):
        return f"{column_zh(m[1])}（{m[2]}）"
    return words.label(column, "zh", "serving")


def plot_by_clients(
    table, by: str, lang: str = "en", section: str = "serving", *, prefix=None, panels=None, titles=None
):
    """Requests/s (left) and latency (right: p99 solid, p50 dotted) against clients: a line per value of ``by``
    (named by ``prefix``), a row of panels per value of ``panels`` (titled by ``titles``), in ``lang``."""
    import matplotlib.pyplot as plt

    w = words.of(lang, section)
    keys = list(dict.fromkeys(table[panels])) if panels else [None]
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 3.4 * len(keys) if panels else 3.6), squeeze=False)
    for (left, right), key in zip(axes, keys):
        part = table if key is None else table[table[panels] == key]
        for i, (value, rows) in enumerate(part.groupby(by, sort=False)):
            name, color = words.label(value, lang, section), f"C{i}"
            name = w(prefix).format(name) if prefix else name
            left.plot(rows["clients"], rows["requests/s"], marker="o", color=color, label=name)
            right.plot(rows["clients"], rows["p99 ms"], marker="o", color=color, label=name)
            right.plot(rows["clients"], rows["p50 ms"], marker=".", linestyle=":", color=color)
        for ax, ylabel in ((left, w("requests per second")), (right, w("latency (ms): p99 solid, p50 dotted"))):
            ax.set_xscale("log", base=2)
            ax.set(xlabel=w("concurrent clients"), ylabel=ylabel)
            if key is not None:
                ax.set_title((titles or {}).get(key, key), fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8 if panels else None)
        right.set_yscale("log")
    fig.tight_layout()
    return fig


def plot_batch_sizes(table, lang: str = "en"):
    """Images per second against images per request: HTTP service and in-process ceiling, labelled in ``lang``."""
    import matplotlib.pyplot as plt

    w = words.of(lang, "serving")
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    curves = {"in-process images/s": ("--", w("in-process"))}
    curves |= {f"HTTP images/s ({e})": ("-", w("HTTP, {}").format(e)) for e in loadtest.ENCODINGS}
    for column, (style, label) in curves.items():
        if column in table:
            ax.plot(table["images/request"], table[column], marker="o", linestyle=style, label=label)
    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel=w("images per request (client batch size)"), ylabel=w("images per second"))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
