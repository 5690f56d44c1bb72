"""Chapters 07-09: scaling-law fit, FedAvg, saliency/Grad-CAM, FLOP counting, backends, parameters."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import artifacts, models
from helpers.topics import federated, scaling

# ------------------------------------------------------------------------------------ scaling law


@pytest.mark.parametrize(
    "alpha, scale, floor, lowest",
    [
        (0.5, 3.0, 0.2, 1e3),  # bends inside the range
        (0.08, 1.5, 0.0, 1e3),  # Kaplan-like: no floor, a straight log-log line
        (1.2, 40.0, 0.05, 10.0),  # steep, bends early
    ],
)
def test_power_law_fit_recovers_known_exponents(alpha, scale, floor, lowest):
    x = np.geomspace(lowest, lowest * 1e4, 9)
    err = floor + scale * x ** (-alpha)
    fit = scaling.fit_power_law(x, err)
    assert fit.exponent == pytest.approx(alpha, rel=0.03)
    assert fit.irreducible == pytest.approx(floor, abs=0.01 * err.min() + 1e-3)
    assert np.allclose(fit.predict(x), err, rtol=0.02)


def test_power_law_fit_without_floor_is_a_log_log_line():
    x = np.array([10.0, 100.0, 1000.0])
    fit = scaling.fit_power_law(x, 2.0 * x**-0.3, irreducible=False)
    assert fit.exponent == pytest.approx(0.3) and fit.scale == pytest.approx(2.0)
    assert fit.irreducible == 0 and math.isinf(fit.bend)


def test_bend_is_where_the_reducible_part_equals_the_floor():
    fit = scaling.PowerLawFit(exponent=0.5, scale=2.0, irreducible=0.1, r2=1.0, n=5)
    assert 2.0 * fit.bend**-0.5 == pytest.approx(0.1)
    assert fit.x_for_error(0.3) == pytest.approx(100.0)  # 0.1 + 2 / sqrt(100)
    assert math.isinf(fit.x_for_error(0.05))


def test_power_law_fit_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="does not fall"):
        scaling.fit_power_law([1, 10, 100, 1000], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="at least"):
        scaling.fit_power_law([1, 10], [0.5, 0.4])
    assert scaling.try_fit([1, 10], [0.5, 0.4]) is None


def test_compute_frontier_keeps_only_runs_no_cheaper_run_beats():
    import pandas as pd

    table = pd.DataFrame({"train_flops": [1, 2, 3, 4], "test_error": [0.5, 0.6, 0.4, 0.45]})
    assert scaling.compute_frontier(table)["train_flops"].tolist() == [1, 3]


# ------------------------------------------------------------------------------------ FLOPs, energy


def test_flop_counter_matches_a_hand_count():
    import keras

    from helpers.topics import compute_cost

    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, (3, 3)),  # out 6x6x4
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    conv_macs = 6 * 6 * 4 * (3 * 3 * 3)
    dense_macs = (6 * 6 * 4) * 5
    assert compute_cost.forward_flops(model) == 2 * (conv_macs + dense_macs)
    assert compute_cost.training_flops(model, 10) == 3 * 10 * 2 * (conv_macs + dense_macs)


def test_article_width_is_the_articles_network():
    # the listing: Conv2D(32) 3x3x3, Conv2D(64) 3x3x32, Dense(64) on 6x6x64, Dense(10)
    expected = (27 * 32 + 32) + (288 * 64 + 64) + (2304 * 64 + 64) + (64 * 10 + 10)
    assert expected == 167_562
    assert models.article_cnn(1.0, logits=True).count_params() == 167_562
    assert models.tutorial_cnn().count_params() == 122_570  # the TensorFlow tutorial's third convolution


def test_width_for_params_inverts_the_sweeps_parameter_count():
    widths = [0.25, 0.5, 1.0, 2.0]
    params = [models.article_cnn(w, logits=True).count_params() for w in widths]
    assert scaling.width_for_params(widths, params, params[2]) == pytest.approx(1.0, rel=0.01)
    assert scaling.width_for_params(widths, params, 4 * params[2]) == pytest.approx(2.0, rel=0.03)
    assert math.isnan(scaling.width_for_params(widths, params, -1.0))
    with pytest.raises(ValueError):
        scaling.width_for_params([1, 1, 2], [1, 1, 4], 3)


def test_energy_and_large_model_arithmetic():
    from helpers.topics import compute_cost

    assert compute_cost.energy_kwh(3600, 1000) == pytest.approx(1.0)
    assert compute_cost.energy_kwh(3600, 1000, pue=1.5) == pytest.approx(1.5)
    cost = compute_cost.large_model_cost(175e9, 300e9, 312e12, 0.5, 400, 1.0)
    assert cost["flops"] == pytest.approx(3.15e23)
    assert cost["accelerator_hours"] == pytest.approx(3.15e23 / 156e12 / 3600)
    with pytest.raises(ValueError):
        compute_cost.energy_kwh(10, 0)


# ------------------------------------------------------------------------------------ FedAvg


def test_weighted_average_is_the_example_weighted_mean():
    a = federated.ClientUpdate([np.array([0.0, 0.0]), np.array(1.0)], 1)
    b = federated.ClientUpdate([np.array([4.0, 8.0]), np.array(5.0)], 3)
    mean = federated.weighted_average([a, b])
    assert np.allclose(mean[0], [3.0, 6.0]) and np.allclose(mean[1], 4.0)
    with pytest.raises(ValueError):
        federated.weighted_average([])


def test_dirichlet_shards_are_disjoint_complete_and_skewed():
    labels = np.repeat(np.arange(10), 100)
    shards = federated.dirichlet_shards(labels, 5, 0.1, seed=0)
    joined = np.concatenate(shards)
    assert len(joined) == len(labels) and len(np.unique(joined)) == len(labels)
    hist = federated.label_histogram(labels, shards)
    skewed = (hist.max(axis=1) / hist.sum(axis=1)).mean()
    iid = federated.label_histogram(labels, federated.dirichlet_shards(labels, 5, float("inf"), seed=0))
    assert skewed > 2 * (iid.max(axis=1) / iid.sum(axis=1)).mean()
    assert [s.tolist() for s in federated.dirichlet_shards(labels, 5, 0.1, seed=0)] == [s.tolist() for s in shards]


def _tiny_task(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=n)
    return x, y


def _compiled(width=0.125):
    import keras

    model = models.article_cnn(width, logits=True)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


@pytest.mark.slow
def test_fedavg_with_one_client_equals_central_training():
    import keras

    x, y = _tiny_task()
    keras.utils.set_random_seed(0)
    central = _compiled()
    central.fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=True)
    keras.utils.set_random_seed(0)
    model = _compiled()
    result = federated.fedavg(model, [federated.Client("only", x, y)], rounds=1, local_epochs=1, batch_size=32)
    for mine, theirs in zip(model.get_weights(), central.get_weights()):
        assert np.allclose(mine, theirs, atol=1e-6)
    assert result.messages == 1


def test_clients_send_only_weights_and_a_count():
    import keras

    x, y = _tiny_task(32)
    keras.utils.set_random_seed(0)
    model = _compiled()
    client = federated.Client("c", x, y)
    update = client.update(model, model.get_weights(), epochs=1, batch_size=32)
    federated.check_message(update, model.get_weights())
    assert set(vars(update)) == {"weights", "num_examples"} and update.num_examples == 32
    public = {k: v for k, v in vars(client).items() if not k.startswith("_")}
    assert not any(isinstance(v, np.ndarray) for v in public.values())
    with pytest.raises(AssertionError, match="not the model's weights"):
        federated.check_message(federated.ClientUpdate([x], 32), model.get_weights())


# ------------------------------------------------------------------------------------ interpretability


def _planted_model():
    """Score of class 0 = max over positions of the first channel: only the brightest spot matters."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(1, (1, 1), use_bias=False, kernel_initializer="ones", name="last_conv"),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(2, kernel_initializer="ones"),
        ]
    )
    return model


