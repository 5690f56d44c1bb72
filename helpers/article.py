"""The article's section-4 listing, verbatim (a test holds it equal), and what chapter 5 runs and checks it with."""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
import types
import warnings

#: the listing of the article's section 4, exactly as printed there
LISTING = r"""import tensorflow as tf
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Conv2D, MaxPooling2D, Flatten, Dense

# 数据预处理
(x_train, y_train), (x_test, y_test) = tf.keras.datasets.cifar10.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

# 模型构建
model = Sequential([
    Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)),
    MaxPooling2D((2, 2)),
    Conv2D(64, (3, 3), activation='relu'),
    MaxPooling2D((2, 2)),
    Flatten(),
    Dense(64, activation='relu'),
    Dense(10, activation='softmax')
])

# 参数初始化
model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

# 训练
model.fit(x_train, y_train, epochs=10)

# 评估
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
print('\nTest accuracy:', test_acc)
"""

#: the listing's steps: id -> the comment that opens it (the imports before the first comment are a step too)
STEPS = {
    "imports": None,
    "preprocessing": "数据预处理",
    "construction": "模型构建",
    "initialisation": "参数初始化",
    "training": "训练",
    "evaluation": "评估",
}
EPOCHS = 10
BATCH_SIZE = 32  #: the listing passes none to ``fit``: Keras' default
SUBSTITUTIONS = {
    "tf.keras.datasets.cifar10.load_data()": "data.load_cifar10_as_keras(train_size, test_size, seed=seed)",
    f"model.fit(x_train, y_train, epochs={EPOCHS})": "model.fit(x_train, y_train, epochs=epochs)",
}


def runnable(code: str = LISTING) -> str:
    """The listing with the course's two substitutions (verified data, the chapter's ``epochs``)."""
    for old, new in SUBSTITUTIONS.items():
        if old not in code:
            raise ValueError(f"the listing no longer contains {old!r}")
        code = code.replace(old, new)
    return code


class CellLog(list):
    """The source of every cell IPython runs from now on (its ``pre_run_cell`` event: nbval keeps no ``In``)."""

    def __init__(self, shell=None):
        from IPython import get_ipython

        super().__init__()
        if (shell := shell or get_ipython()) is None:
            raise RuntimeError("CellLog records the cells of an IPython kernel; there is none here")
        record = lambda info: self.append(info.raw_cell)
        shell.events.register("pre_run_cell", record)
        self.close = lambda: shell.events.unregister("pre_run_cell", record)


def cells_run(history: list[str]) -> str:
    """The listing as a notebook last ran it: each step's last run cell (from a :class:`CellLog`), joined."""
    firsts = {step: text.splitlines()[0] + "\n" for step, text in steps(runnable()).items()}
    found = {step: s.strip("\n") for s in history for step, first in firsts.items() if s.lstrip("\n").startswith(first)}
    if missing := [step for step in firsts if step not in found]:
        raise ValueError(f"no cell has run the listing's step(s) {missing}")
    return "\n\n".join(found[step] for step in firsts) + "\n"


def diff(before: str, after: str) -> str:
    """The lines ``after`` changes in ``before``, as ``- old`` / ``+ new`` pairs (empty if none)."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---")))


def steps(code: str) -> dict[str, str]:
    """The listing cut at its step comments: step id -> its lines (joined, they give ``code`` back)."""
    parts: dict[str, list[str]] = {step: [] for step in STEPS}
    openers = {f"# {comment}": step for step, comment in STEPS.items() if comment}
    current = "imports"
    for line in code.splitlines(keepends=True):
        current = openers.get(line.strip(), current)
        parts[current].append(line)
    if missing := [step for step, lines in parts.items() if not lines]:
        raise ValueError(f"the listing has no step {missing}")
    return {step: "".join(lines) for step, lines in parts.items()}


def keras_as_tensorflow(force: bool = False) -> dict:
    """Where TensorFlow is not installed (or ``force``), let the listing's ``tensorflow`` imports name Keras 3."""
    if not force and importlib.util.find_spec("tensorflow") is not None:
        return {}
    import keras

    tf = types.ModuleType("tensorflow", "Keras 3 under the name the article's listing imports")
    tf.keras = keras
    aliases = {"tensorflow": tf, "tensorflow.keras": keras, "tensorflow.keras.models": keras.models}
    aliases["tensorflow.keras.layers"] = keras.layers
    replaced = {name: sys.modules.get(name) for name in aliases}
    sys.modules.update(aliases)
    return replaced


def forget_tensorflow_alias(replaced: dict) -> None:
    """Undo :func:`keras_as_tensorflow` (the names a cell already imported keep their values)."""
    sys.modules.update({name: module for name, module in replaced.items() if module is not None})
    for name in [name for name, module in replaced.items() if module is None]:
        sys.modules.pop(name, None)


class WarningLog(list):
    """Warnings raised until :meth:`close`, kept as ``Category: first sentence`` (each once), not on stderr."""

    def __init__(self):
        super().__init__()
        shown, warnings.showwarning = warnings.showwarning, self._record
        self.close = lambda: setattr(warnings, "showwarning", shown)

    def _record(self, message, category, *args, **kwargs):
        if (line := _first_sentence(category, message)) not in self:
            self.append(line)


def _first_sentence(category, message) -> str:
    sentence = re.split(r"(?<=[.?!])\s", " ".join(str(message).split()), maxsplit=1)[0]
    return f"{category.__name__}: {sentence}"


def loss_in_effect(backend: str) -> str:
    """What the listing's loss computes on its softmax output: ``"logits"`` on TensorFlow, else ``"double softmax"``."""
    if backend not in ("tensorflow", "jax", "torch"):
        raise ValueError(f"unknown Keras backend {backend!r}")
    return "logits" if backend == "tensorflow" else "double softmax"


def warning_zh(message: str) -> str:
    """A collected warning in Chinese, from the vocabulary's ``keras_warnings`` (by its start), else as raised."""
    from helpers.words import vocabulary

    return next((zh for start, zh in vocabulary()["keras_warnings"].items() if message.startswith(start)), message)
