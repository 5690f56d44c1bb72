"""The maths of learning in NumPy: losses and their gradients, gradient checks, test functions,
optimizers, softmax regression trained by mini-batch gradient descent, and backpropagation through a
network with one hidden layer.

Every formula of the learning-maths chapter (``notebooks/04_learning_maths.md``) is written here once, in plain
float64 NumPy, so that it can be read beside its derivation and checked two ways: against central
finite differences (:func:`gradient_check`) and against the automatic differentiation of the Keras
backend in use (:func:`autodiff_gradient`).

Conventions: a loss returns a Python float, the *mean* over its examples, and its ``*_grad`` is the
gradient of that mean with respect to the first argument. Class labels are integer indices (as for
Keras' ``SparseCategoricalCrossentropy``); binary targets are 0 or 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------
# Losses and their gradients
# ---------------------------------------------------------------------------------------------


def mse(pred, target) -> float:
    """Mean squared error ``(1/n) sum_i (pred_i - target_i)^2`` over all n entries."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    return float(np.mean((pred - target) ** 2))


def mse_grad(pred, target) -> np.ndarray:
    """Gradient of :func:`mse` with respect to ``pred``: ``2 (pred - target) / n``."""
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    return 2.0 * (pred - target) / pred.size


def sigmoid(z) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``, computed without overflow for any ``z``."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))  # always in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def binary_cross_entropy(logits, target) -> float:
    """Mean binary cross-entropy of logits ``z`` and targets ``y`` in {0, 1}.

    ``-[y log s(z) + (1 - y) log(1 - s(z))]`` simplifies to ``log(1 + e^z) - y z``, evaluated as
    ``max(z, 0) - y z + log1p(exp(-|z|))``, which is exact and finite for every ``z``.
    """
    z, y = np.asarray(logits, dtype=float), np.asarray(target, dtype=float)
    return float(np.mean(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))))


def binary_cross_entropy_grad(logits, target) -> np.ndarray:
    """Gradient of :func:`binary_cross_entropy` with respect to the logits: ``(s(z) - y) / n``."""
    z, y = np.asarray(logits, dtype=float), np.asarray(target, dtype=float)
    return (sigmoid(z) - y) / z.size


def logsumexp(z, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``log sum_k exp(z_k)`` as ``m + log sum_k exp(z_k - m)`` with ``m = max_k z_k`` (no overflow)."""
    z = np.asarray(z, dtype=float)
    m = np.max(z, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(z, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: ``exp(z - logsumexp(z))``."""
    z = np.asarray(z, dtype=float)
    return np.exp(z - logsumexp(z, axis=axis, keepdims=True))


def naive_softmax(z, axis: int = -1) -> np.ndarray:
    """Softmax straight from the definition, ``exp(z) / sum exp(z)``: overflows for large logits.

    Kept only to demonstrate the failure; floating-point warnings are silenced, the result shows it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(np.asarray(z, dtype=float))
        return e / np.sum(e, axis=axis, keepdims=True)


def one_hot(labels, n_classes: int) -> np.ndarray:
    """Integer labels (n,) as rows of the identity, shape (n, n_classes)."""
    labels = np.asarray(labels)
    return (labels[:, None] == np.arange(n_classes)[None, :]).astype(float)


def softmax_cross_entropy(logits, labels) -> float:
    """Mean softmax cross-entropy ``-log softmax(z)_y = logsumexp(z) - z_y`` (stable, from logits)."""
    z = np.asarray(logits, dtype=float)
    labels = np.asarray(labels)
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(z)), labels]))


def softmax_cross_entropy_grad(logits, labels) -> np.ndarray:
    """Gradient of :func:`softmax_cross_entropy` with respect to the logits: ``(p - y) / n``."""
    z = np.asarray(logits, dtype=float)
    return (softmax(z, axis=1) - one_hot(labels, z.shape[1])) / len(z)


def naive_softmax_cross_entropy(logits, labels) -> float:
    """``-log`` of :func:`naive_softmax`'s probability of the label: ``inf`` or ``nan`` when it fails."""
    p = naive_softmax(logits, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(-np.log(p[np.arange(len(p)), np.asarray(labels)])))


# ---------------------------------------------------------------------------------------------
# Checking gradients
# ---------------------------------------------------------------------------------------------


def numerical_gradient(f: Callable[[np.ndarray], float], x, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``.

    ``indices`` (flat positions) limits the work to those coordinates, for large parameter arrays;
    the result then holds only those entries, in that order. Without it, the result has ``x``'s shape.
    """
    if not eps > 0:
        raise ValueError(f"the finite-difference step eps must be positive, got {eps}")
    x = np.array(x, dtype=float)  # a copy: the coordinates are nudged in place
    flat = x.reshape(-1)
    positions = range(flat.size) if indices is None else np.asarray(indices).reshape(-1)
    out = np.empty(len(positions))
    for k, i in enumerate(positions):
        saved = flat[i]
        flat[i] = saved + eps
        up = f(x)
        flat[i] = saved - eps
        down = f(x)
        flat[i] = saved
        out[k] = (up - down) / (2 * eps)
    return out.reshape(x.shape) if indices is None else out


def relative_error(a, b, floor: float = 1e-12) -> float:
    """Largest entry-wise relative error ``|a - b| / max(|a|, |b|, floor)`` (0 when equal).

    ``floor`` keeps entries where both gradients are (nearly) zero from dividing by zero.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    return float(np.max(np.abs(a - b) / scale))


def gradient_check(
    f: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], np.ndarray], x, eps: float = 1e-6, indices=None
) -> float:
    """Maximum relative error between the analytic gradient ``grad(x)`` and central differences of ``f``."""
    x = np.asarray(x, dtype=float)
    analytic = np.asarray(grad(x), dtype=float)
    if indices is not None:
        analytic = analytic.reshape(-1)[np.asarray(indices).reshape(-1)]
    return relative_error(analytic, numerical_gradient(f, x, eps, indices))


