"""An image classifier served over HTTP (TensorFlow Serving's REST API, dynamic batching); ``ray_*``: on Ray Serve."""

from helpers.serving.batcher import Batcher
from helpers.serving.model import (
    Predictor,
    export,
    model_to_serve,
    seeded_article_cnn,
    train_article_cnn,
    with_preprocessing,
)
from helpers.serving.service import Service, running_service

__all__ = [
    "Batcher",
    "Predictor",
    "Service",
    "export",
    "model_to_serve",
    "running_service",
    "seeded_article_cnn",
    "train_article_cnn",
    "with_preprocessing",
]
