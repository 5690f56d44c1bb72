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

The package, by role: :mod:`~helpers.serving.protocol` (the request format, limits, refusals),
:mod:`~helpers.serving.model` (export, load, predict), :mod:`~helpers.serving.batcher` (dynamic
batching), :mod:`~helpers.serving.app` (the ASGI application and the server),
:mod:`~helpers.serving.service` (the service as a subprocess), :mod:`~helpers.serving.loadtest`
(the client side: load generator, latency and throughput). The same service on Ray Serve:
:mod:`~helpers.serving.ray_serve` (the deployment), :mod:`~helpers.serving.ray_cluster` (a
cluster of several nodes on this machine) and :mod:`~helpers.serving.ray_experiments` (a node lost
under load, autoscaling); importing this package does not import Ray.
"""

from helpers.serving.app import ServiceOptions, create_app, serve
from helpers.serving.batcher import Batcher, BatchStats
from helpers.serving.model import (
    MODEL_ARTIFACT,
    MODEL_RECORD,
    Predictor,
    export,
    model_to_serve,
    seeded_article_cnn,
    train_article_cnn,
    with_preprocessing,
)
from helpers.serving.protocol import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_NAME,
    IMAGE_BYTES,
    BadRequest,
    ServingError,
    decode_predict_request,
)
from helpers.serving.service import Service, running_service

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_INSTANCES",
    "DEFAULT_NAME",
    "IMAGE_BYTES",
    "MODEL_ARTIFACT",
    "MODEL_RECORD",
    "BadRequest",
    "BatchStats",
    "Batcher",
    "Predictor",
    "Service",
    "ServiceOptions",
    "ServingError",
    "create_app",
    "decode_predict_request",
    "export",
    "model_to_serve",
    "running_service",
    "serve",
    "seeded_article_cnn",
    "train_article_cnn",
    "with_preprocessing",
]
