"""TensorFlow Serving's ``:predict`` request, its limits and refusals (a 4xx and a message naming the fix)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging

import numpy as np
import orjson

from helpers.data import IMAGE_SHAPE

IMAGE_BYTES = int(np.prod(IMAGE_SHAPE))
DEFAULT_NAME = "cifar10"
DEFAULT_MAX_BODY_BYTES = 64 * 2**20  # 256 images as nested-list JSON take about 4 MB
DEFAULT_MAX_INSTANCES = 1024
#: TensorFlow Serving's answer to ``GET /v1/models/<name>``: one version, available
MODEL_VERSION_STATUS = {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
NEEDS_POST = ":predict takes POST with a JSON body"  # the 405 message for a GET :predict (both services)
#: larger bodies are parsed in a worker thread: parsing megabytes of JSON takes milliseconds
INLINE_DECODE_BYTES = 64 * 1024
#: how long a body may take to arrive after its headers: else a client that never sends it holds its connection
BODY_TIMEOUT_S = 10.0
LOGGER = "maas.serving"
log = logging.getLogger(LOGGER)


class ServingError(RuntimeError):
    """The service could not start, stopped unexpectedly, or did not answer."""


class BadRequest(Exception):
    """A request the service refuses: ``status`` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def unknown_model(name: str, served: str) -> str:
    """The 404 message for a model name that the service does not serve (both services)."""
    return f"unknown model {name!r}; this service serves {served!r}"


def json_object(body: bytes, error, send: str = "a JSON object", expected: str = "a JSON object") -> dict:
    """Parse a body that must be one JSON object (``send``: what an empty one should hold), else ``error(400, ...)``."""
    if not body.strip():
        raise error(400, f"empty request body; send {send}")
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise error(400, f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise error(400, f"the body must be {expected}, not a {type(request).__name__}")
    return request


def decode_predict_request(body: bytes, max_instances: int = DEFAULT_MAX_INSTANCES) -> tuple[np.ndarray, str]:
    """Parse a ``:predict`` body into uint8 images (N, 32, 32, 3) and the reply key, or raise BadRequest."""
    request = json_object(body, BadRequest, '{"instances": [...]}', 'a JSON object with "instances"')
    keys = [k for k in ("instances", "inputs") if k in request]
    if len(keys) != 1:
        raise BadRequest(400, 'the body must have exactly one of "instances" (row format) or "inputs" (columnar)')
    if unknown := set(request) - {"instances", "inputs", "signature_name"}:
        msg = f'unknown field(s) {sorted(unknown)}; expected "instances" and optionally "signature_name"'
        raise BadRequest(400, msg)
    if (signature := request.get("signature_name", "serving_default")) != "serving_default":
        raise BadRequest(400, f'unknown signature_name {signature!r}; this model has "serving_default"')
    instances = request[keys[0]]
    if not isinstance(instances, list):
        raise BadRequest(400, f'"{keys[0]}" must be a list of images, not a {type(instances).__name__}')
    if not instances:
        raise BadRequest(400, f'"{keys[0]}" is empty: send at least one image')
    if len(instances) > max_instances:
        raise BadRequest(413, f"{len(instances)} images in one request; the limit is {max_instances}")
    reply_key = "predictions" if keys[0] == "instances" else "outputs"
    if all(isinstance(item, dict) for item in instances):
        return _decode_b64(instances), reply_key
    if any(isinstance(item, dict) for item in instances):
        raise BadRequest(400, 'mixed instances: send all images as nested lists or all as {"b64": ...}')
    return _decode_lists(instances), reply_key


def _decode_b64(instances: list[dict]) -> np.ndarray:
    images = np.empty((len(instances), IMAGE_BYTES), np.uint8)
    for i, item in enumerate(instances):
        if set(item) != {"b64"} or not isinstance(item["b64"], str):
            raise BadRequest(400, f'instance {i}: an object instance must be {{"b64": "<base64 string>"}}')
        try:
            raw = base64.b64decode(item["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(400, f"instance {i}: invalid base64: {exc}") from None
        if len(raw) != IMAGE_BYTES:
            msg = f"{len(raw)} bytes after base64 decoding; an image is {IMAGE_BYTES} raw uint8 bytes"
            raise BadRequest(400, f"instance {i}: {msg} (32x32x3, row-major)")
        images[i] = np.frombuffer(raw, np.uint8)
    return images.reshape(-1, *IMAGE_SHAPE)


def _decode_lists(instances: list) -> np.ndarray:
    expected = "each image must be a 32x32x3 nested list of integers 0..255"
    try:
        array = np.asarray(instances)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequest(400, f"ragged or invalid nesting ({exc}); {expected}") from None
    if array.shape[1:] != IMAGE_SHAPE:
        raise BadRequest(400, f"wrong shape {list(array.shape[1:])} per image; {expected}")
    if array.dtype.kind not in "iu":
        kinds = {"f": "floats", "b": "booleans", "U": "strings", "O": "mixed or non-numeric values"}
        kind = kinds.get(array.dtype.kind, str(array.dtype))
        raise BadRequest(400, f"wrong dtype: got {kind}; {expected} (uint8, not scaled to [0, 1])")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
        raise BadRequest(400, f"values out of range: min {low}, max {high}; {expected}")
    return array.astype(np.uint8)


async def predict_reply(predict, max_instances: int, body: bytes, path: str) -> tuple[int, bytes]:
    """The ``:predict`` reply ``(status, JSON bytes)`` to a body, by ``await predict(images)`` (both services)."""
    try:
        if len(body) < INLINE_DECODE_BYTES:
            images, key = decode_predict_request(body, max_instances)
        else:
            images, key = await asyncio.to_thread(decode_predict_request, body, max_instances)
    except BadRequest as exc:
        return exc.status, refusal(path, exc.status, exc.message)
    outputs = await predict(images)
    return 200, orjson.dumps({key: outputs}, option=orjson.OPT_SERIALIZE_NUMPY)


def refusal(path: str, status: int, message: str) -> bytes:
    """Log a refused request; return its JSON reply ``{"error": message}``."""
    fields = {"event": "refused", "status": status, "path": path, "error": message[:300]}
    log.warning("refused", extra={"fields": fields})
    return orjson.dumps({"error": message})


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def receive_body(scope, receive, limit: int, timeout: float = BODY_TIMEOUT_S) -> bytes:
    """The request body from raw ASGI messages; BadRequest 413 over ``limit`` bytes, 408 if not in by ``timeout`` s."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                raise BadRequest(400, "invalid Content-Length header")
            if int(value) > limit:
                raise BadRequest(413, f"request body of {int(value):,} bytes; the limit is {limit:,}")
    try:
        return await asyncio.wait_for(_read_body(receive, limit), timeout)
    except TimeoutError:
        msg = f"the request body did not arrive within {timeout:g} s; send it with the request"
        raise BadRequest(408, msg) from None


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body over the limit of {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer_request(scope, receive, answer, path: str, limit: int, timeout: float = BODY_TIMEOUT_S):
    """``await answer(body, path)`` for the request's body (every service's ``:predict``): ``(status, JSON bytes)``,
    a refusal of a bad body, a 500 if the model failed (the service goes on); None if the client left."""
    try:
        return await answer(await receive_body(scope, receive, limit, timeout), path)
    except BadRequest as exc:
        return exc.status, refusal(path, exc.status, exc.message)
    except ClientGone:
        return None
    except Exception as exc:
        log.exception("predict failed", extra={"fields": {"event": "predict_failed"}})
        return 500, orjson.dumps({"error": f"prediction failed: {exc!r}"})
