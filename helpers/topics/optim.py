"""The maths of learning in NumPy: losses and gradients, gradient checks, test functions, optimizers,
softmax regression by mini-batch gradient descent, backpropagation through one hidden layer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


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
    """Mean binary cross-entropy of logits ``z`` and targets ``y`` in {0, 1}."""
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


def one_hot(labels, n_classes: int) -> np.ndarray:
    """Integer labels (n,) as rows of the identity, shape (n, n_classes)."""
    return (np.asarray(labels)[:, None] == np.arange(n_classes)[None, :]).astype(float)


def softmax_cross_entropy(logits, labels) -> float:
    """Mean softmax cross-entropy ``-log softmax(z)_y = logsumexp(z) - z_y`` (stable, from logits)."""
    z = np.asarray(logits, dtype=float)
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(z)), np.asarray(labels)]))


def softmax_cross_entropy_grad(logits, labels) -> np.ndarray:
    """Gradient of :func:`softmax_cross_entropy` with respect to the logits: ``(p - y) / n``."""
    z = np.asarray(logits, dtype=float)
    return (softmax(z, axis=1) - one_hot(labels, z.shape[1])) / len(z)


def naive_softmax_cross_entropy(logits, labels) -> float:
    """``-log exp(z_y) / sum exp(z)`` as defined: ``inf`` or ``nan`` where exp overflows (warnings silenced)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(np.asarray(logits, dtype=float))
        p = e / np.sum(e, axis=1, keepdims=True)
        return float(np.mean(-np.log(p[np.arange(len(p)), np.asarray(labels)])))


