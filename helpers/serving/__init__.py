"""Serve an image classifier over HTTP with TensorFlow Serving's REST API and dynamic batching.

    python -m helpers.serving --model build/executed/cpu/artifacts/cifar10_served.keras --port 8501
    curl -s -X POST localhost:8501/v1/models/cifar10:predict -d '{"instances": [[[[0,0,0], ...]]]}'

Modules: ``protocol`` (request format, limits, refusals), ``model`` (export, load, predict), ``batcher``
(dynamic batching), ``app`` (the ASGI application and server), ``service`` (it as a subprocess),
``loadtest`` (the client side), ``experiments`` (chapter 07's measurements); on Ray Serve: ``ray_serve``,
``ray_cluster`` and ``ray_experiments``. Importing this package does not import Ray.
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
