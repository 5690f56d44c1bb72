"""Serve an image classifier over HTTP with TensorFlow Serving's REST API and dynamic batching.

    python -m helpers.serving --model build/executed/cpu/artifacts/cifar10_served.keras --port 8501
    curl -s localhost:8501/v1/models/cifar10                     # status
    curl -s -X POST localhost:8501/v1/models/cifar10:predict -d '{"instances": [[[[0,0,0], ...]]]}'

The service is a FastAPI application on uvicorn, bound to 127.0.0.1 unless ``--host`` says
otherwise. It answers

* ``POST /v1/models/<name>:predict`` with ``{"instances": [...]}`` (row format) or
  ``{"inputs": [...]}`` (columnar format): each instance a 32x32x3 nested list of integers
  0..255, or ``{"b64": "<base64 of the 3,072 raw bytes>"}``; the reply is
  ``{"predictions": [[10 logits], ...]}`` (or ``{"outputs": ...}``), as TensorFlow Serving replies;
* ``GET /v1/models/<name>`` (version status) and ``GET /v1/models/<name>/metadata`` (signature);
* ``GET /healthz``, ``GET /stats`` (requests, batches, images served) and ``GET /openapi.json``.

Requests that arrive within ``--max-wait-ms`` of each other are run as one batch of at most
``--max-batch-size`` images (``--no-batching`` runs each request alone); the model runs in a
worker thread, never on the event loop. ``POST :predict`` skips FastAPI's router and
middleware (:class:`PredictFastPath`); FastAPI serves and documents everything else. Bad input gets a 4xx with ``{"error": "..."}``; logs are
JSON lines on stderr; SIGTERM or SIGINT stops accepting connections, answers the requests in
flight, then exits. :func:`running_service` starts the service as a subprocess on a free port and
always stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import concurrent.futures
import contextlib
import json
import logging
import logging.config
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException as FastAPIHTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SHAPE = (32, 32, 3)
IMAGE_BYTES = int(np.prod(IMAGE_SHAPE))
DEFAULT_NAME = "cifar10"
DEFAULT_MAX_BODY_BYTES = 64 * 2**20  # 256 images as nested-list JSON take about 4 MB
DEFAULT_MAX_INSTANCES = 1024
INLINE_DECODE_BYTES = 64 * 1024  # larger bodies are parsed in a worker thread
LOGGER = "maas.serving"
log = logging.getLogger(LOGGER)


class ServingError(RuntimeError):
    """The service could not start, stopped unexpectedly, or did not answer."""


class BadRequest(Exception):
    """A request the service refuses: ``status`` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------
# the model: export with its preprocessing, load, predict


def with_preprocessing(model, name: str = "served_cnn"):
    """Wrap a model on float images in [0, 1] so that it takes raw uint8 pixels (divides by 255)."""
    import keras

    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")
    scaled = keras.layers.Rescaling(1 / 255, name="to_unit_range")(inputs)
    return keras.Model(inputs, model(scaled), name=name)


def export(model, directory: Path | str, stem: str = "cifar10_served") -> dict[str, Path | None]:
    """Write the uint8-input model as ``<stem>.keras`` and, on TensorFlow, a SavedModel ``<stem>/``.

    Returns the paths (``saved_model`` is None where TensorFlow is not installed). The SavedModel
    is what TensorFlow Serving loads (put it under a numbered version folder, ``<stem>/1``).
    """
    import importlib.util

    from helpers.env import native_stderr_silenced

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keras_path = directory / f"{stem}.keras"
    model.save(keras_path)
    saved_model = None
    if importlib.util.find_spec("tensorflow") is not None:
        saved_model = directory / stem / "1"
        tf_logger = logging.getLogger("tensorflow")  # quiet its "Assets written to ..." notices
        level = tf_logger.level
        tf_logger.setLevel(logging.ERROR)
        try:
            with native_stderr_silenced(), open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                model.export(str(saved_model), format="tf_saved_model", verbose=False)
        finally:
            tf_logger.setLevel(level)
    return {"keras": keras_path, "saved_model": saved_model}


MODEL_ARTIFACT = "cifar10_model.keras"  # written by chapter 05: float images in [0, 1] -> 10 logits
MODEL_RECORD = "cifar10_model.json"  # {"test_accuracy": ..., "notebook": ...}