def autodiff_gradient(f: Callable, x) -> np.ndarray:
    """Gradient of the scalar ``f`` at ``x`` by the automatic differentiation of Keras' backend.

    ``f`` receives a backend tensor and must be written with ``keras.ops`` (or ``keras.losses``).
    TensorFlow uses ``tf.GradientTape``, JAX ``jax.grad``, PyTorch ``torch.autograd.grad``. The
    computation is in float64 (JAX's 64-bit mode is switched on for the call only), so that a
    comparison measures the formulas rather than float32 rounding; on JAX, Keras still takes some
    means in float32, which limits the agreement to about 1e-8.
    """
    import keras

    backend = keras.backend.backend()
    x = np.asarray(x, dtype=float)
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = f(variable)
        return np.asarray(tape.gradient(value, variable), dtype=float)
    if backend == "jax":
        import jax

        if hasattr(jax, "enable_x64"):  # newer JAX; older releases have it in jax.experimental
            x64 = jax.enable_x64(True)
        else:
            from jax.experimental import enable_x64

            x64 = enable_x64()
        with x64:
            return np.asarray(jax.grad(f)(jax.numpy.asarray(x, dtype="float64")), dtype=float)
    if backend == "torch":
        import torch

        tensor = torch.tensor(x, dtype=torch.float64, device=keras.ops.convert_to_tensor(0.0).device)
        tensor.requires_grad_(True)
        (gradient,) = torch.autograd.grad(f(tensor), tensor)
        return gradient.detach().cpu().numpy().astype(float)
    raise ValueError(f"no automatic differentiation for the Keras backend {backend!r}")


# ---------------------------------------------------------------------------------------------
# Test functions: a quadratic and Rosenbrock's valley
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A function to minimise, with its gradient, Hessian and minimiser."""

    name: str
    f: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    hessian: Callable[[np.ndarray], np.ndarray]
    minimum: np.ndarray

    def smoothness(self, x=None) -> float:
        """Largest Hessian eigenvalue (at the minimiser by default): the L of the bound eta < 2/L."""
        x = self.minimum if x is None else np.asarray(x, dtype=float)
        return float(np.max(np.linalg.eigvalsh(self.hessian(x))))


def quadratic(A) -> Problem:
    """``f(x) = x^T A x / 2`` for a symmetric positive definite ``A``: gradient ``A x``, minimum at 0."""
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.allclose(A, A.T):
        raise ValueError("A must be a symmetric square matrix")
    if np.min(np.linalg.eigvalsh(A)) <= 0:
        raise ValueError("A must be positive definite (all eigenvalues > 0)")
    return Problem(
        "quadratic",
        f=lambda x: float(0.5 * x @ A @ x),
        grad=lambda x: A @ np.asarray(x, dtype=float),
        hessian=lambda x: A,
        minimum=np.zeros(len(A)),
    )


def rotated_quadratic(curvatures=(10.0, 1.0), angle: float = math.pi / 6) -> Problem:
    """A 2-D :func:`quadratic` whose Hessian has eigenvalues ``curvatures``, axes turned by ``angle``."""
    c, s = math.cos(angle), math.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return quadratic(R @ np.diag(np.asarray(curvatures, dtype=float)) @ R.T)


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Problem:
    """Rosenbrock's function ``(a - x)^2 + b (y - x^2)^2``: a curved valley, minimum at ``(a, a^2)``."""

    def f(p):
        x, y = p[0], p[1]
        return float((a - x) ** 2 + b * (y - x**2) ** 2)

    def grad(p):
        x, y = p[0], p[1]
        return np.array([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)])

    def hessian(p):
        x, y = p[0], p[1]
        return np.array([[2 - 4 * b * (y - x**2) + 8 * b * x**2, -4 * b * x], [-4 * b * x, 2 * b]])

    return Problem("rosenbrock", f, grad, hessian, np.array([a, a**2]))


