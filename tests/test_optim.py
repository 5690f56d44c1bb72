"""helpers.topics.optim and helpers.topics.learning_maths: every gradient checked against finite
differences and against automatic differentiation, the stable losses against overflow, the
learning-rate bound, the optimizers' steps by hand and against Keras, softmax regression against its
Keras twin, the chapter's figures, and the errors on bad values."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before Keras is first imported

from helpers import words  # noqa: E402
from helpers.book import run  # noqa: E402
from helpers.topics import learning_maths, optim  # noqa: E402

FD_TOL = 1e-6  # central differences in float64 with eps = 1e-6


@pytest.fixture(scope="module")
def keras():
    from helpers import env

    with env.native_stderr_silenced():
        import keras
    return keras


# ------------------------------------------------------------------ cases: (name, x, f, grad, keras f)


def _cases():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(6, 3))
    y_bin = rng.integers(0, 2, size=(8, 1)).astype(float)
    labels = rng.integers(0, 5, size=7)
    A = optim.rotated_quadratic((10.0, 1.0)).hessian(None)
    X = rng.normal(size=(9, 4))
    y_sr = rng.integers(0, 3, size=9)

    def k_mse(k, p):
        return k.ops.mean(k.ops.square(p - target))

    def k_bce(k, z):
        return k.ops.mean(k.losses.binary_crossentropy(y_bin, z, from_logits=True))

    def k_ce(k, z):
        return k.ops.mean(k.losses.sparse_categorical_crossentropy(labels, z, from_logits=True))

    def k_quad(k, x):
        return 0.5 * k.ops.sum(x * k.ops.matmul(A, x))

    def k_rosen(k, p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    def k_softreg(k, theta):
        W, b = k.ops.reshape(theta[:12], (4, 3)), theta[12:]
        return k.ops.mean(k.losses.sparse_categorical_crossentropy(y_sr, k.ops.matmul(X, W) + b, from_logits=True))

    quad, rosen = optim.quadratic(A), optim.rosenbrock()
    return [
        ("mse", rng.normal(size=(6, 3)), lambda p: optim.mse(p, target), lambda p: optim.mse_grad(p, target), k_mse),
        (
            "binary cross-entropy",
            3 * rng.normal(size=(8, 1)),
            lambda z: optim.binary_cross_entropy(z, y_bin),
            lambda z: optim.binary_cross_entropy_grad(z, y_bin),
            k_bce,
        ),
        (
            "softmax cross-entropy",
            2 * rng.normal(size=(7, 5)),
            lambda z: optim.softmax_cross_entropy(z, labels),
            lambda z: optim.softmax_cross_entropy_grad(z, labels),
            k_ce,
        ),
        ("quadratic", np.array([-1.5, 2.0]), quad.f, quad.grad, k_quad),
        ("rosenbrock", np.array([-1.2, 1.0]), rosen.f, rosen.grad, k_rosen),
        (
            "softmax regression",
            0.3 * rng.normal(size=15),
            lambda t: optim.softmax_regression_loss_and_grad(t, X, y_sr, 3)[0],
            lambda t: optim.softmax_regression_loss_and_grad(t, X, y_sr, 3)[1],
            k_softreg,
        ),
    ]


CASES = _cases()


@pytest.mark.parametrize("name, x, f, grad, kf", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(name, x, f, grad, kf):
    error = optim.gradient_check(f, grad, x)
    assert error < FD_TOL, f"{name}: max relative error {error:.2e}"


@pytest.mark.parametrize("name, x, f, grad, kf", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_automatic_differentiation(keras, name, x, f, grad, kf):
    auto = optim.autodiff_gradient(lambda t: kf(keras, t), x)
    error = optim.relative_error(grad(x), auto)
    tolerance = 1e-6 if keras.backend.backend() == "jax" else 1e-9  # Keras on JAX takes means in float32
    assert error < tolerance, f"{name}: max relative error {error:.2e} against autodiff"


def test_loss_values_match_keras(keras):
    rng = np.random.default_rng(1)
    z, labels = 3 * rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    zb, yb = 3 * rng.normal(size=(5, 1)), rng.integers(0, 2, size=(5, 1)).astype(float)
    ce = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)))
    bce = float(keras.ops.mean(keras.losses.binary_crossentropy(yb, zb, from_logits=True)))
    assert optim.softmax_cross_entropy(z, labels) == pytest.approx(ce, rel=1e-6)
    assert optim.binary_cross_entropy(zb, yb) == pytest.approx(bce, rel=1e-6)


def test_gradient_check_catches_a_wrong_gradient():
    rosen = optim.rosenbrock()
    wrong = lambda p: rosen.grad(p) * np.array([1.0, 1.01])  # noqa: E731  (1% off in y)
    assert optim.gradient_check(rosen.f, wrong, np.array([-1.2, 1.0])) > 1e-3


def test_numerical_gradient_on_a_subset_of_coordinates():
    f = lambda x: float(np.sum(x**3))  # noqa: E731
    x = np.arange(6.0).reshape(2, 3)
    assert np.allclose(optim.numerical_gradient(f, x, indices=[1, 4]), 3 * x.reshape(-1)[[1, 4]] ** 2, rtol=1e-8)
    assert optim.gradient_check(f, lambda x: 3 * x**2, x, indices=[0, 5]) < FD_TOL


def test_relative_error_is_entrywise_and_safe_at_zero():
    assert optim.relative_error([0.0, 2.0], [0.0, 2.0]) == 0.0
    assert optim.relative_error([1.0, 100.0], [1.1, 100.0]) == pytest.approx(0.1 / 1.1)
    with pytest.raises(ValueError, match="shapes differ"):
        optim.relative_error([1.0], [1.0, 2.0])


# ------------------------------------------------------------------ overflow and the log-sum-exp trick


def test_naive_softmax_overflows_where_the_stable_one_does_not():
    z = np.array([[1000.0, 0.0, -1000.0]])
    p = optim.softmax(z)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0) and p[0, 0] == 1.0
    assert not math.isfinite(optim.naive_softmax_cross_entropy(z, [1]))  # p_1 = 1 / inf = 0: -log 0
    assert optim.softmax_cross_entropy(z, [1]) == pytest.approx(1000.0)  # lse(z) - z_1 = 1000 + log(1 + ...)


def test_naive_cross_entropy_underflows_to_infinity():
    z = np.array([[800.0, 0.0]]) - 800.0  # no overflow, but exp(-800) underflows to 0
    assert optim.naive_softmax_cross_entropy(z, [1]) == math.inf
    assert optim.softmax_cross_entropy(z, [1]) == pytest.approx(800.0)


def test_stable_losses_are_exact_at_extreme_logits():
    assert optim.logsumexp(np.array([1e4, 1e4])) == pytest.approx(1e4 + math.log(2))
    z = np.array([-1000.0, 0.0, 1000.0])
    assert optim.binary_cross_entropy(z, [1.0, 1.0, 0.0]) == pytest.approx((1000 + math.log(2) + 1000) / 3)
    assert np.all(np.isfinite(optim.sigmoid(z))) and optim.sigmoid(np.array(0.0)) == 0.5
    g = optim.softmax_cross_entropy_grad(np.array([[2000.0, 0.0, -1000.0]]), [1])
    assert np.allclose(g, [[1.0, -1.0, 0.0]])  # p - y, finite


def test_keras_from_logits_is_stable_and_from_probabilities_is_clipped(keras):
    z = np.array([[1000.0, 0.0, -1000.0]], dtype="float32")
    from_logits = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([1]), z))
    assert from_logits == pytest.approx(1000.0)
    probs = optim.softmax(z).astype("float32")
    capped = float(keras.losses.SparseCategoricalCrossentropy()(np.array([1]), probs))
    assert capped == pytest.approx(-math.log(keras.config.epsilon()), rel=1e-4)


# ------------------------------------------------------------------ gradient descent and the bound 2/L


def test_learning_rate_bound_on_a_quadratic():
    problem = optim.rotated_quadratic((10.0, 1.0))
    L = problem.smoothness()
    assert L == pytest.approx(10.0)
    x0 = np.array([2.0, 1.0])
    below = optim.descend(problem, x0, optim.GradientDescent(0.95 * 2 / L), 200)
    above = optim.descend(problem, x0, optim.GradientDescent(1.05 * 2 / L), 200)
    assert not below.diverged and below.values[-1] < 1e-8 * below.values[0]
    assert np.all(np.diff(below.values) < 0)  # below the bound the loss falls at every step
    assert above.values[-1] > 1e3 * above.values[0]
    assert optim.descend(problem, x0, optim.GradientDescent(1.05 * 2 / L), 2000).diverged
    for eta in (0.05, 0.15, 0.21):
        path = optim.descend(problem, x0, optim.GradientDescent(eta), 30)
        assert path.values[-1] == pytest.approx(optim.quadratic_gd_value(problem.hessian(None), x0, eta, 30), rel=1e-9)


def test_rosenbrock_minimum_and_curvature():
    r = optim.rosenbrock()
    assert r.f(r.minimum) == 0.0 and np.allclose(r.grad(r.minimum), 0)
    assert r.smoothness() == pytest.approx(
        501 + math.sqrt(501**2 - 400), rel=1e-12
    )  # eigenvalues of [[802,-400],[-400,200]]


def test_gradient_descent_step():
    assert np.allclose(optim.GradientDescent(0.1).step(np.array([1.0, 2.0]), np.array([10.0, -10.0])), [0.0, 3.0])


def test_momentum_steps_by_hand():
    # f(x) = x^2 / 2, gradient x; eta = 0.1, beta = 0.9, from x = 1
    opt = optim.Momentum(0.1, beta=0.9)
    x = np.array([1.0])
    xs = []
    for _ in range(3):
        x = opt.step(x, x)
        xs.append(float(x[0]))
    # v1 = -0.1,   x1 = 0.9
    # v2 = 0.9 * -0.1 - 0.1 * 0.9 = -0.18,   x2 = 0.72
    # v3 = 0.9 * -0.18 - 0.1 * 0.72 = -0.234,   x3 = 0.486
    assert xs == pytest.approx([0.9, 0.72, 0.486], rel=1e-12)


def test_adam_steps_by_hand():
    opt = optim.Adam(0.1)  # beta1 = 0.9, beta2 = 0.999, eps = 1e-8
    x1 = opt.step(np.array([1.0]), np.array([0.5]))
    # first step: m_hat = g, v_hat = g^2, so the step is eta * g / (|g| + eps): eta * sign(g)
    assert x1[0] == pytest.approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-14)
    x2 = opt.step(x1, np.array([-1.0]))
    m2 = 0.9 * 0.05 + 0.1 * -1.0  # m1 = 0.1 * 0.5 = 0.05
    v2 = 0.999 * 0.00025 + 0.001 * 1.0  # v1 = 0.001 * 0.25
    expected = x1[0] - 0.1 * (m2 / (1 - 0.9**2)) / (math.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    assert x2[0] == pytest.approx(expected, rel=1e-14)
    # the same step with the numbers worked out by hand (eps neglected: it changes the 8th digit)
    assert x2[0] - x1[0] == pytest.approx(0.1 * 0.055 / 0.19 / math.sqrt(0.00124975 / 0.001999), rel=1e-7)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_optimizers_match_keras(keras, name):
    grads = [np.array([0.5, -2.0]), np.array([-1.0, 0.3]), np.array([0.2, 0.2]), np.array([4.0, -0.1])]
    ours = optim.make_optimizer(name, 0.05)
    theirs = {
        "sgd": keras.optimizers.SGD(0.05),
        "momentum": keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": keras.optimizers.Adam(0.05, epsilon=1e-12),
    }[name]
    x = np.array([1.0, -1.0])
    var = keras.Variable(x.astype("float32"))
    for g in grads:
        x = ours.step(x, g)
        theirs.apply([keras.ops.convert_to_tensor(g.astype("float32"))], [var])
    assert np.allclose(x, keras.ops.convert_to_numpy(var.value), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ softmax regression


def _toy_classification(n=240, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = rng.integers(0, k, size=n)
    X = (centres[y] + rng.normal(size=(n, d))).astype("float32")
    return X, y


def test_softmax_regression_learns_and_matches_keras(keras):
    X, y = _toy_classification()
    orders = optim.epoch_orders(len(X), 5, seed=0)
    ours = optim.train_softmax_regression(X, y, 4, optim.make_optimizer("sgd", 0.1), orders, batch_size=32)
    assert ours.epoch_loss[-1] < ours.epoch_loss[0] < math.log(4) + 1e-9  # zero weights start at log K
    assert ours.accuracy(X, y) > 0.8
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(4, kernel_initializer="zeros")])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    losses = [
        model.fit(X[o], y[o], batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][0] for o in orders
    ]
    W, b = model.layers[0].get_weights()
    assert np.allclose(W, ours.W, atol=1e-5) and np.allclose(b, ours.b, atol=1e-5)
    assert np.allclose(losses, ours.epoch_loss, rtol=1e-5)


def test_epoch_orders_are_seeded_permutations():
    a, b = optim.epoch_orders(10, 3, seed=1), optim.epoch_orders(10, 3, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert all(sorted(p) == list(range(10)) for p in a)
    assert not np.array_equal(a[0], a[1])


def test_gradient_spread_and_minibatch_noise():
    X, y = _toy_classification(n=60, d=5, k=3)
    theta = 0.1 * np.random.default_rng(2).normal(size=5 * 3 + 3)
    g, trace = learning_maths.gradient_spread(theta, X, y, 3, chunk=16)
    per_example = np.array(
        [optim.softmax_regression_loss_and_grad(theta, X[i : i + 1], y[i : i + 1], 3)[1] for i in range(60)]
    )
    assert np.allclose(g, per_example.mean(axis=0))
    assert trace == pytest.approx(np.mean(np.sum((per_example - g) ** 2, axis=1)), rel=1e-10)
    noise = learning_maths.minibatch_noise(theta, X, y, 3, g, batch_size=8, draws=4000, rng=np.random.default_rng(0))
    assert noise == pytest.approx(trace / 8, rel=0.1)  # E|g_B - g|^2 = tr(Sigma) / B


def test_check_problems_carry_the_right_gradients(keras):
    X, y = _toy_classification(n=12, d=5, k=3)
    problems = learning_maths.check_problems(X, y, 3, 10.0, np.random.default_rng(0))
    assert all(words.zh(name, "learning_maths") for name in problems)
    for name, (x, f, grad, f_keras) in problems.items():
        assert optim.gradient_check(f, grad, x) < 1e-5, name
        assert optim.relative_error(grad(x), optim.autodiff_gradient(f_keras, x)) < 1e-4, name


def test_chapter_figures_are_drawn_in_each_language():
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    quad, rosen = optim.rotated_quadratic((10.0, 1.0)), optim.rosenbrock()
    A, L, x0 = quad.hessian(None), quad.smoothness(), np.array([-4.0, 2.0])
    paths = {r: optim.descend(quad, x0, optim.GradientDescent(r * 2 / L), 5) for r in (0.5, 1.1)}
    rb = {
        r: optim.descend(rosen, np.array([-1.2, 1.0]), optim.GradientDescent(r * 2 / rosen.smoothness()), 20)
        for r in (0.5, 1.3)
    }
    rates = np.array([1e-4, 1e-3])
    sweep = {
        n: [optim.descend(rosen, np.array([-1.2, 1.0]), optim.make_optimizer(n, lr), 20) for lr in rates]
        for n in ("sgd", "momentum", "adam")
    }
    best = {n: (float(rates[0]), runs[0]) for n, runs in sweep.items()}
    for lang in ("en", "zh"):
        figures = [
            learning_maths.plot_fd_errors(np.array([1e-6, 1e-4]), {"Rosenbrock": [1e-8, 1e-6]}, 1e-6, lang),
            learning_maths.plot_quadratic_paths(quad, paths, 5, lang),
            learning_maths.plot_quadratic_sweep(A, x0, paths, np.array([0.5, 1.1]), np.array([1.0, 2.0]), 0.9, 5, lang),
            learning_maths.plot_rosenbrock(rosen, rb, lang),
            learning_maths.plot_optimizer_sweep(rosen, rates, sweep, best, rosen.smoothness(), 20, 0.9, lang),
            learning_maths.plot_epoch_losses([2.0, 1.9], [2.0, 1.9], 10, "jax", "momentum", 0.01, 0.9, lang),
        ]
        for fig in figures:
            text = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
            assert any("\u4e00" <= ch <= "\u9fff" for ch in text) == (lang == "zh"), text
            plt.close(fig)
    # matplotlib's mathtext has no Chinese glyphs: a Chinese label must not mix in $...$
    for zh in words.vocabulary()["learning_maths"].values():
        assert "$" not in zh or not any("\u4e00" <= ch <= "\u9fff" for ch in zh), zh


# ------------------------------------------------------------------ bad values stop with a clear error


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: optim.make_optimizer("rmsprop", 0.1), "unknown optimizer 'rmsprop'"),
        (lambda: optim.make_optimizer("sgd", -0.1), "learning_rate must be a positive number"),
        (lambda: optim.GradientDescent(0.0), "learning_rate must be a positive number"),
        (lambda: optim.GradientDescent(float("nan")), "learning_rate must be a positive number"),
        (lambda: optim.Momentum(0.1, beta=1.0), r"beta \(momentum\) must be in \[0, 1\)"),
        (lambda: optim.Adam(0.1, beta2=-0.5), r"beta2 must be in \[0, 1\)"),
        (lambda: optim.numerical_gradient(lambda x: 0.0, np.zeros(2), eps=0), "eps must be positive"),
        (lambda: optim.descend(optim.rosenbrock(), [0, 0], optim.GradientDescent(0.1), -1), "non-negative integer"),
        (lambda: optim.quadratic([[1.0, 0.0], [0.0, -1.0]]), "positive definite"),
        (lambda: optim.quadratic([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
        (
            lambda: optim.train_softmax_regression(
                np.zeros((4, 2)), np.zeros(4, int), 2, optim.GradientDescent(0.1), [np.arange(4)], 0
            ),
            "batch_size",
        ),
    ],
)
def test_bad_values_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_runner_stops_a_negative_learning_rate_before_any_kernel(tmp_path, capsys):
    code = run.main(
        ["--profile", "ci", "--only", "learning_maths", "-p", "learning_rate=-0.1", "--output-dir", str(tmp_path)]
    )
    assert code == 2
    assert "parameter 'learning_rate' = -0.1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
