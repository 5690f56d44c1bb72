"""The client side of a model service: encode requests, send them from many concurrent clients,
and summarise what came back (latency percentiles, throughput, errors).

:func:`run_load` keeps ``concurrency`` clients busy, each sending its next request as soon as the
last one is answered (a closed loop, like ``wrk`` or ``hey``), over keep-alive HTTP/1.1
connections (:class:`Connection`, a minimal client). The bodies are encoded before the clock starts,
so the measurement is the service's, not the client's JSON encoder.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import time
import urllib.parse
from dataclasses import dataclass

import numpy as np

from helpers import timing

ENCODINGS = ("json", "b64")


def encode_request(images: np.ndarray, encoding: str = "json") -> bytes:
    """A TensorFlow Serving ``:predict`` body for uint8 images (N, 32, 32, 3).

    ``json``: each image a nested list of integers (the plain row format, 3 to 4 bytes of JSON
    per pixel value); ``b64``: each image ``{"b64": base64 of its raw bytes}``, 4 characters
    per 3 bytes.
    """
    images = np.asarray(images, dtype=np.uint8)
    if encoding == "json":
        instances = images.tolist()
    elif encoding == "b64":
        instances = [{"b64": base64.b64encode(image.tobytes()).decode("ascii")} for image in images]
    else:
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
    return json.dumps({"instances": instances}, separators=(",", ":")).encode()


def request_bodies(images: np.ndarray, images_per_request: int, n_requests: int, encoding: str = "json") -> list[bytes]:
    """``n_requests`` bodies of ``images_per_request`` consecutive images each, cycling through ``images``."""
    n = len(images)
    bodies = []
    for i in range(n_requests):
        idx = (np.arange(images_per_request) + i * images_per_request) % n
        bodies.append(encode_request(images[idx], encoding))
    return bodies


@dataclass
class LoadResult:
    """What one load run measured."""

    concurrency: int
    images_per_request: int
    seconds: float
    latencies_ms: np.ndarray
    errors: int
    first_error: str = ""

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def images_per_second(self) -> float:
        return self.requests * self.images_per_request / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    def row(self) -> dict:
        return {
            "clients": self.concurrency,
            "images/request": self.images_per_request,
            "requests": self.requests,
            "errors": self.errors,
            "requests/s": self.requests_per_second,
            "images/s": self.images_per_second,
            "p50 ms": self.percentile(50),
            "p95 ms": self.percentile(95),
            "p99 ms": self.percentile(99),
        }


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs pre-encoded bodies (a minimal client, like ``wrk``).

    It does what a load generator needs and no more, so that on a small machine it takes little
    CPU from the service it measures: one request at a time, ``Content-Length`` bodies only.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        try:
            header = await self.reader.readuntil(b"\r\n\r\n")
            status = int(header.split(b" ", 2)[1])
            length, close = 0, False
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            payload = await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def run_in_thread(coroutine, name: str):
    """Run ``coroutine`` on a fresh event loop (uvloop's if installed) in a thread of its own, so that it
    works from a notebook, whose thread already runs a loop; its result, or its error raised here."""
    try:
        from uvloop import new_event_loop
    except ImportError:
        new_event_loop = asyncio.new_event_loop

    def target():
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(coroutine)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name) as thread:
        return thread.submit(target).result()


def run_load(
    url: str, bodies: list[bytes], concurrency: int, images_per_request: int = 1, timeout: float = 60.0, warmup: int = 0
) -> LoadResult:
    """Send every body in ``bodies`` to ``url`` from ``concurrency`` concurrent clients; measure.

    Each client has its own connection and sends its next request when the last is answered.
    ``warmup`` requests (at least one a client) go first and are not measured.
    """
    if concurrency < 1 or not bodies:
        raise ValueError("need at least one client and one request")
    load = _timeline(url, bodies, [0] * concurrency, len(bodies), None, timeout, 0.0, images_per_request, warmup)
    table = run_in_thread(load, "load-generator")
    latencies, errors = (table["end"] - table["start"]).to_numpy() * 1000, table.attrs["errors"]
    seconds = table.attrs["seconds"]
    return LoadResult(concurrency, images_per_request, seconds, latencies, len(errors), errors[0] if errors else "")


async def _timeline(urls, bodies, retries, max_requests, seconds, timeout, backoff_s, images_per_request, warmup=-1):
    """:func:`run_timeline`; ``warmup`` requests (at least one a client; -1: none) go first, unrecorded."""
    parts = [urllib.parse.urlsplit(url) for url in ([urls] if isinstance(urls, str) else urls)]
    path = parts[0].path + (f"?{parts[0].query}" if parts[0].query else "")
    columns = {name: [] for name in ("start", "end", "status", "attempts", "retrying")}
    errors: list[str] = []
    connections = [[Connection(p.hostname, p.port or 80) for p in parts] for _ in retries]  # a client's, by entry point
    next_index = iter(range(max_requests))
    deadline = time.monotonic() + seconds if seconds is not None else None

    async def attempt(connection: Connection, body: bytes) -> tuple[int, bool]:
        """One try: (status, whether another try may help)."""
        try:
            status, payload = await asyncio.wait_for(connection.post(path, body), timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await connection.close()
            errors.append(f"{type(exc).__name__}: {exc}")
            return 0, True
        if status == 200:
            try:
                if len(json.loads(payload)["predictions"]) == images_per_request:
                    return 200, False
            except (ValueError, KeyError):
                pass
            errors.append(f"HTTP 200 with a wrong reply: {payload[:200]!r}")
            return 0, True
        errors.append(f"HTTP {status}: {payload[:200]!r}")
        return status, status >= 500 or status == 429  # the service's fault or overload: try again

    async def client_loop(entries: list[Connection], tries: int):
        entry, ejected = 0, [0.0] * len(entries)  # until when each entry point is avoided
        for i in next_index:
            if deadline is not None and time.monotonic() > deadline:
                break
            start = time.time()
            for n in range(1, tries + 2):
                status, again = await attempt(entries[entry], bodies[i % len(bodies)])
                if not again or n > tries:
                    break
                # a failed entry point is avoided for EJECT_S if another one is not avoided, which is
                # used instead; the last one left is never avoided
                now = time.monotonic()
                others = [e for e in range(len(entries)) if e != entry and ejected[e] <= now]
                if others:
                    ejected[entry], entry = now + EJECT_S, others[0]
                await asyncio.sleep(backoff_s * 2 ** (n - 1))
            for name, value in zip(columns, (start, time.time(), status, n, tries > 0)):
                columns[name].append(value)

    try:
        for _ in range(max(1, -(-warmup // len(retries))) if warmup >= 0 else 0):  # opens the connections too
            await asyncio.gather(*(attempt(c[0], bodies[i % len(bodies)]) for i, c in enumerate(connections)))
        errors.clear()
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(c, r) for c, r in zip(connections, retries)))
        took = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for entries in connections for c in entries))
    import pandas as pd

    table = pd.DataFrame(columns)
    table.attrs |= {"errors": errors, "seconds": took}
    return table


#: how long a client of :func:`run_timeline` avoids an entry point after a failed try
EJECT_S = 30.0


def run_timeline(
    url: str | list[str],
    bodies: list[bytes],
    concurrency: int,
    *,
    retries=0,
    max_requests: int | None = None,
    seconds: float | None = None,
    timeout: float = 30.0,
    backoff_s: float = 0.05,
    images_per_request: int = 1,
):
    """A closed-loop load like :func:`run_load` that records every request, and can retry: one row a
    request, when it was first sent and when it ended (``time.time()``), its last HTTP status (0: no
    answer), its attempts and whether its client retries; the errors met in ``attrs["errors"]``.

    ``concurrency`` clients send ``bodies`` (cycling) until ``max_requests`` (default: one pass)
    are sent or ``seconds`` have passed, whichever comes first. ``retries`` (one number, or one a
    client) is how many times a client tries a request again after no answer or a 5xx/429
    status, waiting ``backoff_s``, then twice as long each time; a 4xx is never retried. ``url``
    may be a list of entry points to the same service (a proxy on each node): a client sends to the
    first, and after a try that failed moves to the next one it is not avoiding and avoids the
    failed one for ``EJECT_S`` s, as a load balancer ejects an entry point that fails (Envoy's
    outlier detection: 30 s by default, and never every entry point).
    """
    retries = [retries] * concurrency if isinstance(retries, int) else list(retries)
    if concurrency < 1 or not bodies or len(retries) != concurrency:
        raise ValueError("need at least one client, one request, and one retry count a client")
    return run_in_thread(
        _timeline(url, bodies, retries, max_requests or len(bodies), seconds, timeout, backoff_s, images_per_request),
        "load-timeline",
    )


def predict_http(
    model_url: str, images: np.ndarray, batch_size: int = 256, encoding: str = "b64", timeout: float = 120.0
) -> np.ndarray:
    """The service's outputs for ``images``, requested ``batch_size`` images at a time."""
    import httpx

    rows = []
    with httpx.Client(timeout=timeout) as client:
        for start in range(0, len(images), batch_size):
            body = encode_request(images[start : start + batch_size], encoding)
            response = client.post(f"{model_url}:predict", content=body, headers={"Content-Type": "application/json"})
            response.raise_for_status()
            rows.extend(response.json()["predictions"])
    return np.asarray(rows, dtype=np.float32)


def bad_requests(model_url: str, max_body_bytes: int, max_instances: int) -> list[tuple[str, str, str, bytes, int]]:
    """Requests a service must refuse: ``(case, method, url, body, expected status)``."""
    image = np.zeros((32, 32, 3), np.uint8)
    one = image.tolist()
    predict = f"{model_url}:predict"
    unknown = model_url.rsplit("/", 1)[0] + "/no_such_model:predict"

    def body(instances) -> bytes:
        return json.dumps({"instances": instances}, separators=(",", ":")).encode()

    b64 = base64.b64encode(image.tobytes()).decode()
    posts = [
        ("malformed JSON", b'{"instances": [[1, 2', 400),
        ("empty body", b"", 400),
        ("JSON that is not an object", b"[1, 2, 3]", 400),
        ('no "instances" field', b'{"images": []}', 400),
        ('empty "instances"', body([]), 400),
        ("wrong shape (28x28x3)", body([np.zeros((28, 28, 3), int).tolist()]), 400),
        ("ragged nesting", body([one, one[:5]]), 400),
        ("floats in [0, 1] instead of uint8", body([(image / 255 + 0.5).tolist()]), 400),
        ("strings", body([[[["a"] * 3] * 32] * 32]), 400),
        ("value 256, out of range", body([(image.astype(int) + 256).tolist()]), 400),
        ("negative value", body([(image.astype(int) - 1).tolist()]), 400),
        ("invalid base64", body([{"b64": "not base64!"}]), 400),
        ("base64 of the wrong length", body([{"b64": b64[:-8]}]), 400),
        ("unknown signature_name", json.dumps({"instances": [one], "signature_name": "other"}).encode(), 400),
        (f"{max_instances + 1} images, over the limit", body([{"b64": b64}] * (max_instances + 1)), 413),
        (f"body over {max_body_bytes:,} bytes", b" " * (max_body_bytes + 1), 413),
    ]
    return [(case, "POST", predict, content, status) for case, content, status in posts] + [
        ("unknown model name", "POST", unknown, body([one]), 404),
        ("GET on :predict", "GET", predict, b"", 405),
    ]


def case_zh(case: str) -> str:
    """One of :func:`bad_requests`' cases in Chinese."""
    import re

    from helpers.words import labels

    if case in labels("serving"):
        return labels("serving")[case]
    if m := re.fullmatch(r"(\d+) images, over the limit", case):
        return f"{m[1]} 张图像，超过上限"
    if m := re.fullmatch(r"body over ([\d,]+) bytes", case):
        return f"请求体超过 {m[1]} 字节"
    return case


def send(method: str, url: str, body: bytes = b"", timeout: float = 30.0) -> tuple[int, dict]:
    """One request with ``httpx``; returns the status and the decoded JSON reply ({} if none)."""
    import httpx

    response = httpx.request(
        method,
        url,
        content=body or None,
        timeout=timeout,
        headers={"Content-Type": "application/json"} if body else None,
    )
    try:
        reply = response.json()
    except ValueError:
        reply = {}
    return response.status_code, reply if isinstance(reply, dict) else {"reply": reply}


def service_stats(base_url: str) -> dict:
    """The service's ``GET /stats`` counters."""
    return send("GET", f"{base_url}/stats")[1]


def refusals(cases, good: tuple[str, str, bytes] | None = None) -> list[dict]:
    """Send every case of a bad-request table, ``(case, method, url, body, expected status)`` as
    :func:`bad_requests` gives them; one row a case: its status, the expected one, the error's
    message and, where the error names one (OpenAI-style errors), its ``param``. With a ``good``
    request ``(method, url, body)``, sent after each case: its status (``next good request``)."""
    rows = []
    for case, method, url, body, expected in cases:
        status, reply = send(method, url, body)
        error = reply.get("error") or ""
        row = {"case": case, "status": status, "expected": expected}
        if isinstance(error, dict):  # OpenAI-style: {"message", "type", "param", "code"}
            row["param"], error = error.get("param"), error.get("message") or ""
        row["message"] = str(error)
        if good is not None:
            row["next good request"] = send(*good)[0]
        rows.append(row)
    return rows


def request_costs(predict, images: np.ndarray, batch_size: int, encodings=ENCODINGS, seconds: float = 1.0) -> dict:
    """What one one-image request costs in this process, in milliseconds (medians of repeated calls).

    ``decode <encoding>``: parsing its body (:func:`helpers.serving.decode_predict_request`);
    ``model, 1 image``: one model call on one image; ``model per image, batch of N``: a call on
    ``batch_size`` images divided by ``batch_size``. The last two bound what batching can gain:
    batching removes per-call cost, never per-image cost.
    """
    from helpers.serving.protocol import decode_predict_request

    costs = {
        f"decode {enc}": timing.median_ms(decode_predict_request, encode_request(images[:1], enc), seconds)
        for enc in encodings
    }
    costs["model, 1 image"] = timing.median_ms(predict, images[:1], seconds)
    batch = images[np.arange(batch_size) % len(images)]
    costs[f"model per image, batch of {batch_size}"] = timing.median_ms(predict, batch, seconds) / batch_size
    return costs