# ---------------------------------------------------------------------------------------------
# Optimizers: plain gradient descent, momentum, Adam
# ---------------------------------------------------------------------------------------------


def _positive(name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _fraction(name: str, value) -> float:
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


class GradientDescent:
    """``x <- x - eta g``."""

    name = "sgd"

    def __init__(self, learning_rate: float):
        self.learning_rate = _positive("learning_rate", learning_rate)

    def step(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return x - self.learning_rate * g


class Momentum(GradientDescent):
    """Polyak's heavy ball: ``v <- beta v - eta g``, ``x <- x + v`` (Keras' ``SGD(momentum=beta)``)."""

    name = "momentum"

    def __init__(self, learning_rate: float, beta: float = 0.9):
        super().__init__(learning_rate)
        self.beta = _fraction("beta (momentum)", beta)
        self.velocity = None

    def step(self, x, g):
        if self.velocity is None:
            self.velocity = np.zeros_like(x, dtype=float)
        self.velocity = self.beta * self.velocity - self.learning_rate * g
        return x + self.velocity


class Adam(GradientDescent):
    """Adam (Kingma and Ba, Algorithm 1): moving averages of ``g`` and ``g^2``, bias-corrected.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``x <- x - eta m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``.
    """

    name = "adam"

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(learning_rate)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = _positive("eps", eps)
        self.m = self.v = None
        self.t = 0

    def step(self, x, g):
        if self.m is None:
            self.m, self.v = np.zeros_like(x, dtype=float), np.zeros_like(x, dtype=float)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return x - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS = {"sgd": GradientDescent, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str, learning_rate: float, **options):
    """A fresh optimizer by name (``"sgd"``, ``"momentum"`` or ``"adam"``); options go to its constructor."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate, **options)


@dataclass
class Path:
    """The iterates of one run: points (steps + 1, d), function values, and whether it blew up."""

    points: np.ndarray
    values: np.ndarray
    diverged: bool

    @property
    def final_value(self) -> float:
        """The last function value; ``inf`` for a run that diverged."""
        return math.inf if self.diverged else float(self.values[-1])


def descend(problem: Problem, x0, optimizer, steps: int, blowup: float = 1e8) -> Path:
    """Run ``steps`` optimizer steps from ``x0``; stop early (``diverged``) if ``|x|`` exceeds ``blowup``."""
    if steps < 0 or int(steps) != steps:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    x = np.asarray(x0, dtype=float)
    points, values = [x], [problem.f(x)]
    diverged = False
    for _ in range(int(steps)):
        x = optimizer.step(x, problem.grad(x))
        if not np.all(np.isfinite(x)) or np.max(np.abs(x)) > blowup:
            diverged = True
            break
        points.append(x)
        values.append(problem.f(x))
    return Path(np.array(points), np.array(values), diverged)


def quadratic_gd_value(A, x0, learning_rate: float, steps: int) -> float:
    """Exact ``f(x_T)`` of gradient descent on ``x^T A x / 2``: each eigen-component shrinks by ``1 - eta lambda``."""
    lam, Q = np.linalg.eigh(np.asarray(A, dtype=float))
    c = Q.T @ np.asarray(x0, dtype=float)
    return float(0.5 * np.sum(lam * c**2 * (1 - learning_rate * lam) ** (2 * steps)))


# ---------------------------------------------------------------------------------------------
# Softmax regression trained by mini-batch gradient descent
# ---------------------------------------------------------------------------------------------


def split_parameters(theta: np.ndarray, n_features: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of the weight matrix W (n_features, n_classes) and bias b (n_classes,) inside ``theta``."""
    if theta.size != n_features * n_classes + n_classes:
        raise ValueError(f"theta has {theta.size} entries, expected {n_features * n_classes + n_classes}")
    return theta[: n_features * n_classes].reshape(n_features, n_classes), theta[n_features * n_classes :]


def softmax_regression_loss_and_grad(theta, X, y, n_classes: int) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of the linear model ``z = X W + b`` on labels ``y``, and its gradient.

    The gradient follows the chain rule through ``z``: with ``dZ = (P - Y) / n`` (the softmax
    cross-entropy gradient), ``dW = X^T dZ`` and ``db`` is the sum of the rows of ``dZ``.
    """
    W, b = split_parameters(np.asarray(theta, dtype=float), X.shape[1], n_classes)
    X = np.asarray(X, dtype=float)
    z = X @ W + b
    dz = softmax_cross_entropy_grad(z, y)
    return softmax_cross_entropy(z, y), np.concatenate([(X.T @ dz).reshape(-1), dz.sum(axis=0)])


def softmax_regression_loss(theta, X, y, n_classes: int) -> float:
    """Mean cross-entropy of the linear model ``z = X W + b`` on labels ``y``."""
    W, b = split_parameters(np.asarray(theta, dtype=float), X.shape[1], n_classes)
    return softmax_cross_entropy(np.asarray(X, dtype=float) @ W + b, y)


def softmax_regression_grad(theta, X, y, n_classes: int) -> np.ndarray:
    """Gradient of :func:`softmax_regression_loss` with respect to ``theta`` (W's entries, then b)."""
    return softmax_regression_loss_and_grad(theta, X, y, n_classes)[1]


# ---------------------------------------------------------------------------------------------
# Backpropagation through a network with one hidden ReLU layer
# ---------------------------------------------------------------------------------------------


def mlp_shapes(n_features: int, n_hidden: int, n_classes: int) -> list[tuple[int, ...]]:
    """Shapes of W1, b1, W2, b2 for ``z = relu(X W1 + b1) W2 + b2``."""
    return [(n_features, n_hidden), (n_hidden,), (n_hidden, n_classes), (n_classes,)]


def mlp_unpack(theta: np.ndarray, shapes) -> list[np.ndarray]:
    """Views of the arrays of ``shapes`` inside the flat vector ``theta``, in order."""
    sizes = [math.prod(shape) for shape in shapes]
    if theta.size != sum(sizes):
        raise ValueError(f"theta has {theta.size} entries, the shapes need {sum(sizes)}")
    ends = np.cumsum(sizes)
    return [theta[end - size : end].reshape(shape) for end, size, shape in zip(ends, sizes, shapes)]


def mlp_pack(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=float).reshape(-1) for a in arrays])


def mlp_init(shapes, seed: int) -> np.ndarray:
    """Glorot-uniform weights and zero biases, packed (Keras' defaults for Dense layers)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in shapes:
        if len(shape) == 2:
            bound = math.sqrt(6 / (shape[0] + shape[1]))
            arrays.append(rng.uniform(-bound, bound, size=shape))
        else:
            arrays.append(np.zeros(shape))
    return mlp_pack(arrays)


def mlp_loss_and_grad(theta, X, y, shapes) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``z = relu(X W1 + b1) W2 + b2`` and its gradient by backpropagation.

    Forward: ``A = X W1 + b1``, ``H = relu(A)``, ``Z = H W2 + b2``. Backward, by the chain rule from
    the output to the input: ``dZ = (P - Y) / n``; ``dW2 = H^T dZ``, ``db2 = sum of dZ's rows``;
    ``dH = dZ W2^T``; ``dA = dH * [A > 0]`` (the ReLU passes a gradient only where it was active);
    ``dW1 = X^T dA``, ``db1 = sum of dA's rows``.
    """
    W1, b1, W2, b2 = mlp_unpack(np.asarray(theta, dtype=float), shapes)
    X = np.asarray(X, dtype=float)
    A = X @ W1 + b1
    H = np.maximum(A, 0.0)
    Z = H @ W2 + b2
    dZ = softmax_cross_entropy_grad(Z, y)
    dH = dZ @ W2.T
    dA = dH * (A > 0)
    grads = [X.T @ dA, dA.sum(axis=0), H.T @ dZ, dZ.sum(axis=0)]
    return softmax_cross_entropy(Z, y), mlp_pack(grads)


def mlp_loss(theta, X, y, shapes) -> float:
    return mlp_loss_and_grad(theta, X, y, shapes)[0]


def mlp_loss_keras(theta, X, y, shapes):
    """The same loss written with ``keras.ops``, for the backend's automatic differentiation."""
    import keras

    K = keras.ops
    sizes = [math.prod(shape) for shape in shapes]
    ends = np.cumsum(sizes)
    W1, b1, W2, b2 = (K.reshape(theta[end - size : end], shape) for end, size, shape in zip(ends, sizes, shapes))
    Z = K.matmul(K.relu(K.matmul(X, W1) + b1), W2) + b2
    return K.mean(keras.losses.sparse_categorical_crossentropy(y, Z, from_logits=True))


def epoch_orders(n: int, epochs: int, seed: int) -> list[np.ndarray]:
    """One seeded random permutation of ``range(n)`` per epoch (shared with the Keras twin)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


@dataclass
class SoftmaxRegression:
    """A trained linear classifier and its per-epoch training loss."""

    W: np.ndarray
    b: np.ndarray
    epoch_loss: list[float] = field(default_factory=list)

    def logits(self, X, batch: int = 4096) -> np.ndarray:
        return np.concatenate(
            [np.asarray(X[i : i + batch], dtype=float) @ self.W + self.b for i in range(0, len(X), batch)]
        )

    def predict(self, X) -> np.ndarray:
        return self.logits(X).argmax(axis=1)

    def accuracy(self, X, y) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))


def train_softmax_regression(X, y, n_classes: int, optimizer, orders, batch_size: int) -> SoftmaxRegression:
    """Mini-batch gradient descent from zero weights, visiting the examples in the given ``orders``.

    Each epoch walks one permutation in consecutive batches of ``batch_size`` (the last one may be
    smaller) and takes one optimizer step per batch on that batch's mean loss. The recorded epoch
    loss is the mean of the batch losses weighted by batch size, as Keras reports it.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    n, d = X.shape
    theta = np.zeros(d * n_classes + n_classes)
    losses = []
    for order in orders:
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss, grad = softmax_regression_loss_and_grad(theta, X[idx], y[idx], n_classes)
            total += loss * len(idx)
            theta = optimizer.step(theta, grad)
        losses.append(total / n)
    W, b = split_parameters(theta, d, n_classes)
    return SoftmaxRegression(W.copy(), b.copy(), losses)


def gradient_spread(theta, X, y, n_classes: int, chunk: int = 2048) -> tuple[np.ndarray, float]:
    """The full-data gradient ``g`` and ``tr(Sigma) = mean_i |g_i - g|^2`` of the per-example gradients.

    For softmax regression the i-th example's gradient is ``x_i r_i^T`` (for W) and ``r_i`` (for b),
    with ``r_i = p_i - y_i``, so ``|g_i|^2 = (|x_i|^2 + 1) |r_i|^2``: no per-example gradient is built.
    """
    W, b = split_parameters(np.asarray(theta, dtype=float), X.shape[1], n_classes)
    total, squares = np.zeros(W.size + b.size), 0.0
    for start in range(0, len(X), chunk):
        xb = np.asarray(X[start : start + chunk], dtype=float)
        r = softmax(xb @ W + b, axis=1) - one_hot(y[start : start + chunk], n_classes)
        total += np.concatenate([(xb.T @ r).reshape(-1), r.sum(axis=0)])
        squares += float(np.sum((np.sum(xb**2, axis=1) + 1) * np.sum(r**2, axis=1)))
    g = total / len(X)
    return g, squares / len(X) - float(g @ g)


def minibatch_noise(theta, X, y, n_classes: int, full_grad, batch_size: int, draws: int, rng) -> float:
    """Mean of ``|g_B - g|^2`` over ``draws`` mini-batches of ``batch_size`` examples drawn with replacement."""
    errors = []
    for idx in rng.integers(0, len(X), size=(draws, batch_size)):
        g_batch = softmax_regression_grad(theta, X[idx], y[idx], n_classes)
        errors.append(float(np.sum((g_batch - full_grad) ** 2)))
    return float(np.mean(errors))


# ---------------------------------------------------------------------------------------------
# The chapter's gradient checks, and its figures (labelled in the reader's language)
# ---------------------------------------------------------------------------------------------

#: each checked function, as a reader reads it on each language's page
CHECK_NAMES = {
    "en": {
        "mean squared error": "mean squared error",
        "binary cross-entropy": "binary cross-entropy",
        "softmax cross-entropy": "softmax cross-entropy",
        "quadratic": "quadratic",
        "Rosenbrock": "Rosenbrock",
        "softmax regression, CIFAR-10": "softmax regression, CIFAR-10",
    },
    "zh": {
        "mean squared error": "均方误差",
        "binary cross-entropy": "二元交叉熵",
        "softmax cross-entropy": "softmax 交叉熵",
        "quadratic": "二次函数",
        "Rosenbrock": "Rosenbrock 函数",
        "softmax regression, CIFAR-10": "softmax 回归，CIFAR-10",
    },
}


def check_problems(xb, yb, n_classes: int, condition_number: float, rng) -> dict:
    """The functions whose analytic gradients the chapter checks, each as ``name: (point, f, grad,
    f_keras)``: ``f`` and ``grad`` in NumPy (this module), ``f_keras`` the same function in
    ``keras.ops`` for :func:`autodiff_gradient`. Random points and targets come from ``rng``; the
    softmax regression uses the real batch ``xb, yb``."""
    import keras

    K = keras.ops
    target = rng.normal(size=(8, 3))
    y_binary = rng.integers(0, 2, size=(16, 1)).astype(float)
    labels = rng.integers(0, n_classes, size=16)
    quad = rotated_quadratic((condition_number, 1.0))
    A = quad.hessian(None)
    rosen = rosenbrock()
    xb = np.asarray(xb, dtype=float)
    n_features = xb.shape[1]
    d = n_features * n_classes

    def keras_softmax_regression(t):
        logits = K.matmul(xb, K.reshape(t[:d], (n_features, n_classes))) + t[d:]
        return K.mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True))

    return {
        "mean squared error": (
            rng.normal(size=(8, 3)),
            lambda p: mse(p, target),
            lambda p: mse_grad(p, target),
            lambda p: K.mean(K.square(p - target)),
        ),
        "binary cross-entropy": (
            rng.normal(size=(16, 1)),
            lambda z: binary_cross_entropy(z, y_binary),
            lambda z: binary_cross_entropy_grad(z, y_binary),
            lambda z: K.mean(keras.losses.binary_crossentropy(y_binary, z, from_logits=True)),
        ),
        "softmax cross-entropy": (
            rng.normal(size=(16, n_classes)),
            lambda z: softmax_cross_entropy(z, labels),
            lambda z: softmax_cross_entropy_grad(z, labels),
            lambda z: K.mean(keras.losses.sparse_categorical_crossentropy(labels, z, from_logits=True)),
        ),
        "quadratic": (np.array([-1.5, 2.0]), quad.f, quad.grad, lambda x: 0.5 * K.sum(x * K.matmul(A, x))),
        "Rosenbrock": (
            np.array([-1.2, 1.0]),
            rosen.f,
            rosen.grad,
            lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2,
        ),
        "softmax regression, CIFAR-10": (
            0.01 * rng.normal(size=d + n_classes),
            lambda t: softmax_regression_loss(t, xb, yb, n_classes),
            lambda t: softmax_regression_grad(t, xb, yb, n_classes),
            keras_softmax_regression,
        ),
    }


