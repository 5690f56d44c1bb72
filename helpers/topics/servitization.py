"""One computation, split into tasks, run three ways: serially, on a pool of local processes, and
as requests to local worker services (HTTP servers on 127.0.0.1 behind a small dispatcher)."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np

from helpers import processes, timing, words

MAX_BODY_BYTES = 1024  # a task is two integers; anything longer is refused
MAX_TASK_ITEMS = 10**9
DEFAULT_LIFETIME = 3600.0  # a worker service exits after this many seconds whatever happens


class WorkerError(RuntimeError):
    """A worker service failed, refused, or did not answer in time: ``url`` is the worker, ``chunk``
    the task it was given, ``reason`` what went wrong (as the operating system or HTTP said it)."""

    def __init__(self, message: str, url: str | None = None, chunk=None, reason: str = ""):
        super().__init__(message)
        self.url, self.chunk, self.reason = url, chunk, reason


def collatz_steps(n: int) -> int:
    """Steps of the Collatz map (n -> n/2 if even, 3n+1 if odd) until n reaches 1."""
    if n < 1:
        raise ValueError(f"Collatz steps are defined for positive integers, got {n}")
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def task(chunk: tuple[int, int]) -> int:
    """The parallel unit of work: total Collatz steps of the integers ``lo <= n < hi``."""
    return sum(collatz_steps(n) for n in range(*chunk))


def serial_phase(n: int) -> int:
    """A chain of ``n`` Collatz runs, each starting where the previous result points: not splittable."""
    x = 27
    for _ in range(n):
        x = 1 + (x * 7919 + collatz_steps(x)) % 1_000_003
    return x


def split(n_items: int, n_tasks: int) -> list[tuple[int, int]]:
    """Ranges ``[lo, hi)`` covering ``1..n_items`` in ``n_tasks`` parts whose sizes differ by at most one."""
    if n_items < 1 or n_tasks < 1:
        raise ValueError(f"n_items and n_tasks must be positive, got {n_items} and {n_tasks}")
    if n_tasks > n_items:
        raise ValueError(f"cannot split {n_items} items into {n_tasks} tasks")
    base, extra = divmod(n_items, n_tasks)
    bounds = [1 + i * base + min(i, extra) for i in range(n_tasks + 1)]
    return list(zip(bounds, bounds[1:]))


def _check_workers(workers: int) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"the number of workers must be a positive integer, got {workers!r}")


def run_serial(chunks) -> list[int]:
    """Every task, one after the other, in this process."""
    return [task(c) for c in chunks]


@contextlib.contextmanager
def process_pool(workers: int):
    """A pool of ``workers`` fresh processes ("spawn": safe after TensorFlow has started threads)."""
    _check_workers(workers)
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def run_pool(chunks, pool) -> list[int]:
    """Every task on the pool, handed out one at a time as processes become free."""
    return pool.map(task, list(chunks), chunksize=1)


@dataclass
class Job:
    """What one run of the whole computation produced, and how long each phase took."""

    serial_result: int
    parallel_results: list[int]
    serial_seconds: float
    parallel_seconds: float

    @property
    def seconds(self) -> float:
        return self.serial_seconds + self.parallel_seconds

    @property
    def result(self) -> tuple[int, int]:
        return self.serial_result, sum(self.parallel_results)


def run_job(serial_items: int, chunks, runner) -> Job:
    """The serial phase here, then the chunks through ``runner`` (a function of the chunk list)."""
    start = time.perf_counter()
    serial_result = serial_phase(serial_items)
    middle = time.perf_counter()
    results = runner(chunks)
    end = time.perf_counter()
    return Job(serial_result, list(results), middle - start, end - middle)


class _TaskHandler(BaseHTTPRequestHandler):
    server_version = "maas-worker/1"
    timeout = 30  # seconds a connection may stall before the server drops it

    def log_message(self, format, *args):  # noqa: A002 - keep the service quiet
        pass

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path != "/health":
            return self._reply(404, {"error": f"no such path {self.path}"})
        self._reply(200, {"status": "ok", "pid": os.getpid()})

    def do_POST(self):  # noqa: N802
        if self.path != "/task":
            return self._reply(404, {"error": f"no such path {self.path}"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return self._reply(400, {"error": "bad Content-Length"})
        if not 0 < length <= MAX_BODY_BYTES:
            return self._reply(413, {"error": f"a task body must be 1..{MAX_BODY_BYTES} bytes"})
        try:
            request = json.loads(self.rfile.read(length))
            lo, hi = request["lo"], request["hi"]
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo < hi and hi - lo <= MAX_TASK_ITEMS):
                raise ValueError("need integers 1 <= lo < hi")
        except (ValueError, KeyError, TypeError) as exc:
            return self._reply(400, {"error": f"bad task: {exc}"})
        start = time.perf_counter()
        result = task((lo, hi))
        self._reply(200, {"result": result, "seconds": time.perf_counter() - start})


def serve(lifetime: float = DEFAULT_LIFETIME) -> None:
    """Run one worker service on a free port of 127.0.0.1; print ``{"event": "listening", "port": n}``."""
    server = HTTPServer(("127.0.0.1", 0), _TaskHandler)
    processes.exit_with_parent(lambda: threading.Thread(target=server.shutdown).start(), lifetime=lifetime)
    print(json.dumps({"event": "listening", "port": server.server_address[1], "pid": os.getpid()}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def health(url: str, timeout: float = 5.0) -> dict:
    """``GET /health`` of one service; raises :class:`WorkerError` if it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise WorkerError(f"worker {url} is not healthy: {exc}") from None