def model_to_serve(x_train, y_train, x_test, y_test, epochs: int, seed: int, batch_size: int = 128):
    """Chapter 05's model and record if its artifact exists; otherwise train a small one and write it.

    Returns ``(model, record)``; the record says where the model came from (``notebook``) and
    its test accuracy as that notebook measured it (for a model trained here, on ``x_test``).
    """
    import keras

    from helpers.artifacts import artifact

    path, record_path = artifact(MODEL_ARTIFACT), artifact(MODEL_RECORD)
    if path.exists() and record_path.exists():
        return keras.saving.load_model(path), json.loads(record_path.read_text())
    model, accuracy = train_article_cnn(x_train, y_train, x_test, y_test, epochs, seed, batch_size)
    model.save(path)
    record = {"test_accuracy": accuracy, "notebook": "06_serving",
              "train_images": int(len(x_train)), "test_images": int(len(x_test)), "epochs": epochs}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return model, record


def train_article_cnn(x_train, y_train, x_test, y_test, epochs: int, seed: int, batch_size: int = 128):
    """The corrected article CNN (ten logits, float images in [0, 1]) trained briefly; ``(model, test accuracy)``."""
    import keras

    from helpers import cnn

    keras.utils.set_random_seed(seed)
    # the corrected article CNN without its Rescaling layer: float images in [0, 1], 10 logits
    model = keras.Sequential([keras.Input(shape=IMAGE_SHAPE, dtype="float32"),
                              *cnn.article_cnn(logits=True).layers[1:]], name="article_cnn_logits")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(np.asarray(x_train, np.float32) / 255, y_train, epochs=epochs, batch_size=batch_size,
              verbose=0, shuffle=True)
    logits = model.predict(np.asarray(x_test, np.float32) / 255, batch_size=1024, verbose=0)
    return model, float(np.mean(logits.argmax(axis=1) == y_test))


