"""The source article's section-4 listing, kept once, verbatim, and the checks that the chapter runs it as printed.

:data:`LISTING` is the article's code block character for character (``tests/test_article.py``
compares them). :func:`runnable` makes two substitutions (:func:`diff` shows them): the data come
from the verified cache (``helpers.data.load_cifar10_as_keras``, the same arrays as Keras'
unverified download) and ``epochs=10`` becomes the chapter's parameter. :class:`CellLog` and
:func:`cells_run` find the listing among the cells a notebook ran; :func:`keras_as_tensorflow`
lets ``import tensorflow`` give Keras 3 where TensorFlow is not installed; :class:`WarningLog`
keeps warnings off stderr as first sentences.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
import types
import warnings

from helpers.paths import ROOT

#: the article's Markdown source, where it sits beside the repository (absent in a fresh clone)
ARTICLE_PATH = ROOT.parent / "shared" / "article" / "source-article.zh.md"

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
#: the listing's epochs, as printed
EPOCHS = 10
#: the listing's batch size: it passes none, so Keras' default for ``fit``
BATCH_SIZE = 32
LOAD_DATA = "tf.keras.datasets.cifar10.load_data()"
VERIFIED_LOAD = "data.load_cifar10_as_keras(train_size, test_size, seed=seed)"
FIT = f"model.fit(x_train, y_train, epochs={EPOCHS})"
FIT_EPOCHS = "model.fit(x_train, y_train, epochs=epochs)"


def listing_in(markdown: str) -> str:
    """The first ```python block of ``markdown`` (the article's only code block), with a final newline."""
    match = re.search(r"^```python\n(.*?)^```", markdown, flags=re.M | re.S)
    if not match:
        raise ValueError("no ```python block in the text")
    return match.group(1)


def article_text() -> str | None:
    """The article's Markdown when it is beside the repository, else None."""
    return ARTICLE_PATH.read_text(encoding="utf-8") if ARTICLE_PATH.exists() else None


def printed() -> str:
    """The listing as the article prints it: read from the article when it is beside the repository,
    else the verbatim copy :data:`LISTING` (which a test holds equal to the article)."""
    text = article_text()
    return listing_in(text) if text is not None else LISTING


def runnable(code: str = LISTING) -> str:
    """The listing with the course's two substitutions; it expects ``data``, ``train_size``, ``test_size``,
    ``seed`` and ``epochs`` in the namespace it runs in."""
    for needed in (LOAD_DATA, FIT):
        if needed not in code:
            raise ValueError(f"the listing no longer contains {needed!r}")
    return code.replace(LOAD_DATA, VERIFIED_LOAD).replace(FIT, FIT_EPOCHS)


class CellLog(list):
    """The source of every cell IPython runs from now on, in order (from its ``pre_run_cell`` event,
    so also where a cell is not kept in ``In``: nbval runs cells without history)."""

    def __init__(self, shell=None):
        super().__init__()
        if shell is None:
            from IPython import get_ipython

            shell = get_ipython()
        if shell is None:
            raise RuntimeError("CellLog records the cells of an IPython kernel; there is none here")
        self._shell = shell
        shell.events.register("pre_run_cell", self._record)

    def _record(self, info) -> None:
        self.append(info.raw_cell)

    def close(self) -> None:
        self._shell.events.unregister("pre_run_cell", self._record)


def cells_run(history: list[str]) -> str:
    """The listing as a notebook last ran it (from a :class:`CellLog`): for each step, the last cell run that
    starts as that step starts, joined one blank line apart; ``ValueError`` names a step no cell ran."""
    firsts = {step: text.splitlines()[0] for step, text in steps(runnable()).items()}
    found: dict[str, str] = {}
    for source in history:
        for step, first in firsts.items():
            if source.lstrip("\n").startswith(first + "\n"):
                found[step] = source.strip("\n")
    missing = [step for step in firsts if step not in found]
    if missing:
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
    missing = [step for step, lines in parts.items() if not lines]
    if missing:
        raise ValueError(f"the listing has no step {missing}")
    return {step: "".join(lines) for step, lines in parts.items()}


#: the names :func:`keras_as_tensorflow` gives Keras under, when TensorFlow is not installed
TF_NAMES = ("tensorflow", "tensorflow.keras", "tensorflow.keras.models", "tensorflow.keras.layers")


def keras_as_tensorflow(force: bool = False) -> dict:
    """Where TensorFlow is not installed (or ``force``), make ``tensorflow``, ``tensorflow.keras``, ``.models``
    and ``.layers`` name Keras 3 (as in TensorFlow 2.16+). Returns what it replaced in ``sys.modules``
    (empty where TensorFlow is installed), for :func:`forget_tensorflow_alias`."""
    if not force and importlib.util.find_spec("tensorflow") is not None:
        return {}
    import keras

    tf = types.ModuleType("tensorflow", "Keras 3 under the name the article's listing imports")
    tf.keras = keras
    replaced = {name: sys.modules.get(name) for name in TF_NAMES}
    sys.modules.update(zip(TF_NAMES, (tf, keras, keras.models, keras.layers)))
    return replaced


def forget_tensorflow_alias(replaced: dict) -> None:
    """Undo :func:`keras_as_tensorflow` (the names a cell already imported keep their values)."""
    for name, module in replaced.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


class WarningLog(list):
    """Warnings raised while it is open, kept as ``Category: first sentence`` (each once) instead of
    printed on stderr; it stays open across notebook cells until :meth:`close`."""

    def __init__(self):
        super().__init__()
        self._shown = warnings.showwarning
        warnings.showwarning = self._record

    def _record(self, message, category, filename, lineno, file=None, line=None):
        line = _first_sentence(category, message)
        if line not in self:
            self.append(line)

    def close(self) -> None:
        warnings.showwarning = self._shown


def _first_sentence(category, message) -> str:
    sentence = re.split(r"(?<=[.?!])\s", " ".join(str(message).split()), maxsplit=1)[0]
    return f"{category.__name__}: {sentence}"


def loss_in_effect(backend: str) -> str:
    """What ``SparseCategoricalCrossentropy(from_logits=True)`` on the listing's softmax output computes:
    ``"logits"`` on TensorFlow (it finds the pre-softmax values and warns), else ``"double softmax"``."""
    if backend not in ("tensorflow", "jax", "torch"):
        raise ValueError(f"unknown Keras backend {backend!r}")
    return "logits" if backend == "tensorflow" else "double softmax"


def warning_zh(message: str) -> str:
    """A collected warning in Chinese, from the vocabulary's ``keras_warnings`` (matched by its start); as raised
    when not listed."""
    from helpers.words import vocabulary

    return next((zh for start, zh in vocabulary()["keras_warnings"].items() if message.startswith(start)), message)


def show_diff(before: str, after: str) -> None:
    """Show :func:`diff` as code (a unified diff, the same on every page)."""
    from helpers import show

    show.code(diff(before, after))
