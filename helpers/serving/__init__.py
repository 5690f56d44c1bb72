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
``--max-batch-size`` images (``--no-batching`` runs each request alone). Bad input gets a 4xx with
``{"error": "..."}``; logs are JSON lines on stderr; SIGTERM or SIGINT stops accepting connections,
answers the requests in flight, then exits.

The package, by role: :mod:`~helpers.serving.protocol` (the request format, limits, refusals),
:mod:`~helpers.serving.model` (export, load, predict), :mod:`~helpers.serving.batcher` (dynamic
batching), :mod:`~helpers.serving.app` (the ASGI application and the server),
:mod:`~helpers.serving.service` (the service as a subprocess), :mod:`~helpers.serving.loadtest`
(the client side). The same service on Ray Serve: :mod:`~helpers.serving.ray_serve` (the
deployment), :mod:`~helpers.serving.ray_cluster` (a cluster of several nodes on this machine) and
:mod:`~helpers.serving.ray_experiments`; importing this package does not import Ray.
"""

from helpers.serving.batcher import Batcher
from helpers.serving.model import (
    Predictor,
    export,
    model_to_serve,
    seeded_article_cnn,
    train_article_cnn,
    with_preprocessing,
)
from helpers.serving.protocol import BadRequest, decode_predict_request
from helpers.serving.service import Service, running_service

__all__ = [
    "BadRequest",
    "Batcher",
    "Predictor",
    "Service",
    "decode_predict_request",
    "export",
    "model_to_serve",
    "running_service",
    "seeded_article_cnn",
    "train_article_cnn",
    "with_preprocessing",
]