class Predictor:
    """Loads a ``.keras`` file or a SavedModel folder; ``predict(uint8 images) -> float32 logits``.

    A SavedModel is called through its ``serve`` endpoint (what TensorFlow Serving runs); a
    Keras file through a compiled function of the model (``tf.function`` on TensorFlow,
    ``predict_on_batch`` on the other backends). Thread-safe for one caller at a time.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.exists():
            raise ServingError(f"no model at {self.path}")
        if self.path.is_dir():
            import tensorflow as tf

            self.kind = "SavedModel"
            loaded = tf.saved_model.load(str(self.path))
            self._loaded = loaded  # keep the object alive: its endpoint refers to its variables
            self._call = lambda x: loaded.serve(tf.constant(x)).numpy()
        else:
            import keras

            self.kind = "Keras"
            model = keras.saving.load_model(self.path, compile=False)
            self.model = model
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                                 input_signature=[tf.TensorSpec((None, *IMAGE_SHAPE), tf.uint8)])
                self._call = lambda x: fn(tf.constant(x)).numpy()
            else:
                self._call = lambda x: np.asarray(model.predict_on_batch(x))
        out = self.predict(np.zeros((1, *IMAGE_SHAPE), np.uint8))  # traces the function once
        self.n_outputs = int(out.shape[1])

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(np.ascontiguousarray(images, dtype=np.uint8)), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# request decoding


def decode_predict_request(body: bytes, max_instances: int = DEFAULT_MAX_INSTANCES) -> tuple[np.ndarray, str]:
    """Parse a ``:predict`` body into uint8 images (N, 32, 32, 3) and the reply key, or raise BadRequest."""
    if not body.strip():
        raise BadRequest(400, "empty request body; send {\"instances\": [...]}")
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest(400, f"the body must be a JSON object with \"instances\", not a {type(request).__name__}")
    keys = [k for k in ("instances", "inputs") if k in request]
    if len(keys) != 1:
        raise BadRequest(400, "the body must have exactly one of \"instances\" (row format) or \"inputs\" (columnar)")
    unknown = set(request) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise BadRequest(400, f"unknown field(s) {sorted(unknown)}; expected \"instances\" and optionally \"signature_name\"")
    signature = request.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise BadRequest(400, f"unknown signature_name {signature!r}; this model has \"serving_default\"")
    instances = request[keys[0]]
    if not isinstance(instances, list):
        raise BadRequest(400, f"\"{keys[0]}\" must be a list of images, not a {type(instances).__name__}")
    if not instances:
        raise BadRequest(400, f"\"{keys[0]}\" is empty: send at least one image")
    if len(instances) > max_instances:
        raise BadRequest(413, f"{len(instances)} images in one request; the limit is {max_instances}")
    reply_key = "predictions" if keys[0] == "instances" else "outputs"
    if all(isinstance(item, dict) for item in instances):
        return _decode_b64(instances), reply_key
    if any(isinstance(item, dict) for item in instances):
        raise BadRequest(400, "mixed instances: send all images as nested lists or all as {\"b64\": ...}")
    return _decode_lists(instances), reply_key


def _decode_b64(instances: list[dict]) -> np.ndarray:
    images = np.empty((len(instances), IMAGE_BYTES), np.uint8)
    for i, item in enumerate(instances):
        if set(item) != {"b64"} or not isinstance(item["b64"], str):
            raise BadRequest(400, f"instance {i}: an object instance must be {{\"b64\": \"<base64 string>\"}}")
        try:
            raw = base64.b64decode(item["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(400, f"instance {i}: invalid base64: {exc}") from None
        if len(raw) != IMAGE_BYTES:
            raise BadRequest(400, f"instance {i}: {len(raw)} bytes after base64 decoding; an image "
                                  f"is {IMAGE_BYTES} raw uint8 bytes (32x32x3, row-major)")
        images[i] = np.frombuffer(raw, np.uint8)
    return images.reshape(-1, *IMAGE_SHAPE)


def _decode_lists(instances: list) -> np.ndarray:
    expected = f"each image must be a 32x32x3 nested list of integers 0..255"
    try:
        array = np.asarray(instances)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(400, f"ragged or invalid nesting ({exc}); {expected}") from None
    if array.shape[1:] != IMAGE_SHAPE:
        raise BadRequest(400, f"wrong shape {list(array.shape[1:])} per image; {expected}")
    if array.dtype.kind not in "iu":
        kind = {"f": "floats", "b": "booleans", "U": "strings", "O": "mixed or non-numeric values"}.get(
            array.dtype.kind, str(array.dtype))
        raise BadRequest(400, f"wrong dtype: got {kind}; {expected} (uint8, not scaled to [0, 1])")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
        raise BadRequest(400, f"values out of range: min {low}, max {high}; {expected}")
    return array.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# dynamic batching


@dataclass
class _Pending:
    images: np.ndarray
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters since the service started."""

    requests: int = 0
    in_flight: int = 0
    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    model_seconds: float = 0.0
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)

    def as_dict(self) -> dict:
        return {"requests": self.requests, "in_flight": self.in_flight, "batches": self.batches, "images": self.images,
                "largest_batch": self.largest_batch, "model_seconds": round(self.model_seconds, 6),
                "mean_batch_images": round(self.images / self.batches, 3) if self.batches else 0.0,
                "mean_requests_per_batch": round(self.requests / self.batches, 3) if self.batches else 0.0}


class Batcher:
    """Collects requests into batches and runs them on one worker thread, off the event loop.

    With ``enabled``, a batch starts with the oldest waiting request and takes every request that
    arrives within ``max_wait_s`` of it, up to ``max_batch_size`` images (a request is never split;
    one larger than the limit runs alone). Without, each request is its own batch. While a batch
    runs, new requests queue up and form the next one.
    """

    def __init__(self, predict, max_batch_size: int = 64, max_wait_s: float = 0.005, enabled: bool = True):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_s >= 0")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.enabled = enabled
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
        if not self.enabled:
            return batch
        size = len(batch[0].images)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch_size:
            if self._queue:
                if size + len(self._queue[0].images) > self.max_batch_size:
                    break
                batch.append(self._queue.popleft())
                size += len(batch[-1].images)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            batch = [p for p in batch if not p.future.done()]  # a client that gave up
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
            stats = self.stats
            stats.model_seconds += time.perf_counter() - start
            stats.batches += 1
            stats.requests += len(batch)
            stats.images += len(images)
            stats.largest_batch = max(stats.largest_batch, len(images))
            stats.batch_sizes[len(images)] += 1
            offset = 0
            for p in batch:
                n = len(p.images)
                if not p.future.done():
                    p.future.set_result(outputs[offset:offset + n])
                offset += n


