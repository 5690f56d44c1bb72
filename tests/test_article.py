"""The article's listing: kept verbatim, cut into its steps, substituted visibly, and runnable."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import article, data
from helpers.book import notebooks, run


def test_the_listing_is_the_articles_code_block_verbatim():
    text = article.article_text()
    if text is None:
        pytest.skip(f"the article is not beside the repository ({article.ARTICLE_PATH})")
    assert article.listing_in(text) == article.LISTING


def test_the_chapter_shows_the_listing_verbatim_in_both_languages():
    """The CIFAR-10 chapter prints the listing in a Markdown code block, once per language."""
    nb = notebooks.read_source(run.notebook_paths()["cifar10_cnn"].with_suffix(".md"))
    shown = [article.listing_in(c.source) for c in nb.cells if c.cell_type == "markdown" and "```python" in c.source]
    assert shown == [article.LISTING, article.LISTING]


def test_the_listing_splits_into_its_five_steps_and_back():
    steps = article.steps(article.LISTING)
    assert list(steps) == [step for step, _, _ in article.STEPS]
    assert "".join(steps.values()) == article.LISTING
    assert steps["initialisation"].startswith("# 参数初始化") and "model.compile(" in steps["initialisation"]
    assert "model.fit(x_train, y_train, epochs=10)" in steps["training"]


def test_runnable_changes_only_the_data_source_at_ten_epochs():
    changed = article.diff(article.LISTING, article.runnable())
    assert changed.splitlines() == [
        "-(x_train, y_train), (x_test, y_test) = tf.keras.datasets.cifar10.load_data()",
        "+(x_train, y_train), (x_test, y_test) = data.load_cifar10_as_keras(train_size, test_size, seed=seed)",
    ]
    assert "+model.fit(x_train, y_train, epochs=2)" in article.diff(article.LISTING, article.runnable(epochs=2))
    other = article.runnable(backend="jax")
    assert "tensorflow" not in other and "tf." not in other and "import keras\n" in other
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
    screen = article.Terminal()
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
    from helpers import env

    env.setup("tensorflow", seed=0)
    code = article.runnable(epochs=1)
    ns = article.namespace(train_size=200, test_size=100, seed=0)
    runs = {step: article.run_step(text, ns, step) for step, text in article.steps(code).items()}
    assert ns["model"].count_params() == 167_562
    assert ns["x_train"].dtype == np.float64  # the listing's own division by 255.0
    assert runs["training"].output.startswith("7/7 ") and "\b" not in runs["training"].output  # 200 / 32
    assert any("from_logits=True" in w for w in runs["training"].warnings)
    assert "Test accuracy:" in runs["evaluation"].output
    assert 0 <= ns["test_acc"] <= 1
