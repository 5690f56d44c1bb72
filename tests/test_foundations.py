"""The layers written out in NumPy, checked against Keras; backpropagation against autodiff; the
sentences written from measured curves and accuracies."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import env

env.setup("tensorflow", seed=0)

import keras  # noqa: E402

from helpers import models, training  # noqa: E402
from helpers.topics import federated, foundations, optim  # noqa: E402


def test_conv2d_relu_and_pooling_match_keras_layers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 9, 11, 3)).astype("float32")
    conv = keras.layers.Conv2D(4, 3, activation="relu")
    pool = keras.layers.MaxPooling2D(2)
    expected = keras.ops.convert_to_numpy(pool(conv(x)))[0]
    kernel, bias = (np.asarray(w) for w in conv.get_weights())
    bias = rng.normal(size=bias.shape)
    conv.set_weights([kernel, bias])
    expected = keras.ops.convert_to_numpy(pool(conv(x)))[0]
    ours = foundations.max_pool2d(foundations.relu(foundations.conv2d(x[0], kernel, bias)))
    assert ours.shape == expected.shape == (3, 4, 4)  # (9-2)//2, (11-2)//2: the odd row and column are dropped
    assert np.max(np.abs(ours - expected)) < 1e-5


def test_conv2d_is_a_weighted_sum_of_patches():
    x = np.arange(16.0).reshape(4, 4, 1)
    kernel = np.zeros((3, 3, 1, 1))
    kernel[1, 1, 0, 0] = 1.0  # picks the patch's centre
    assert np.array_equal(foundations.conv2d(x, kernel)[..., 0], x[1:3, 1:3, 0])
    with pytest.raises(ValueError):
        foundations.conv2d(x, np.zeros((3, 3, 2, 1)))


def test_forward_by_hand_reproduces_the_article_network():
    keras.utils.set_random_seed(0)
    model = models.article_cnn()
    image = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    expected = model.predict(image[None], verbose=0)[0]
    assert np.max(np.abs(foundations.forward_by_hand(model, image) - expected)) < 1e-5
    maps = foundations.layer_outputs(model, image[None], ["relu1", "pool2"])
    assert maps["relu1"].shape == (1, 30, 30, 32) and maps["pool2"].shape == (1, 6, 6, 64)


def test_backpropagation_matches_finite_differences_and_autodiff():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 7)), rng.integers(0, 4, size=12)
    shapes = optim.mlp_shapes(7, 5, 4)
    theta = optim.mlp_init(shapes, seed=0)
    theta[35:40] = 0.1 * rng.normal(size=5)  # biases away from zero, so no ReLU sits on its kink
    loss, grad = optim.mlp_loss_and_grad(theta, X, y, shapes)
    assert loss == pytest.approx(optim.mlp_loss(theta, X, y, shapes))
    assert (
        optim.gradient_check(
            lambda t: optim.mlp_loss(t, X, y, shapes), lambda t: optim.mlp_loss_and_grad(t, X, y, shapes)[1], theta
        )
        < 1e-5
    )
    auto = optim.autodiff_gradient(lambda t: optim.mlp_loss_keras(t, X, y, shapes), theta)
    assert optim.relative_error(grad, auto) < 1e-10
    assert [a.shape for a in optim.mlp_unpack(theta, shapes)] == shapes
    with pytest.raises(ValueError):
        optim.mlp_unpack(theta[:-1], shapes)


def test_a_longer_runs_first_epochs_are_the_shorter_run():
    """Chapter 05's ablation takes a row from the corrected run's first epochs instead of training it again."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 8)).astype("float32"), rng.integers(0, 3, 96)
    x_val, y_val = rng.normal(size=(48, 8)).astype("float32"), rng.integers(0, 3, 48)

    def run(epochs, patience, callbacks=()):
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
        net.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True)
        fit = training.fit(
            net, x, y, epochs=epochs, batch_size=16, validation_data=(x_val, y_val), callbacks=[stop, *callbacks]
        )
        return net, fit

    short, short_fit = run(3, 3)
    first = training.BestOfFirst(3)
    _, long_fit = run(6, 6, [first])
    assert len(long_fit.history["loss"]) == 6
    assert long_fit.first(3).history == short_fit.history
    assert all(np.array_equal(a, b) for a, b in zip(first.weights, short.get_weights()))