# --------------------------------------------------------------------------------------------
# the application


@dataclass
class ServiceOptions:
    name: str = DEFAULT_NAME
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    batching: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_instances: int = DEFAULT_MAX_INSTANCES
    fast_path: bool = True  # answer POST :predict in PredictFastPath, not through FastAPI's router


def create_app(predictor: Predictor, options: ServiceOptions):
    """The FastAPI application serving ``predictor`` under ``/v1/models/<options.name>``."""
    class PredictRequest(BaseModel):
        instances: list = Field(description="images: each a 32x32x3 nested list of integers 0..255 "
                                            "(raw uint8 pixels, row-major), or {\"b64\": base64 of its 3,072 bytes}")
        signature_name: str = Field("serving_default", description="the only signature")

    class PredictResponse(BaseModel):
        predictions: list[list[float]] = Field(description="one row of 10 logits per image, in order")

    class ErrorResponse(BaseModel):
        error: str

    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher = Batcher(predictor.predict, options.max_batch_size, options.max_wait_ms / 1000,
                          options.batching)
        batcher.start()
        state["batcher"] = batcher
        log.info("ready", extra={"fields": {"event": "ready", "model": options.name, "kind": predictor.kind,
                                            "batching": options.batching, "max_batch_size": options.max_batch_size,
                                            "max_wait_ms": options.max_wait_ms}})
        yield
        await batcher.stop()
        log.info("stopped", extra={"fields": {"event": "stopped", **batcher.stats.as_dict()}})

    app = FastAPI(title="CIFAR-10 classifier (TensorFlow Serving REST API)", version="1",
                  description=__doc__.split("\n\n")[0], lifespan=lifespan)
    errors = {code: {"model": ErrorResponse} for code in (400, 404, 405, 413)}

    def refuse(request: Request, status: int, message: str) -> Response:
        return Response(refusal(request.url.path, status, message), status_code=status, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return refuse(request, exc.status_code, str(exc.detail))

    def check_name(name: str) -> None:
        if name != options.name:
            raise FastAPIHTTPException(404, f"unknown model {name!r}; this service serves {options.name!r}")

    @app.get("/healthz", summary="Liveness and readiness")
    async def healthz():
        return {"status": "ok", "model": options.name}

    @app.get("/stats", summary="Requests, batches and images served since start")
    async def stats():
        return state["batcher"].stats.as_dict() | {"batching": options.batching}

    @app.get("/v1/models/{name}", summary="Model version status (TensorFlow Serving)", responses=errors)
    async def model_status(name: str):
        if name.endswith(":predict"):  # GET /v1/models/<name>:predict
            raise FastAPIHTTPException(405, ":predict takes POST with a JSON body")
        check_name(name)
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @app.get("/v1/models/{name}/metadata", summary="Model signature (TensorFlow Serving)", responses=errors)
    async def model_metadata(name: str):
        check_name(name)
        shape = [{"size": "-1"}] + [{"size": str(s)} for s in IMAGE_SHAPE]
        return {"model_spec": {"name": options.name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {"signature_def": {"serving_default": {
                    "inputs": {"image": {"dtype": "DT_UINT8", "tensor_shape": {"dim": shape}}},
                    "outputs": {"logits": {"dtype": "DT_FLOAT", "tensor_shape": {
                        "dim": [{"size": "-1"}, {"size": str(predictor.n_outputs)}]}}},
                    "method_name": "tensorflow/serving/predict"}}}}}

    async def answer_predict(body: bytes, path: str) -> tuple[int, bytes]:
        """The ``:predict`` reply for one request body: ``(status, JSON bytes)``; the one place for it."""
        try:
            if len(body) < INLINE_DECODE_BYTES:
                images, key = decode_predict_request(body, options.max_instances)
            else:  # parsing megabytes of JSON takes milliseconds: keep the event loop free meanwhile
                images, key = await asyncio.to_thread(decode_predict_request, body, options.max_instances)
        except BadRequest as exc:
            return exc.status, refusal(path, exc.status, exc.message)
        outputs = await state["batcher"].submit(images)
        return 200, orjson.dumps({key: outputs}, option=orjson.OPT_SERIALIZE_NUMPY)

    @app.post("/v1/models/{name}:predict", summary="Predict (TensorFlow Serving row or columnar format)",
              response_model=PredictResponse, responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()}}}})
    async def predict(name: str, request: Request):
        # documents the endpoint and answers it when the app runs without PredictFastPath
        check_name(name)
        try:
            body = await _receive_body(request.scope, request.receive, options.max_body_bytes)
        except BadRequest as exc:
            return refuse(request, exc.status, exc.message)
        except _ClientGone:
            return Response(status_code=499)  # nobody to answer ("client closed request")
        status, reply = await answer_predict(body, request.url.path)
        return Response(reply, status_code=status, media_type="application/json")

    if not options.fast_path:
        return app
    return PredictFastPath(app, f"/v1/models/{options.name}:predict", answer_predict, options.max_body_bytes)