@contextlib.contextmanager
def worker_services(workers: int, startup_timeout: float = 30.0, lifetime: float = DEFAULT_LIFETIME):
    """Start ``workers`` worker services on free local ports (``processes.Child`` with a ``url``); always stop them."""
    _check_workers(workers)
    command = processes.module("helpers.topics.servitization", "serve", "--lifetime", str(lifetime))
    services: list[processes.Child] = []
    try:
        for _ in range(workers):
            services.append(processes.Child(command, stream="stdout", name="worker service"))
        for service in services:
            try:
                listening = service.wait_for(lambda e: e.get("event") == "listening", startup_timeout)
            except processes.ChildError as exc:
                raise WorkerError(str(exc)) from None
            service.url = f"http://127.0.0.1:{listening['port']}"
            health(service.url)
        yield services
    finally:
        for service in services:
            service.stop(timeout=5)


def post_task(url: str, chunk: tuple[int, int], timeout: float) -> int:
    """Send one task to one service and return its result; :class:`WorkerError` on any failure."""
    body = json.dumps({"lo": int(chunk[0]), "hi": int(chunk[1])}).encode()
    request = urllib.request.Request(f"{url}/task", body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(json.loads(response.read())["result"])
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.read().decode(errors='replace')[:200]}"
        raise WorkerError(f"worker {url} refused task {chunk}: {reason}", url, chunk, reason) from None
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        raise WorkerError(f"worker {url} failed on task {chunk}: {exc}", url, chunk, str(exc)) from None


def dispatch(urls, chunks, timeout: float = 60.0) -> list[int]:
    """Send the chunks to the services concurrently, one request at a time per service; the first
    :class:`WorkerError` stops the hand-out and is raised once the requests under way have ended."""
    free, pending = list(urls), list(enumerate(chunks))
    if not free:
        raise ValueError("dispatch needs at least one worker URL")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    results: list[int | None] = [None] * len(pending)
    running: dict = {}  # future -> (the chunk's index, the service working on it)
    with ThreadPoolExecutor(len(free)) as pool:  # leaving the block waits for every request (each has a timeout)
        while pending or running:
            while free and pending:
                (i, chunk), url = pending.pop(0), free.pop(0)
                running[pool.submit(post_task, url, chunk, timeout)] = (i, url)
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                i, url = running.pop(future)
                results[i] = future.result()
                free.append(url)
    return results  # type: ignore[return-value]


