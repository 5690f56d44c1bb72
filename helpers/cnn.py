"""The article's CIFAR-10 CNN, its corrected version, and the training and evaluation around them.

Written against Keras 3's backend-neutral API (``import keras``), so the same code trains on
TensorFlow (CPU, CI), JAX (GPU) or PyTorch. Images stay uint8 until the model's first layer
rescales them, which keeps the full training set at 150 MB instead of the article's 1.2 GB of
float64.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np


def article_cnn(logits: bool = False, name: str = "article_cnn") -> keras.Sequential:
    """The article's network: three 3x3 convolutions (32, 64, 64), two max-pools, Dense(64), Dense(10).

    ``logits=False`` keeps the article's softmax output layer; ``logits=True`` ends in a plain
    Dense(10) whose outputs are logits, which is what ``from_logits=True`` expects.
    """
    return keras.Sequential([
        keras.Input(shape=(32, 32, 3), dtype="uint8"),
        keras.layers.Rescaling(1 / 255),  # the article divides by 255.0 in NumPy instead
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation=None if logits else "softmax"),
    ], name=name)


def double_softmax_crossentropy(y_true, y_pred):
    """Cross-entropy with softmax applied to outputs that already are probabilities.

    This is what ``SparseCategoricalCrossentropy(from_logits=True)`` computes on a softmax output
    layer with Keras' JAX and PyTorch backends: ``-log softmax(softmax(z))[y]``. (The TensorFlow
    backend notices the softmax, warns, and uses ``z`` instead.) Written out here so that the
    effect can be measured on any backend.
    """
    log_q = keras.ops.log_softmax(y_pred, axis=-1)
    labels = keras.ops.cast(keras.ops.reshape(y_true, (-1, 1)), "int32")
    return -keras.ops.take_along_axis(log_q, labels, axis=-1)[:, 0]


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch (training steps and validation together)."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


@dataclass
class FitResult:
    """What one training run produced: per-epoch metrics, wall time and throughput."""

    history: dict
    epoch_seconds: list[float]
    n_train: int
    best_epoch: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    @property
    def images_per_second(self) -> float:
        """Training throughput over all epochs after the first (which includes tracing/compiling)."""
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.n_train * len(steady) / sum(steady)


def fit(model: keras.Model, x, y, *, epochs: int, batch_size: int, validation_data=None,
        callbacks=(), verbose: int = 0) -> FitResult:
    """``model.fit`` with an epoch timer; returns a :class:`FitResult`."""
    timer = EpochTimer()
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                        callbacks=[timer, *callbacks], verbose=verbose, shuffle=True)
    return FitResult(history=dict(history.history), epoch_seconds=timer.seconds, n_train=len(x))


def predict_proba(model: keras.Model, x, batch_size: int = 1024, logits: bool = False) -> np.ndarray:
    """Class probabilities (N, 10) as float64; applies softmax when the model outputs logits."""
    out = model.predict(x, batch_size=batch_size, verbose=0)
    out = np.asarray(out, dtype=np.float64)
    if logits:
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out


def accuracy(proba: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(proba.argmax(axis=1) == labels))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    return np.diag(matrix) / matrix.sum(axis=1)


def most_confident_mistakes(proba: np.ndarray, labels: np.ndarray, k: int = 8) -> np.ndarray:
    """Indices of the k wrong predictions made with the highest probability."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = proba[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:k]]