class PredictFastPath:
    """ASGI: ``POST <path>`` straight to the handler; every other request to the FastAPI ``app``.

    FastAPI's routing, dependency solving and middleware run on the event loop for every request,
    and with dynamic batching the event loop's CPU per request, not the model, can set the
    throughput (chapter 06 measures the service both ways; ``--through-fastapi`` turns this off). The hot path therefore skips them, as
    production servers do; FastAPI still serves, validates and documents everything else, and its
    own ``:predict`` route (same handler) answers other model names with 404.
    """

    def __init__(self, app, path: str, answer, max_body_bytes: int):
        self.app, self.path, self.answer, self.max_body_bytes = app, path, answer, max_body_bytes

    def __getattr__(self, name):  # app.openapi(), app.routes, ... for code that inspects the app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        try:
            body = await _receive_body(scope, receive, self.max_body_bytes)
        except BadRequest as exc:
            status, reply = exc.status, refusal(scope["path"], exc.status, exc.message)
        except _ClientGone:
            return
        else:
            try:
                status, reply = await self.answer(body, scope["path"])
            except Exception as exc:  # the model failed: a 500 that says so, and the service goes on
                log.exception("predict failed", extra={"fields": {"event": "predict_failed"}})
                status, reply = 500, orjson.dumps({"error": f"prediction failed: {exc!r}"})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(reply)).encode())]})
        await send({"type": "http.response.body", "body": reply})


def refusal(path: str, status: int, message: str) -> bytes:
    """Log a refused request; return its JSON reply ``{"error": message}``."""
    log.warning("refused", extra={"fields": {"event": "refused", "status": status, "path": path,
                                             "error": message[:300]}})
    return orjson.dumps({"error": message})


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def _receive_body(scope, receive, limit: int) -> bytes:
    """The request body from raw ASGI messages, refusing one over ``limit`` bytes (BadRequest 413)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise BadRequest(400, "invalid Content-Length header")
            if int(value) > limit:
                raise BadRequest(413, f"request body of {int(value):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body over the limit of {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# structured logs and the command line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": round(record.created, 3), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", LOGGER)},
}


def _server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, exiting with status 0 after a graceful shutdown on SIGTERM or SIGINT.

        (uvicorn re-raises the signal once it has shut down, so the process would end "killed by
        SIGTERM" although every request in flight was answered.) A second signal forces the exit.
        """

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer


