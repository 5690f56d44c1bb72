"""Serve an image classifier over HTTP with TensorFlow Serving's REST API and dynamic batching
(``python -m helpers.serving --model FILE``), and the same service on Ray Serve (``ray_*``: not imported here)."""

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
