"""Training and evaluating the course's classifiers in backend-neutral Keras 3: timed ``fit``,
probabilities, accuracy, confusion matrices, and the article's double-softmax loss written out."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np


def double_softmax_crossentropy(y_true, y_pred):
    """``-log softmax(softmax(z))[y]``: what ``SparseCategoricalCrossentropy(from_logits=True)`` computes on a
    softmax output with Keras' JAX and PyTorch backends, written out to measure it on any backend."""
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

    @property
    def seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    @property
    def images_per_second(self) -> float:
        """Training throughput over all epochs after the first (which includes tracing/compiling)."""
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.n_train * len(steady) / sum(steady)


def fit(
    model: keras.Model, x, y, *, epochs: int, batch_size: int, validation_data=None, callbacks=(), verbose: int = 0
) -> FitResult:
    """``model.fit`` with an epoch timer; returns a :class:`FitResult`."""
    timer = EpochTimer()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation_data,
        callbacks=[timer, *callbacks],
        verbose=verbose,
        shuffle=True,
    )
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


def read_curves(history: dict, rise_tolerance: float = 0.05) -> dict:
    """What a Keras history's learning curves say, as numbers and sentences in each language.

    The epochs of the lowest validation loss and best validation accuracy, the last validation loss's
    rise above its minimum (overfitting beyond ``rise_tolerance``) and the last train-validation gap;
    ``en``/``zh`` describe the curves, ``stop_en``/``stop_zh`` whether the later epochs helped.
    """
    val_loss = np.asarray(history["val_loss"], dtype=float)
    gap = float(history["accuracy"][-1] - history["val_accuracy"][-1])
    best = int(np.argmin(val_loss)) + 1
    rise = float(val_loss[-1] / val_loss.min() - 1)
    overfits = rise > rise_tolerance
    above_en, above_zh = ("above", "高") if gap >= 0 else ("below", "低")
    loss_en = (
        f"the validation loss is lowest after epoch {best} and ends {rise:.0%} above that value"
        if overfits
        else f"the validation loss ends within {rise_tolerance:.0%} of its lowest value (epoch {best})"
    )
    loss_zh = (
        f"验证损失在第 {best} 个轮次后最低，最终比该值高 {rise:.0%}"
        if overfits
        else f"验证损失最终与其最低值（第 {best} 个轮次）相差不到 {rise_tolerance:.0%}"
    )
    n, best_acc = len(val_loss), int(np.argmax(history["val_accuracy"])) + 1
    if best_acc < n:
        stop_en = (
            f"the validation accuracy peaked at epoch {best_acc} of {n}, so the epochs after it added "
            "nothing a validation set could see"
        )
        stop_zh = f"验证准确率在第 {best_acc} 个轮次（共 {n} 个）达到最高，之后的轮次没有带来验证集能看到的任何提升"
    else:
        stop_en = (
            f"the validation accuracy was still at its best at the last epoch, {n}, so more epochs might have helped"
        )
        stop_zh = f"验证准确率在最后一个轮次（第 {n} 个）仍是最高，所以更多的轮次也许还有帮助"
    verdict_en = "it overfits" if overfits else "no sign of overfitting yet"
    verdict_zh = "它过拟合了" if overfits else "尚无过拟合的迹象"
    return {
        "best_loss_epoch": best,
        "best_accuracy_epoch": best_acc,
        "loss_rise": rise,
        "gap": gap,
        "overfits": overfits,
        "en": f"{loss_en}, and the training accuracy ends {abs(gap):.1%} {above_en} the validation accuracy: "
        f"{verdict_en}",
        "zh": f"{loss_zh}，训练准确率最终比验证准确率{above_zh} {abs(gap):.1%}：{verdict_zh}",
        "stop_en": stop_en,
        "stop_zh": stop_zh,
    }


#: a Keras history's columns, as each language's pages name them
HISTORY_COLUMNS = {
    "loss": ("training loss", "训练损失"),
    "accuracy": ("training accuracy", "训练准确率"),
    "val_loss": ("validation loss", "验证损失"),
    "val_accuracy": ("validation accuracy", "验证准确率"),
}


def show_history(history: dict) -> None:
    """A Keras history as a table in each language: one row per epoch, losses to three decimals, accuracies
    in per cent."""
    import pandas as pd

    from helpers import show

    names = {HISTORY_COLUMNS[c]: c for c in HISTORY_COLUMNS if c in history}
    frame = pd.DataFrame({en: history[c] for (en, _), c in names.items()})
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    show.table(
        frame,
        dict(names.keys()),
        formats={en: "{:.1%}" if "accuracy" in c else "{:.3f}" for (en, _), c in names.items()},
        index_name={"en": "epoch", "zh": "轮次"},
    )
