"""Training and evaluating the course's classifiers in Keras 3."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from helpers import words
from helpers.words import LANGS


def double_softmax_crossentropy(y_true, y_pred):
    """``-log softmax(softmax(z))[y]``: the listing's loss on JAX and PyTorch, written out for any backend."""
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


class BestOfFirst(keras.callbacks.Callback):
    """Keeps the weights of the best ``val_accuracy`` among the first ``epochs``: what a run stopped there keeps with
    ``EarlyStopping(restore_best_weights=True)`` (with one seed, a longer run's first epochs *are* that run)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs, self.best, self.weights = epochs, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = logs["val_accuracy"]
        if epoch < self.epochs and (self.best is None or value > self.best):  # the first of equal bests, as Keras
            self.best, self.weights = value, self.model.get_weights()


@dataclass
class FitResult:
    """What one training run produced: per-epoch metrics and wall times, and the throughput they give."""

    history: dict
    epoch_seconds: list[float]
    n_train: int

    @property
    def seconds(self) -> float:
        return sum(self.epoch_seconds)

    @property
    def images_per_second(self) -> float:
        """Over the epochs after the first (which includes tracing and compiling)."""
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.n_train * len(steady) / sum(steady)

    def first(self, epochs: int) -> FitResult:
        """The record of this run's first ``epochs`` epochs: what a run stopped there recorded."""
        history = {name: values[:epochs] for name, values in self.history.items()}
        return FitResult(history, self.epoch_seconds[:epochs], self.n_train)


def fit(model: keras.Model, x, y, *, epochs: int, batch_size: int, callbacks=(), **kwargs) -> FitResult:
    """``model.fit`` (shuffled, silent unless ``verbose`` is given) with an epoch timer."""
    timer = EpochTimer()
    kwargs = {"verbose": 0, "shuffle": True, **kwargs}
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=[timer, *callbacks], **kwargs)
    return FitResult(dict(history.history), timer.seconds, len(x))


def predict_proba(model: keras.Model, x, batch_size: int = 1024, logits: bool = False) -> np.ndarray:
    """Class probabilities (N, 10) as float64; applies softmax when the model outputs logits."""
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if logits:
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out


def accuracy(proba: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(proba.argmax(axis=1) == labels))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts of the 10 classes: row = true class, column = predicted class."""
    return np.bincount(np.asarray(labels) * 10 + predicted, minlength=100).reshape(10, 10).astype(np.int64)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    return np.diag(matrix) / matrix.sum(axis=1)


def most_confident_mistakes(proba: np.ndarray, labels: np.ndarray, k: int = 8) -> np.ndarray:
    """Indices of the k wrong predictions made with the highest probability."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-proba[wrong, predicted[wrong]], kind="stable")[:k]]


def read_curves(history: dict, rise_tolerance: float = 0.05) -> dict:
    """What a Keras history's curves say, as numbers and sentences (``en``, ``zh``, ``stop_en``, ``stop_zh``)."""
    val_loss = np.asarray(history["val_loss"], dtype=float)
    gap = float(history["accuracy"][-1] - history["val_accuracy"][-1])
    best, n, best_acc = int(np.argmin(val_loss)) + 1, len(val_loss), int(np.argmax(history["val_accuracy"])) + 1
    rise = float(val_loss[-1] / val_loss.min() - 1)
    out = {"best_loss_epoch": best, "best_accuracy_epoch": best_acc, "loss_rise": rise, "gap": gap}
    out["overfits"] = overfits = rise > rise_tolerance
    values = {"best": best, "rise": rise, "tolerance": rise_tolerance, "best_acc": best_acc, "n": n}
    for lang in LANGS:
        w = lambda term, **v: words.in_lang(term, lang).format(**values, **v)  # noqa: B023 (used at once)
        if overfits:
            loss = w("the validation loss is lowest after epoch {best} and ends {rise:.0%} above that value")
        else:
            loss = w("the validation loss ends within {tolerance:.0%} of its lowest value (epoch {best})")
        verdict = w("it overfits" if overfits else "no sign of overfitting yet")
        sentence = "{loss}, and the training accuracy ends {gap:.1%} {above} the validation accuracy: {verdict}"
        out[lang] = w(sentence, loss=loss, gap=abs(gap), above=w("above" if gap >= 0 else "below"), verdict=verdict)
        out[f"stop_{lang}"] = w(
            "the validation accuracy peaked at epoch {best_acc} of {n}, so the epochs after it added nothing a "
            "validation set could see"
            if best_acc < n
            else "the validation accuracy was still at its best at the last epoch, {n}, so more epochs might have helped"
        )
    return out


#: a Keras history's columns, as the pages name them (terms of the vocabulary)
HISTORY_COLUMNS = {
    "loss": "training loss",
    "accuracy": "training accuracy",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
}


def show_history(history: dict) -> None:
    """A Keras history as a table in each language: a row per epoch, losses to three decimals, accuracies in %."""
    import pandas as pd

    from helpers import show

    names = {c: en for c, en in HISTORY_COLUMNS.items() if c in history}
    frame = pd.DataFrame({names[c]: history[c] for c in names}, index=pd.RangeIndex(1, len(history["loss"]) + 1))
    formats = {en: "{:.1%}" if "accuracy" in c else "{:.3f}" for c, en in names.items()}
    show.table(frame, words.labels(), formats=formats, index_name=dict(zip(LANGS, words.both("epoch"))))