def round_trip_seconds(url: str, n: int = 20, timeout: float = 10.0) -> float:
    """Mean seconds for a request whose task is one item: the cost of asking, not of working."""
    start = time.perf_counter()
    for _ in range(n):
        post_task(url, (1, 2), timeout)
    return (time.perf_counter() - start) / n


def pool_round_trip_seconds(pool, n: int = 50) -> float:
    """Mean seconds for a pool to take and return a task of one item (after one untimed warm-up)."""
    run_pool([(1, 2)], pool)
    start = time.perf_counter()
    run_pool([(1, 2)] * n, pool)
    return (time.perf_counter() - start) / n


def amdahl(workers, serial_fraction: float):
    """Amdahl's law: the speed-up with ``workers`` when ``serial_fraction`` of the time cannot be split."""
    if not 0 <= serial_fraction <= 1:
        raise ValueError(f"serial_fraction must be between 0 and 1, got {serial_fraction}")
    k = np.asarray(workers, dtype=float)
    if np.any(k < 1):
        raise ValueError("the number of workers must be at least 1")
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / k)


def batch_throughput(predict, images, sizes, total: int) -> list[dict]:
    """Time ``predict(batch)`` at each batch size on about ``total`` items; one record per size."""
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    timed = {size: timing.throughput(predict, images, size, calls=max(2, total // size)) for size in sizes}
    return [
        {"batch size": n, "items per second": t.items_per_second, "seconds per batch": t.seconds_per_call}
        for n, t in timed.items()
    ]


def plot_speedup(table, serial_fraction: float, cores: int, lang: str = "en"):
    """Measured speed-up of the pool and the services against workers, with Amdahl's law and the ideal."""
    from helpers.plots import plt  # pyplot in the book's figure style

    w = words.of(lang, "servitization")
    workers = np.asarray(table["workers"])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(workers, workers, ":", color="grey", label=w("ideal: speed-up = workers"))
    fine = np.linspace(1, workers.max(), 100)
    amdahl_label = w("Amdahl's law, measured serial fraction {fraction:.1%}").format(fraction=serial_fraction)
    ax.plot(fine, amdahl(fine, serial_fraction), "-", color="k", lw=1, label=amdahl_label)
    ax.plot(workers, table["pool speed-up"], "-o", color="C0", label=w("process pool"))
    ax.plot(workers, table["services speed-up"], "-s", color="C1", label=w("HTTP worker services"))
    ax.axvline(cores, color="C3", lw=1, ls="--", label=w("CPU cores available: {cores}").format(cores=cores))
    ax.set(xlabel=w("workers"), ylabel=w("speed-up over one process"), xticks=workers)
    top = max(workers.max(), float(np.nanmax(table[["pool speed-up", "services speed-up"]].to_numpy())))
    ax.set_ylim(0, top * 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_batching(records, lang: str = "en"):
    """Throughput and time per batch against batch size (on a log axis), labelled in ``lang``."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from helpers.plots import plt  # pyplot in the book's figure style

    w = words.of(lang, "servitization")
    sizes = [r["batch size"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(sizes, [r["items per second"] for r in records], "-o")
    axes[0].set(ylabel=w("images per second"), ylim=(0, None))
    axes[1].plot(sizes, [1000 * r["seconds per batch"] for r in records], "-o", color="C1")
    axes[1].set(ylabel=w("milliseconds per batch (latency)"), yscale="log")
    axes[1].yaxis.set_major_formatter(ScalarFormatter())
    axes[1].yaxis.set_minor_formatter(NullFormatter())
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel(w("batch size"))
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A worker service for the servitization chapter.")
    parser.add_argument("command", choices=["serve"], help="serve tasks on a free port of 127.0.0.1 (prints its port)")
    parser.add_argument("--lifetime", type=float, default=DEFAULT_LIFETIME, help="stop after this many seconds")
    serve(parser.parse_args(argv).lifetime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
