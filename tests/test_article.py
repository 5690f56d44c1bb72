"""The article's listing: kept verbatim, cut into its steps, substituted visibly, and runnable."""

from __future__ import annotations

import re
import sys
import warnings

import article_runner
import numpy as np
import pytest

from helpers import article, data, env
from helpers.book import notebooks, run

env.setup("tensorflow", seed=0)  # Keras is imported here, not inside a test (importing TensorFlow starts a process)

import keras  # noqa: E402


def test_the_listing_is_the_articles_code_block_verbatim(article_text):
    assert re.search(r"^```python\n(.*?)^```", article_text, flags=re.M | re.S)[1] == article.LISTING


def chapter_cells():
    nb = notebooks.read_source(run.notebook_paths()["cifar10_cnn"].with_suffix(".md"))
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_the_chapters_code_cells_are_the_listing_with_its_two_changes():
    """The CIFAR-10 chapter runs the listing in ordinary code cells, one per step, as printed but for
    the data line and the epochs, and nowhere else keeps a copy of it."""
    sources = chapter_cells()
    assert article.cells_run(sources) == article.runnable()
    for step, text in article.steps(article.runnable()).items():
        assert sum(s.strip("\n") == text.strip("\n") for s in sources) == 1, step
    assert any("article.cells_run(" in s and "assert ran == expected" in s for s in sources)  # the visible check


def test_cells_run_takes_each_steps_last_run_cell():
    steps = [text.strip("\n") for text in article.steps(article.runnable()).values()]
    history = ["x = 1", *steps, "print(2)"]
    assert article.cells_run(history) == article.runnable()
    edited = steps[2].replace("Conv2D(64", "Conv2D(128")
    changed = article.cells_run([*history, edited])  # a reader's edit, run again: the last run counts
    assert "+    Conv2D(128, (3, 3), activation='relu')," in article.diff(article.runnable(), changed)
    with pytest.raises(ValueError, match="construction"):
        article.cells_run([s for s in history if not s.startswith("# 模型构建")])


def test_cell_log_records_what_runs_until_closed():
    class Events:
        def __init__(self):
            self.callbacks = []

        def register(self, name, function):
            assert name == "pre_run_cell"
            self.callbacks.append(function)

        def unregister(self, name, function):
            self.callbacks.remove(function)

    class Shell:
        events = Events()

    shell = Shell()
    log = article.CellLog(shell)
    for source in ("a = 1", "b = 2"):
        for callback in shell.events.callbacks:
            callback(type("Info", (), {"raw_cell": source})())
    log.close()
    assert log == ["a = 1", "b = 2"] and shell.events.callbacks == []


def test_warning_log_keeps_warnings_off_stderr(capsys):
    log = article.WarningLog()
    try:
        warnings.warn("First sentence. Second one.", UserWarning, stacklevel=1)
        warnings.warn("First sentence. Again.", UserWarning, stacklevel=1)
    finally:
        log.close()
    assert log == ["UserWarning: First sentence."]
    assert capsys.readouterr().err == ""


def test_keras_as_tensorflow_gives_the_listings_imports_keras():
    replaced = article.keras_as_tensorflow(force=True)
    try:
        namespace = {}
        exec(article.steps(article.LISTING)["imports"], namespace)
        assert namespace["tf"].keras is keras
        assert namespace["Sequential"] is keras.models.Sequential and namespace["Dense"] is keras.layers.Dense
    finally:
        article.forget_tensorflow_alias(replaced)
    assert all(sys.modules.get(name) is module for name, module in replaced.items())


def test_the_listing_splits_into_its_five_steps_and_back():
    steps = article.steps(article.LISTING)
    assert list(steps) == list(article.STEPS)
    assert "".join(steps.values()) == article.LISTING
    assert steps["initialisation"].startswith("# 参数初始化") and "model.compile(" in steps["initialisation"]
    assert "model.fit(x_train, y_train, epochs=10)" in steps["training"]


def test_runnable_changes_only_the_data_source_and_the_epochs():
    changed = article.diff(article.LISTING, article.runnable())
    assert changed.splitlines() == [
        "-(x_train, y_train), (x_test, y_test) = tf.keras.datasets.cifar10.load_data()",
        "+(x_train, y_train), (x_test, y_test) = data.load_cifar10_as_keras(train_size, test_size, seed=seed)",
        "-model.fit(x_train, y_train, epochs=10)",
        "+model.fit(x_train, y_train, epochs=epochs)",
    ]
    with pytest.raises(ValueError):
        article.runnable("print(1)\n")


@pytest.mark.slow
def test_the_verified_loader_returns_what_keras_load_data_returns():
    (x_train, y_train), (x_test, y_test) = data.load_cifar10_as_keras(200, 100, seed=0)
    assert x_train.shape == (200, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (200, 1) and y_train.dtype == np.uint8
    assert x_test.shape == (100, 32, 32, 3) and y_test.shape == (100, 1)
    cifar = data.load_cifar10(200, 100, seed=0)
    assert np.array_equal(x_train, cifar.x_train) and np.array_equal(y_train[:, 0], cifar.y_train)


def test_terminal_keeps_what_a_terminal_shows():
    screen = article_runner.Terminal()
    screen.write("Epoch 1/2\n")
    screen.write("1/3 \x1b[32m━\x1b[0m loss: 2.5")
    screen.write("\b" * 18 + "\r3/3 ━━━ loss: 2.1\n")
    screen.write("done\rDONE\n")
    assert screen.text() == "Epoch 1/2\n3/3 ━━━ loss: 2.1\nDONE"


def test_loss_in_effect_depends_on_the_backend():
    assert article.loss_in_effect("tensorflow") == "logits"
    assert article.loss_in_effect("jax") == article.loss_in_effect("torch") == "double softmax"
    with pytest.raises(ValueError):
        article.loss_in_effect("theano")


@pytest.mark.slow
def test_the_listing_runs_step_by_step_on_a_small_subset():
    keras.utils.set_random_seed(0)
    code = article.runnable()
    ns = article_runner.namespace(train_size=200, test_size=100, seed=0, epochs=1)
    runs = {step: article_runner.run_step(text, ns, step) for step, text in article.steps(code).items()}
    assert ns["model"].count_params() == 167_562
    assert ns["x_train"].dtype == np.float64  # the listing's own division by 255.0
    assert runs["training"].output.startswith("7/7 ") and "\b" not in runs["training"].output  # 200 / 32
    assert any("from_logits=True" in w for w in runs["training"].warnings)
    assert "Test accuracy:" in runs["evaluation"].output
    assert 0 <= ns["test_acc"] <= 1
