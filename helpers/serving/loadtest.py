"""The client side of a model service: encode requests, send them from many concurrent clients over
keep-alive connections (a closed loop, like ``wrk``: bodies encoded before the clock starts), summarise."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import re
import time
import urllib.parse
from dataclasses import dataclass

import httpx
import numpy as np

from helpers import timing, words

ENCODINGS = ("json", "b64")
EJECT_S = 30.0  # how long a client of :func:`run_timeline` avoids an entry point after a failed try


def encode_request(images: np.ndarray, encoding: str = "json") -> bytes:
    """A ``:predict`` body for uint8 images (N, 32, 32, 3): ``json`` nested lists, or ``b64`` ``{"b64": raw bytes}``."""
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
    step = np.arange(images_per_request)
    return [encode_request(images[(step + i * images_per_request) % len(images)], encoding) for i in range(n_requests)]


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
        row = {"clients": self.concurrency, "images/request": self.images_per_request, "requests": self.requests}
        row |= {"errors": self.errors, "requests/s": self.requests_per_second, "images/s": self.images_per_second}
        return row | {f"p{q} ms": self.percentile(q) for q in (50, 95, 99)}


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs pre-encoded bodies: a minimal client that takes little CPU."""

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
            lines = (line.partition(b":") for line in header.lower().split(b"\r\n")[1:])
            fields = {name.strip(): value.strip() for name, _, value in lines}
            payload = await self.reader.readexactly(int(fields.get(b"content-length", 0)))
        except BaseException:
            await self.close()
            raise
        if fields.get(b"connection") == b"close":
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def run_in_thread(coroutine, name: str):
    """Run ``coroutine`` on a fresh event loop (uvloop's if installed) in its own thread (a notebook's has one)."""
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
    url: str, bodies: list[bytes], concurrency: int, images_per_request: int = 1, warmup: int = 0
) -> LoadResult:
    """Send every body to ``url`` from ``concurrency`` clients, each its own connection (a try fails after 60 s);
    ``warmup`` requests (at least one a client) go first, unmeasured."""
    if concurrency < 1 or not bodies:
        raise ValueError("need at least one client and one request")
    load = _timeline(url, bodies, [0] * concurrency, len(bodies), None, 60.0, 0.0, images_per_request, warmup)
    table = run_in_thread(load, "load-generator")
    latencies, errors = (table["end"] - table["start"]).to_numpy() * 1000, table.attrs["errors"]
    seconds, first = table.attrs["seconds"], errors[0] if errors else ""
    return LoadResult(concurrency, images_per_request, seconds, latencies, len(errors), first)


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
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await connection.close()
            errors.append(f"{type(exc).__name__}: {exc}")
            return 0, True
        if status == 200:
            with contextlib.suppress(ValueError, KeyError):
                if len(json.loads(payload)["predictions"]) == images_per_request:
                    return 200, False
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
                # a failed entry point is avoided for EJECT_S if another one is not (used instead), never the last
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
):
    """:func:`run_load` until ``max_requests`` or ``seconds``, a row a request (first sent, ended, last status,
    attempts, retrying); ``retries`` (one, or one a client) after no answer or a 5xx/429, waiting ``backoff_s``,
    doubled each time; of several entry points ``url``, a failed one is avoided for ``EJECT_S`` s (as Envoy does)."""
    retries = [retries] * concurrency if isinstance(retries, int) else list(retries)
    if concurrency < 1 or not bodies or len(retries) != concurrency:
        raise ValueError("need at least one client, one request, and one retry count a client")
    load = _timeline(url, bodies, retries, max_requests or len(bodies), seconds, timeout, backoff_s, 1)
    return run_in_thread(load, "load-timeline")


def predict_http(model_url: str, images: np.ndarray, batch_size: int = 256, encoding: str = "b64") -> np.ndarray:
    """The service's outputs for ``images``, requested ``batch_size`` images at a time."""
    rows = []
    with httpx.Client(timeout=120.0) as client:
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
    if m := re.fullmatch(r"(\d+) images, over the limit", case):
        return f"{m[1]} 张图像，超过上限"
    if m := re.fullmatch(r"body over ([\d,]+) bytes", case):
        return f"请求体超过 {m[1]} 字节"
    return words.label(case, "zh", "serving")


def send(method: str, url: str, body: bytes = b"", timeout: float = 30.0) -> tuple[int, dict]:
    """One request with ``httpx``; returns the status and the decoded JSON reply ({} if none)."""
    headers = {"Content-Type": "application/json"} if body else None
    response = httpx.request(method, url, content=body or None, timeout=timeout, headers=headers)
    reply = {}
    with contextlib.suppress(ValueError):
        reply = response.json()
    return response.status_code, reply if isinstance(reply, dict) else {"reply": reply}


def service_stats(base_url: str) -> dict:
    """The service's ``GET /stats`` counters."""
    return send("GET", f"{base_url}/stats")[1]


def refusals(cases, good: tuple[str, str, bytes] | None = None) -> list[dict]:
    """Send each case of a :func:`bad_requests`-like table; one row a case: status, expected, message, the
    ``param`` of an OpenAI-style error, and the status of a ``good`` ``(method, url, body)`` sent after it."""
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
    """What a one-image request costs in this process, in ms (medians): ``decode <encoding>``, ``model, 1 image``
    and ``model per image, batch of N`` (what batching can gain: it removes per-call cost, never per-image)."""
    from helpers.serving.protocol import decode_predict_request

    costs = {
        f"decode {enc}": timing.median_ms(decode_predict_request, encode_request(images[:1], enc), seconds)
        for enc in encodings
    }
    costs["model, 1 image"] = timing.median_ms(predict, images[:1], seconds)
    batch = images[np.arange(batch_size) % len(images)]
    costs[f"model per image, batch of {batch_size}"] = timing.median_ms(predict, batch, seconds) / batch_size
    return costs