#: the words of the chapter's figures, per language
PLOT_WORDS = {
    "en": {
        "step": "finite-difference step $\\epsilon$",
        "max_error": "largest relative error",
        "used": "$\\epsilon$ used in the table",
        "paths_title": "$r$ = {r:g}: $f$ = {f:.2g}",
        "paths_suptitle": "gradient descent on a quadratic, $\\eta = r \\cdot 2/L$, {steps} steps",
        "steps": "step",
        "f_log": "$f$ (logarithmic scale)",
        "against_step": "loss against step (dashed: exact formula)",
        "exact": "exact formula",
        "measured": "measured",
        "bound": "bound $\\eta = 2/L$",
        "optimum": "$\\eta^* = 2/(L+\\mu)$",
        "fraction": "learning rate as a fraction $r$ of $2/L$",
        "after": "$f$ after {steps} steps",
        "sweep": "learning-rate sweep",
        "paths": "paths (dot: last point)",
        "loss_vs_step": "loss against step",
        "lr": "learning rate",
        "sweep_x": "learning-rate sweep (×: diverged)",
        "best_paths": "paths at the best learning rate (dot: last point)",
        "sgd": "gradient descent",
        "momentum": "momentum ($\\beta$ = {beta:g})",
        "adam": "Adam",
        "epoch": "epoch",
        "epoch_loss": "mean training loss over the epoch",
        "zero": "log 10: the all-zero model",
        "numpy": "NumPy (our gradient descent)",
        "keras": "Keras ({backend})",
        "title": "softmax regression on CIFAR-10, {optimizer}, learning rate {lr:g}",
    },
    "zh": {
        "step": "有限差分的步长 ε",
        "max_error": "最大相对误差",
        "used": "表中所用的 ε",
        "paths_title": "r = {r:g}：f = {f:.2g}",
        "paths_suptitle": "二次函数上的梯度下降，η = r·2/L，{steps} 步",
        "steps": "步数",
        "f_log": "f（对数坐标）",
        "against_step": "损失随步数的变化（虚线：精确公式）",
        "exact": "精确公式",
        "measured": "实测",
        "bound": "上界 η = 2/L",
        "optimum": "$\\eta^* = 2/(L+\\mu)$",
        "fraction": "学习率，以 2/L 的比例 r 表示",
        "after": "{steps} 步之后的 f",
        "sweep": "学习率扫描",
        "paths": "路径（圆点：最后一个点）",
        "loss_vs_step": "损失随步数的变化",
        "lr": "学习率",
        "sweep_x": "学习率扫描（×：发散）",
        "best_paths": "最佳学习率下的路径（圆点：最后一个点）",
        "sgd": "梯度下降",
        "momentum": "动量法（β = {beta:g}）",
        "adam": "Adam",
        "epoch": "轮次",
        "epoch_loss": "该轮次的平均训练损失",
        "zero": "log 10：全零模型",
        "numpy": "NumPy（本章的梯度下降）",
        "keras": "Keras（{backend}）",
        "title": "CIFAR-10 上的 softmax 回归，{optimizer}，学习率 {lr:g}",
    },
}