def serve(model: Path | str, host: str = "127.0.0.1", port: int = 8501, options: ServiceOptions | None = None,
          parent_pid: int | None = None, graceful_seconds: float = 30.0) -> None:
    """Load the model, listen on ``host:port`` (0: a free port) and serve until SIGTERM/SIGINT."""
    import uvicorn

    logging.config.dictConfig(LOG_CONFIG)
    options = options or ServiceOptions()
    start = time.perf_counter()
    predictor = Predictor(model)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(create_app(predictor, options), log_config=LOG_CONFIG, access_log=False,
                            timeout_graceful_shutdown=graceful_seconds, backlog=2048,
                            timeout_keep_alive=30, server_header=False)
    server = _server_class()(config)
    if parent_pid is not None:  # never outlive the notebook or test that started the service
        def watchdog():
            while not server.should_exit:
                if os.getppid() != parent_pid:
                    log.warning("parent gone", extra={"fields": {"event": "parent_gone"}})
                    server.should_exit = True
                time.sleep(0.5)
        threading.Thread(target=watchdog, daemon=True).start()
    log.info("listening", extra={"fields": {"event": "listening", "host": host, "port": sock.getsockname()[1],
                                            "model": str(model), "load_seconds": round(time.perf_counter() - start, 3),
                                            "pid": os.getpid()}})
    server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .keras file or a SavedModel folder (uint8 images in, logits out)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the URLs (default {DEFAULT_NAME})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501, TensorFlow Serving's REST port; 0: any free port)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="most images in one model call (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="batching window in milliseconds (default 5)")
    parser.add_argument("--no-batching", action="store_true", help="run every request alone")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="request size limit")
    parser.add_argument("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES, help="most images in one request")
    parser.add_argument("--through-fastapi", action="store_true",
                        help="answer :predict through FastAPI's router too (slower; to measure what the fast path saves)")
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"), help="Keras backend")
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = ServiceOptions(args.name, args.max_batch_size, args.max_wait_ms, not args.no_batching,
                             args.max_body_bytes, args.max_instances, not args.through_fastapi)
    try:
        serve(args.model, args.host, args.port, options, args.parent_pid)
    except (ServingError, OSError) as exc:  # no model, port taken, ...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------
# starting and stopping the service from Python


@dataclass
class Service:
    """A service running in a subprocess: its URL, process and the JSON log lines it wrote."""

    process: subprocess.Popen
    name: str
    url: str = ""
    logs: list = field(default_factory=list)
    _listening: threading.Event = field(default_factory=threading.Event)
    _terminated: bool = False

    @property
    def model_url(self) -> str:
        return f"{self.url}/v1/models/{self.name}"

    def _read_logs(self) -> None:
        for line in self.process.stderr:
            line = line.rstrip("\n")
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"message": line}
            if not isinstance(entry, dict):
                entry = {"message": line}
            self.logs.append(entry)
            if entry.get("event") == "listening":
                self.url = f"http://127.0.0.1:{entry['port']}"
                self._listening.set()
        self._listening.set()  # the process ended: stop waiting

    def terminate(self) -> None:
        """Send SIGTERM once (graceful: requests in flight are answered); a second one would force the exit."""
        if not self._terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self._terminated = True

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (see :meth:`terminate`), then wait; returns the exit code."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


@contextlib.contextmanager
def running_service(model: Path | str, *, name: str = DEFAULT_NAME, max_batch_size: int = 64,
                    max_wait_ms: float = 5.0, batching: bool = True, port: int = 0,
                    extra_args: tuple[str, ...] = (), startup_timeout: float = 120.0):
    """Start ``python -m helpers.serving`` on 127.0.0.1 (a free port by default); yield a :class:`Service`."""
    service = start_service(model, name=name, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                            batching=batching, port=port, extra_args=extra_args)
    try:
        wait_until_listening(service, startup_timeout)
        yield service
    finally:
        service.stop()


def start_service(model: Path | str, *, name: str = DEFAULT_NAME, max_batch_size: int = 64,
                  max_wait_ms: float = 5.0, batching: bool = True, port: int = 0,
                  extra_args: tuple[str, ...] = ()) -> Service:
    """Start the service subprocess without waiting for it (see :func:`wait_until_listening`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "helpers.serving", "--model", str(model), "--name", name,
               "--port", str(port), "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
               "--parent-pid", str(os.getpid()), *([] if batching else ["--no-batching"]), *extra_args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    service = Service(process, name)
    threading.Thread(target=service._read_logs, daemon=True).start()
    return service


def wait_until_listening(service: Service, timeout: float = 120.0) -> Service:
    if not service._listening.wait(timeout) or not service.url:
        service.stop()
        tail = "\n".join(json.dumps(e) for e in service.logs[-15:])
        raise ServingError(f"the service (pid {service.process.pid}) did not start within {timeout:.0f} s:\n{tail}")
    import httpx

    deadline = time.monotonic() + timeout
    while True:  # listening; wait until the application has started (lifespan) and answers
        try:
            if httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or service.process.poll() is not None:
            raise ServingError(f"the service at {service.url} never became healthy")
        time.sleep(0.05)


if __name__ == "__main__":
    raise SystemExit(main())
