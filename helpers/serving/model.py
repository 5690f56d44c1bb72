"""The served model: exported with its preprocessing, loaded, and called on uint8 images."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np

from helpers.data import IMAGE_SHAPE
from helpers.env import native_stderr_silenced
from helpers.serving.protocol import ServingError


def with_preprocessing(model, name: str = "served_cnn"):
    """Wrap a model on float images in [0, 1] so that it takes raw uint8 pixels (divides by 255)."""
    import keras

    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")
    scaled = keras.layers.Rescaling(1 / 255, name="to_unit_range")(inputs)
    return keras.Model(inputs, model(scaled), name=name)


def seeded_article_cnn():
    """The article's CNN, untrained (seeded by the caller), taking uint8 pixels: where only its cost matters."""
    import keras

    from helpers import models

    base = keras.Sequential([keras.Input(shape=IMAGE_SHAPE), *models.article_cnn(logits=True).layers[1:]])
    return with_preprocessing(base)


def export(model, directory: Path | str, stem: str = "cifar10_served") -> dict[str, Path | None]:
    """Write the uint8-input model as ``<stem>.keras`` and, with TensorFlow, a SavedModel ``<stem>/1`` (the numbered
    version folder TensorFlow Serving loads); the paths (``saved_model`` None without TensorFlow)."""
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


def model_to_serve(x_train, y_train, x_test, y_test, epochs: int, seed: int, notebook: str = "serving"):
    """``(model, record)``: the stronger-CNN chapter's model and record if written; else one trained here."""
    import keras

    from helpers.artifacts import artifact

    path, record_path = artifact("cifar10_model.keras"), artifact("cifar10_model.json")
    if path.exists() and record_path.exists():
        return keras.saving.load_model(path), json.loads(record_path.read_text())
    model, accuracy = train_article_cnn(x_train, y_train, x_test, y_test, epochs, seed)
    model.save(path)
    record = {"test_accuracy": accuracy, "notebook": notebook, "train_images": len(x_train)}
    record |= {"test_images": len(x_test), "epochs": epochs}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return model, record


def train_article_cnn(x_train, y_train, x_test, y_test, epochs: int, seed: int, batch_size: int = 128):
    """The corrected article CNN (ten logits, float images in [0, 1]) trained briefly; ``(model, test accuracy)``."""
    import keras

    from helpers import models

    keras.utils.set_random_seed(seed)
    model = models.core_of(models.article_cnn(logits=True, name="article_cnn_logits"))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    x = np.asarray(x_train, np.float32) / 255
    model.fit(x, y_train, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    logits = model.predict(np.asarray(x_test, np.float32) / 255, batch_size=1024, verbose=0)
    return model, float(np.mean(logits.argmax(axis=1) == y_test))


class Predictor:
    """Loads a ``.keras`` file or a SavedModel folder (``~``: this user's home); ``predict(uint8 images) -> logits``,
    through the SavedModel's ``serve`` endpoint or a compiled function of the Keras model; one caller at a time."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()  # "~/models/...": the same config for every node's own user
        if not self.path.exists():
            raise ServingError(f"no model at {self.path}")
        if self.path.is_dir():
            import tensorflow as tf

            self.kind, self._loaded = "SavedModel", (loaded := tf.saved_model.load(str(self.path)))  # keeps it alive
            self._call = lambda x: loaded.serve(tf.constant(x)).numpy()
        else:
            import keras

            self.kind, self.model = "Keras", (model := keras.saving.load_model(self.path, compile=False))
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                fn = tf.function(
                    lambda x: model(x, training=False),
                    reduce_retracing=True,
                    input_signature=[tf.TensorSpec((None, *IMAGE_SHAPE), tf.uint8)],
                )
                self._call = lambda x: fn(tf.constant(x)).numpy()
            else:
                self._call = lambda x: np.asarray(model.predict_on_batch(x))
        self.n_outputs = int(self.predict(np.zeros((1, *IMAGE_SHAPE), np.uint8)).shape[1])  # traces the function once

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(np.ascontiguousarray(images, dtype=np.uint8)), dtype=np.float32)