def numerical_gradient(f: Callable[[np.ndarray], float], x, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``."""
    if not eps > 0:
        raise ValueError(f"the finite-difference step eps must be positive, got {eps}")
    x = np.array(x, dtype=float)  # a copy: the coordinates are nudged in place
    flat = x.reshape(-1)
    positions = range(flat.size) if indices is None else np.asarray(indices).reshape(-1)
    out = np.empty(len(positions))
    for k, i in enumerate(positions):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = f(x)
        flat[i] = saved - eps
        out[k] = (f_plus - f(x)) / (2 * eps)
        flat[i] = saved
    return out.reshape(x.shape) if indices is None else out


def relative_error(a, b, floor: float = 1e-12) -> float:
    """Largest entry-wise relative error ``|a - b| / max(|a|, |b|, floor)`` (0 when equal)."""
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


def autodiff_gradient(f: Callable, x, dtype: str = "float64") -> np.ndarray:
    """Gradient of the scalar ``f`` at ``x`` by the backend's automatic differentiation, in ``dtype`` (float64 by
    default, JAX's 64-bit mode on for the call: a comparison with NumPy then measures formulas, not rounding)."""
    import keras

    backend = keras.backend.backend()
    x = np.asarray(x, dtype=dtype)
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = f(variable)
        return np.asarray(tape.gradient(value, variable), dtype=dtype)
    if backend == "jax":
        import jax

        if hasattr(jax, "enable_x64"):  # newer JAX; older releases have it in jax.experimental
            from jax import enable_x64
        else:
            from jax.experimental import enable_x64
        with enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
            return np.asarray(jax.grad(f)(jax.numpy.asarray(x, dtype=dtype)), dtype=dtype)
    if backend == "torch":
        import torch

        tensor = torch.tensor(x, device=keras.ops.convert_to_tensor(0.0).device, requires_grad=True)
        (gradient,) = torch.autograd.grad(f(tensor), tensor)
        return gradient.detach().cpu().numpy().astype(dtype)
    raise ValueError(f"no automatic differentiation for the Keras backend {backend!r}")


@dataclass(frozen=True)
class Problem:
    """A function to minimise, with its gradient, Hessian and minimiser."""

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

    return Problem(f, grad, hessian, np.array([a, a**2]))


def _checked(name: str, value, fraction: bool = False) -> float:
    value = float(value)
    if not (0 <= value < 1 if fraction else math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be {'in [0, 1)' if fraction else 'a positive number'}, got {value}")
    return value


class GradientDescent:
    """``x <- x - eta g``."""

    def __init__(self, learning_rate: float):
        self.learning_rate = _checked("learning_rate", learning_rate)

    def step(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return x - self.learning_rate * g


class Momentum(GradientDescent):
    """Polyak's heavy ball: ``v <- beta v - eta g``, ``x <- x + v`` (Keras' ``SGD(momentum=beta)``)."""

    def __init__(self, learning_rate: float, beta: float = 0.9):
        super().__init__(learning_rate)
        self.beta = _checked("beta (momentum)", beta, fraction=True)
        self.velocity = 0.0

    def step(self, x, g):
        self.velocity = self.beta * self.velocity - self.learning_rate * g
        return x + self.velocity


class Adam(GradientDescent):
    """Adam (Kingma and Ba, Algorithm 1): moving averages of ``g`` and ``g^2``, bias-corrected."""

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(learning_rate)
        self.beta1, self.beta2 = _checked("beta1", beta1, fraction=True), _checked("beta2", beta2, fraction=True)
        self.eps = _checked("eps", eps)
        self.m = self.v = 0.0
        self.t = 0

    def step(self, x, g):
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return x - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps)


def make_optimizer(name: str, learning_rate: float, **options):
    """A fresh optimizer by name (``"sgd"``, ``"momentum"`` or ``"adam"``); options go to its constructor."""
    optimizers = {"sgd": GradientDescent, "momentum": Momentum, "adam": Adam}
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(optimizers)}")
    return optimizers[name](learning_rate, **options)


@dataclass
class Path:
    """The iterates of one run: points (steps + 1, d), function values, and whether it blew up."""

    points: np.ndarray
    values: np.ndarray
    diverged: bool

    @property
    def final_value(self) -> float:
        return math.inf if self.diverged else float(self.values[-1])


def descend(problem: Problem, x0, optimizer, steps: int, blowup: float = 1e8) -> Path:
    """Run ``steps`` optimizer steps from ``x0``; stop early (``diverged``) if ``|x|`` exceeds ``blowup``."""
    if steps < 0 or int(steps) != steps:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    x = np.asarray(x0, dtype=float)
    points, values = [x], [problem.f(x)]
    for _ in range(int(steps)):
        x = optimizer.step(x, problem.grad(x))
        if not np.all(np.isfinite(x)) or np.max(np.abs(x)) > blowup:
            return Path(np.array(points), np.array(values), True)
        points.append(x)
        values.append(problem.f(x))
    return Path(np.array(points), np.array(values), False)


def quadratic_gd_value(A, x0, learning_rate: float, steps: int) -> float:
    """Exact ``f(x_T)`` of gradient descent on ``x^T A x / 2``: each eigen-component shrinks by ``1 - eta lambda``."""
    lam, Q = np.linalg.eigh(np.asarray(A, dtype=float))
    c = Q.T @ np.asarray(x0, dtype=float)
    return float(0.5 * np.sum(lam * c**2 * (1 - learning_rate * lam) ** (2 * steps)))


def softmax_regression_loss_and_grad(theta, X, y, n_classes: int) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of the linear model ``z = X W + b`` on labels ``y``, and its gradient."""
    W, b = mlp_unpack(np.asarray(theta, dtype=float), [(X.shape[1], n_classes), (n_classes,)])
    X = np.asarray(X, dtype=float)
    z = X @ W + b
    dz = softmax_cross_entropy_grad(z, y)
    return softmax_cross_entropy(z, y), np.concatenate([(X.T @ dz).reshape(-1), dz.sum(axis=0)])


def mlp_shapes(n_features: int, n_hidden: int, n_classes: int) -> list[tuple[int, ...]]:
    """Shapes of W1, b1, W2, b2 for ``z = relu(X W1 + b1) W2 + b2``."""
    return [(n_features, n_hidden), (n_hidden,), (n_hidden, n_classes), (n_classes,)]


def mlp_unpack(theta, shapes, reshape=np.reshape) -> list:
    """Views of the arrays of ``shapes`` in the flat ``theta``, in order (``keras.ops.reshape`` for a tensor)."""
    sizes = [math.prod(shape) for shape in shapes]
    if math.prod(theta.shape) != sum(sizes):
        raise ValueError(f"theta has {math.prod(theta.shape)} entries, the shapes need {sum(sizes)}")
    ends = np.cumsum(sizes)
    return [reshape(theta[end - size : end], shape) for end, size, shape in zip(ends, sizes, shapes)]


def mlp_pack(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=float).reshape(-1) for a in arrays])


def mlp_init(shapes, seed: int) -> np.ndarray:
    """Glorot-uniform weights and zero biases, packed (Keras' defaults for Dense layers)."""
    rng = np.random.default_rng(seed)
    glorot = [math.sqrt(6 / sum(shape)) if len(shape) == 2 else 0.0 for shape in shapes]
    return mlp_pack([rng.uniform(-b, b, size=s) if b else np.zeros(s) for s, b in zip(shapes, glorot)])


def mlp_loss_and_grad(theta, X, y, shapes) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``z = relu(X W1 + b1) W2 + b2`` and its gradient by backpropagation."""
    W1, b1, W2, b2 = mlp_unpack(np.asarray(theta, dtype=float), shapes)
    X = np.asarray(X, dtype=float)
    A = X @ W1 + b1
    H = np.maximum(A, 0.0)
    Z = H @ W2 + b2
    dZ = softmax_cross_entropy_grad(Z, y)
    dA = (dZ @ W2.T) * (A > 0)
    return softmax_cross_entropy(Z, y), mlp_pack([X.T @ dA, dA.sum(axis=0), H.T @ dZ, dZ.sum(axis=0)])


def mlp_loss(theta, X, y, shapes) -> float:
    return mlp_loss_and_grad(theta, X, y, shapes)[0]


def mlp_loss_keras(theta, X, y, shapes):
    """The same loss written with ``keras.ops``, for the backend's automatic differentiation."""
    import keras

    K = keras.ops
    W1, b1, W2, b2 = mlp_unpack(theta, shapes, K.reshape)
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

    def predict(self, X, batch: int = 4096) -> np.ndarray:
        """The predicted classes, ``batch`` rows at a time."""
        logits = [np.asarray(X[i : i + batch], dtype=float) @ self.W + self.b for i in range(0, len(X), batch)]
        return np.concatenate(logits).argmax(axis=1)

    def accuracy(self, X, y) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))


def train_softmax_regression(X, y, n_classes: int, optimizer, orders, batch_size: int) -> SoftmaxRegression:
    """Mini-batch gradient descent from zero weights, visiting the examples in the given ``orders``."""
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
    W, b = mlp_unpack(theta, [(d, n_classes), (n_classes,)])
    return SoftmaxRegression(W.copy(), b.copy(), losses)