def test_grad_cam_and_saliency_highlight_a_planted_feature():
    from helpers.topics import interpret

    images = np.full((2, 32, 32, 3), 20, dtype=np.uint8)
    images[0, 4:8, 20:24] = 250  # a bright patch, top right
    images[1, 24:28, 2:6] = 250  # bottom left
    model = _planted_model()
    cams = interpret.grad_cam(model, images, [0, 0], "last_conv")
    sal = interpret.saliency(model, images, [0, 0])
    assert cams.shape == sal.shape == (2, 32, 32)
    assert cams.min() >= 0 and cams.max() <= 1 and sal.min() >= 0 and sal.max() <= 1
    for k, (rows, cols) in enumerate([(slice(4, 8), slice(20, 24)), (slice(24, 28), slice(2, 6))]):
        inside = np.zeros((32, 32), bool)
        inside[rows, cols] = True
        assert cams[k][inside].mean() > 0.9 and cams[k][~inside].mean() < 0.1
        assert sal[k][inside].max() == pytest.approx(1.0) and sal[k][~inside].max() == 0


def test_grad_cam_names_an_unknown_layer():
    from helpers.topics import interpret

    with pytest.raises(ValueError, match="no layer 'nope'"):
        interpret.grad_cam(_planted_model(), np.zeros((1, 32, 32, 3)), [0], "nope")


# ------------------------------------------------------------------------------------ backends, results


def test_a_missing_backend_is_reported_not_faked(monkeypatch):
    from helpers.topics import backends

    monkeypatch.setattr(backends, "installed", lambda name: False)
    assert backends.time_backend("jax") == {"backend": "jax", "status": "not installed"}
    with pytest.raises(ValueError, match="unknown backend"):
        backends.time_backend("caffe")


def test_course_results_reads_glued_values_of_the_same_run(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    (run_dir / "artifacts").mkdir(parents=True)
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "profile": "ci",
                "notebooks": {
                    "cifar10_cnn": {
                        "status": "ok",
                        "seconds": 12.5,
                        "metrics": {
                            "corrected_test_acc": "0.7341",
                            "article_params": "'167,562'",
                            "minutes": "8.73418163556671",
                        },
                    },
                    "stronger_cnn": {"status": "failed", "seconds": 3.0, "metrics": {"best": "0.9"}},
                },
            }
        )
    )
    monkeypatch.setenv("MAAS_ARTIFACT_DIR", str(run_dir / "artifacts"))
    assert artifacts.metric("cifar10_cnn", "corrected_test_acc") == pytest.approx(0.7341)
    assert artifacts.metric("cifar10_cnn", "article_params") == 167_562
    assert math.isnan(artifacts.metric("stronger_cnn", "best"))  # failed: no values
    assert math.isnan(artifacts.metric("06_missing", "x"))
    assert artifacts.text("06_missing", "x", missing="not run") == "not run"
    assert artifacts.text("cifar10_cnn", "article_params") == "167,562"  # a string as it was shown
    assert artifacts.text("cifar10_cnn", "minutes") == "8.734"  # a raw float, to 4 significant digits
    assert artifacts.notebook_seconds() == {"cifar10_cnn": 12.5}
    monkeypatch.delenv("MAAS_ARTIFACT_DIR")
    monkeypatch.chdir(run_dir)  # as under nbval: the kernel runs in the executed copy's folder
    assert artifacts.run_dir() == run_dir


# ------------------------------------------------------------------------------------ parameters