def test_keras_array_pipelines_run_without_autotuning_and_give_the_same_batches():
    """env.setup turns off tf.data's autotuner in Keras's pipeline for NumPy arrays (stopping it made
    fit, evaluate and predict wait about 2 s at their end); the batches and their order stay the same."""
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    env.setup("tensorflow", seed=0)  # a second time: the pipeline is wrapped once
    assert ArrayDataAdapter.get_tf_dataset.untuned
    x = np.arange(40, dtype="float32").reshape(20, 2)
    adapter = ArrayDataAdapter(x, np.arange(20), batch_size=8, shuffle=False)
    dataset = adapter.get_tf_dataset()
    assert dataset.options().autotune.enabled is False
    batches = [keras.ops.convert_to_numpy(b[0]) for b in dataset]
    assert [len(b) for b in batches] == [8, 8, 4] and np.array_equal(np.concatenate(batches), x)
    wrapper = ArrayDataAdapter.get_tf_dataset
    wrapped = wrapper.__closure__[wrapper.__code__.co_freevars.index("tuned")].cell_contents
    assert not hasattr(wrapped, "untuned")  # Keras's own, wrapped once however often setup runs


def test_read_curves_writes_what_the_numbers_say():
    overfit = {
        "loss": [2.0, 1.0, 0.5],
        "accuracy": [0.3, 0.6, 0.8],
        "val_loss": [1.5, 1.2, 1.5],
        "val_accuracy": [0.45, 0.55, 0.52],
    }
    read = training.read_curves(overfit)
    assert read["overfits"] and read["best_loss_epoch"] == 2 and read["best_accuracy_epoch"] == 2
    assert "25% above" in read["en"] and "it overfits" in read["en"] and "过拟合了" in read["zh"]
    steady = {"loss": [2.0, 1.5], "accuracy": [0.3, 0.4], "val_loss": [1.6, 1.4], "val_accuracy": [0.38, 0.45]}
    read = training.read_curves(steady)
    assert not read["overfits"] and "below the validation accuracy" in read["en"] and "尚无" in read["zh"]


def test_read_gaps_follows_the_measured_accuracies():
    gaps = federated.read_gaps(central=0.60, iid=0.55, skewed=0.40)
    assert gaps["steps_gap"] == pytest.approx(0.05) and "trail central training by 5.0" in gaps["steps_en"]
    assert "another 15.0 points" in gaps["skew_en"]
    ahead = federated.read_gaps(central=0.50, iid=0.53, skewed=0.531)
    assert "above central training" in ahead["steps_en"] and "within 1 point" in ahead["skew_en"]
    assert "高 3.0" in ahead["steps_zh"]


def test_read_curves_says_whether_later_epochs_helped():
    peaked = {
        "loss": [2.0, 1.0, 0.5],
        "accuracy": [0.3, 0.6, 0.8],
        "val_loss": [1.5, 1.2, 1.3],
        "val_accuracy": [0.45, 0.55, 0.52],
    }
    assert "peaked at epoch 2 of 3" in training.read_curves(peaked)["stop_en"]
    rising = {**peaked, "val_accuracy": [0.45, 0.5, 0.55]}
    assert "still at its best at the last epoch, 3" in training.read_curves(rising)["stop_en"]


def test_transfer_subsets_and_verdict():
    from helpers.topics import transfer

    y = np.repeat(np.arange(10), 30)
    idx = transfer.per_class_subset(y, transfer.VEHICLES, 5, seed=0)
    assert len(idx) == 20 and set(y[idx]) == set(transfer.VEHICLES)
    assert np.array_equal(idx, transfer.per_class_subset(y, transfer.VEHICLES, 5, seed=0))
    with pytest.raises(ValueError):
        transfer.per_class_subset(y, transfer.VEHICLES, 31, seed=0)
    assert "more accuracy" in transfer.verdict({"transfer": 0.6, "scratch": 0.5})["en"]
    assert "less accuracy" in transfer.verdict({"transfer": 0.4, "scratch": 0.5})["en"]
    assert "差别不到" in transfer.verdict({"transfer": 0.5, "scratch": 0.505})["zh"]


@pytest.mark.slow
def test_transfer_runs_on_a_small_subset():
    from helpers import data
    from helpers.topics import transfer

    cifar = data.load_cifar10(400, 200, seed=0)
    result = transfer.transfer(
        cifar, target_per_class=10, source_epochs=1, target_epochs=1, batch_size=32, learning_rate=1e-3, seed=0
    )
    assert result["source_images"] == 240 and result["target_images"] == 40 and result["test_images"] == 80
    assert 0 <= result["transfer"] <= 1 and 0 <= result["scratch"] <= 1 and result["chance"] == 0.25
    assert result["trained_params_transfer"] < result["trained_params_scratch"]
