"""Dynamic batching: requests that arrive close together run as one model call, on one worker
thread, never on the event loop; while a batch runs, new requests queue up and form the next one."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import time

import numpy as np

from helpers.serving.protocol import ServingError, log

_Pending = collections.namedtuple("_Pending", "images future")  # a request's images, and the future of its outputs


@dataclasses.dataclass
class BatchStats:
    """Counters since the service started."""

    requests: int = 0
    in_flight: int = 0
    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    model_seconds: float = 0.0

    def record(self, requests: int, images: int, seconds: float) -> None:
        """Count one model call on ``images`` images from ``requests`` requests."""
        self.model_seconds, self.batches = self.model_seconds + seconds, self.batches + 1
        self.requests, self.images = self.requests + requests, self.images + images
        self.largest_batch = max(self.largest_batch, images)

    def as_dict(self) -> dict:
        n = self.batches or float("inf")  # no batch: means of 0.0
        means = {"mean_batch_images": round(self.images / n, 3), "mean_requests_per_batch": round(self.requests / n, 3)}
        return dataclasses.asdict(self) | {"model_seconds": round(self.model_seconds, 6)} | means


class Batcher:
    """Collects requests into batches run on one worker thread: with ``enabled``, the oldest waiting request and
    every one arriving within ``max_wait_s`` of it, up to ``max_batch_size`` images (never split); else one each."""

    def __init__(self, predict, max_batch_size: int = 64, max_wait_s: float = 0.005, enabled: bool = True):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_s >= 0")
        self.predict, self.max_batch_size, self.max_wait_s, self.enabled = predict, max_batch_size, max_wait_s, enabled
        self.stats = BatchStats()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._arrived = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(ServingError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Queue one request's images; return its rows of the model's output."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(images, future))
        self._arrived.set()
        self.stats.in_flight += 1
        try:
            return await future
        finally:
            self.stats.in_flight -= 1

    async def _next_batch(self) -> list[_Pending]:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        batch = [self._queue.popleft()]
        size, loop = len(batch[0].images), asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while self.enabled and size < self.max_batch_size:
            if self._queue:
                if size + len(self._queue[0].images) > self.max_batch_size:
                    break
                batch.append(self._queue.popleft())
                size += len(batch[-1].images)
                continue
            if (remaining := deadline - loop.time()) <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [p for p in await self._next_batch() if not p.future.done()]  # without clients that gave up
            if not batch:
                continue
            images = batch[0].images if len(batch) == 1 else np.concatenate([p.images for p in batch])
            start = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, self.predict, images)
            except Exception as exc:  # the model failed: every request of the batch gets the error
                log.error("batch failed", extra={"fields": {"event": "batch_failed", "error": repr(exc)}})
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self.stats.record(len(batch), len(images), time.perf_counter() - start)
            for p, rows in zip(batch, np.split(outputs, np.cumsum([len(p.images) for p in batch])[:-1])):
                if not p.future.done():
                    p.future.set_result(rows)