def _pyplot():
    import matplotlib.pyplot as plt

    from helpers import plots  # noqa: F401 - the book's figure style

    return plt


def contour(ax, problem: Problem, xlim, ylim, levels, log: bool = False) -> None:
    """Level sets of a 2-D problem (of log10 f when ``log``), its minimum marked with a star."""
    xs, ys = np.linspace(*xlim, 121), np.linspace(*ylim, 121)
    Z = np.array([[problem.f(np.array([x, y])) for x in xs] for y in ys])
    ax.contour(xs, ys, np.log10(Z + 1e-12) if log else Z, levels=levels, colors="0.6", linewidths=0.6)
    ax.plot(*problem.minimum, "*", color="gold", ms=12, mec="k", zorder=5)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_aspect("equal")


def plot_fd_errors(steps, errors: dict, eps_used: float, lang: str = "en"):
    """Largest relative error of central differences against the step, one curve per function
    (``errors``: check name -> errors at ``steps``), with the balance point and the step used."""
    plt, words = _pyplot(), PLOT_WORDS[lang]
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    for name, errs in errors.items():
        ax.loglog(steps, errs, "o-", ms=3, label=CHECK_NAMES[lang][name])
    ax.axvline(float(np.finfo(float).eps) ** (1 / 3), color="gray", ls=":", label=r"$\delta^{1/3}$")
    ax.axvline(eps_used, color="gray", ls="--", label=words["used"])
    ax.set_xlabel(words["step"])
    ax.set_ylabel(words["max_error"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_quadratic_paths(problem: Problem, paths: dict, steps: int, lang: str = "en"):
    """One panel per learning rate (``paths``: fraction r of 2/L -> :class:`Path`) over the level sets."""
    plt, words = _pyplot(), PLOT_WORDS[lang]
    fig, axes = plt.subplots(1, len(paths), figsize=(3.1 * len(paths), 3.0), sharey=True, squeeze=False)
    for i, (ax, (r, path)) in enumerate(zip(axes[0], paths.items())):
        contour(ax, problem, (-5, 5), (-4, 4), levels=np.geomspace(0.05, 120, 12))
        ax.plot(path.points[:, 0], path.points[:, 1], "o-", color=f"C{i}", ms=2.5, lw=1)
        ax.set_title(words["paths_title"].format(r=r, f=path.values[-1]), fontsize=9)
        ax.set_xlabel("$x_1$")
    axes[0, 0].set_ylabel("$x_2$")
    fig.suptitle(words["paths_suptitle"].format(steps=steps), fontsize=10)
    fig.tight_layout()
    return fig


def plot_quadratic_sweep(A, x0, paths: dict, ratios, measured, r_opt: float, steps: int, lang: str = "en"):
    """Left: loss against step for each run in ``paths``, with :func:`quadratic_gd_value` dashed.
    Right: the loss after ``steps`` steps against the learning rate (a fraction of 2/L), measured
    (``ratios``, ``measured``) and exact, with the bound and the optimum ``r_opt``."""
    plt, words = _pyplot(), PLOT_WORDS[lang]
    L = float(np.max(np.linalg.eigvalsh(A)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (r, path) in enumerate(paths.items()):
        t = np.arange(len(path.values))
        ax1.semilogy(t, path.values, "o", ms=3, color=f"C{i}", label=f"$r$ = {r:g}")
        exact = [quadratic_gd_value(A, x0, r * 2 / L, k) for k in t]
        ax1.semilogy(t, exact, "--", color=f"C{i}", lw=1)
    ax1.set_xlabel(words["steps"])
    ax1.set_ylabel(words["f_log"])
    ax1.set_title(words["against_step"], fontsize=10)
    ax1.legend(fontsize=8)
    fine = np.linspace(0.005, max(1.2, float(np.max(ratios))), 400)
    ax2.semilogy(
        fine, [quadratic_gd_value(A, x0, r * 2 / L, steps) for r in fine], "-", color="gray", lw=1, label=words["exact"]
    )
    ax2.semilogy(ratios, measured, "o", ms=4, color="C0", label=words["measured"])
    ax2.axvline(1.0, color="C3", ls="--", lw=1, label=words["bound"])
    ax2.axvline(r_opt, color="C2", ls=":", lw=1.5, label=words["optimum"])
    ax2.set_xlabel(words["fraction"])
    ax2.set_ylabel(words["after"].format(steps=steps))
    ax2.set_title(words["sweep"], fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


ROSENBROCK_LEVELS = np.linspace(-2, 3.5, 14)


def plot_rosenbrock(problem: Problem, paths: dict, lang: str = "en"):
    """Gradient descent on Rosenbrock's function at each learning rate (``paths``: fraction r of
    2/L* -> :class:`Path`): the paths over the level sets of log10 f, and the loss against the step."""
    plt, words = _pyplot(), PLOT_WORDS[lang]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.0), gridspec_kw={"width_ratios": [1.1, 1]})
    contour(ax1, problem, (-2, 2), (-1, 3), levels=ROSENBROCK_LEVELS, log=True)
    for i, (r, path) in enumerate(paths.items()):
        ax1.plot(path.points[:, 0], path.points[:, 1], "-", color=f"C{i}", lw=1, label=f"$r$ = {r:g}")
        ax1.plot(*path.points[-1], "o", color=f"C{i}", ms=5)
        ax2.semilogy(np.maximum(path.values, 1e-30), color=f"C{i}", lw=1, label=f"$r$ = {r:g}")
    ax1.set_xlabel("$x$")
    ax1.set_ylabel("$y$")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title(words["paths"], fontsize=10)
    ax2.set_xlabel(words["steps"])
    ax2.set_ylabel(words["f_log"])
    ax2.set_title(words["loss_vs_step"], fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def optimizer_label(name: str, lang: str = "en", beta: float = 0.9) -> str:
    """An optimizer's name as a reader reads it (``"sgd"``, ``"momentum"``, ``"adam"``)."""
    return PLOT_WORDS[lang][name].format(beta=beta)


def plot_optimizer_sweep(
    problem: Problem, rates, sweep: dict, best: dict, L_star: float, steps: int, beta: float, lang: str = "en"
):
    """Three panels for optimizers on Rosenbrock's function: the final loss against the learning
    rate (``sweep``: name -> one :class:`Path` per rate; × where a run diverged), the paths at each
    optimizer's best rate (``best``: name -> (rate, :class:`Path`)), and their losses against the step."""
    plt, words = _pyplot(), PLOT_WORDS[lang]
    rates = np.asarray(rates)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    for i, (name, runs) in enumerate(sweep.items()):
        label = optimizer_label(name, lang, beta)
        finals = np.array([run.final_value for run in runs])
        ok = np.isfinite(finals)
        axes[0].loglog(rates[ok], np.maximum(finals[ok], 1e-30), "o-", ms=3, color=f"C{i}", label=label)
        axes[0].plot(rates[~ok], np.full((~ok).sum(), 10.0 ** (3 + i)), "x", color=f"C{i}", ms=6)
        lr, path = best[name]
        axes[1].plot(path.points[:, 0], path.points[:, 1], "-", color=f"C{i}", lw=1, label=f"{label}, {lr:.2g}")
        axes[1].plot(*path.points[-1], "o", color=f"C{i}", ms=5)
        axes[2].semilogy(np.maximum(path.values, 1e-30), color=f"C{i}", lw=1, label=f"{label}, {lr:.2g}")
    axes[0].axvline(2 / L_star, color="gray", ls="--", lw=1, label="$2/L_*$")
    axes[0].set_xlabel(words["lr"])
    axes[0].set_ylabel(words["after"].format(steps=steps))
    axes[0].set_title(words["sweep_x"], fontsize=10)
    axes[0].legend(fontsize=7)
    contour(axes[1], problem, (-2, 2), (-1, 3), levels=ROSENBROCK_LEVELS, log=True)
    axes[1].set_title(words["best_paths"], fontsize=10)
    axes[1].legend(fontsize=7, loc="upper left")
    axes[2].set_xlabel(words["steps"])
    axes[2].set_ylabel(words["f_log"])
    axes[2].set_title(words["loss_vs_step"], fontsize=10)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_epoch_losses(
    ours,
    theirs,
    n_classes: int,
    backend: str,
    optimizer: str,
    learning_rate: float,
    beta: float = 0.9,
    lang: str = "en",
):
    """The mean training loss of each epoch for the NumPy model (``ours``) and its Keras twin
    (``theirs``), with the loss of the all-zero model, log(n_classes); ``beta`` is momentum's."""
    plt, words = _pyplot(), PLOT_WORDS[lang]
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    epochs = np.arange(1, len(ours) + 1)
    ax.plot(epochs, ours, "o-", ms=5, label=words["numpy"])
    ax.plot(epochs, theirs, "x--", ms=7, label=words["keras"].format(backend=backend))
    ax.axhline(np.log(n_classes), color="gray", ls=":", lw=1, label=words["zero"])
    ax.set_xlabel(words["epoch"])
    ax.set_ylabel(words["epoch_loss"])
    ax.set_title(words["title"].format(optimizer=optimizer_label(optimizer, lang, beta), lr=learning_rate), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
