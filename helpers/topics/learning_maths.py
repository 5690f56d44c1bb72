"""The learning-maths chapter's own pieces: its measurement of mini-batch gradient noise, the functions whose
gradients it checks, and its figures in the reader's language (the maths is in :mod:`helpers.topics.optim`)."""

from __future__ import annotations

import numpy as np

from helpers import words
from helpers.topics import optim


def gradient_spread(theta, X, y, n_classes: int, chunk: int = 2048) -> tuple[np.ndarray, float]:
    """The full-data gradient ``g`` and ``tr(Sigma) = mean_i |g_i - g|^2`` of the per-example gradients."""
    W, b = optim.mlp_unpack(np.asarray(theta, dtype=float), [(X.shape[1], n_classes), (n_classes,)])
    total, squares = np.zeros(W.size + b.size), 0.0
    for start in range(0, len(X), chunk):
        xb = np.asarray(X[start : start + chunk], dtype=float)
        r = optim.softmax(xb @ W + b, axis=1) - optim.one_hot(y[start : start + chunk], n_classes)
        total += np.concatenate([(xb.T @ r).reshape(-1), r.sum(axis=0)])
        squares += float(np.sum((np.sum(xb**2, axis=1) + 1) * np.sum(r**2, axis=1)))
    g = total / len(X)
    return g, squares / len(X) - float(g @ g)


def minibatch_noise(theta, X, y, n_classes: int, full_grad, batch_size: int, draws: int, rng) -> float:
    """Mean of ``|g_B - g|^2`` over ``draws`` mini-batches of ``batch_size`` examples drawn with replacement."""
    errors = []
    for idx in rng.integers(0, len(X), size=(draws, batch_size)):
        g_batch = optim.softmax_regression_loss_and_grad(theta, X[idx], y[idx], n_classes)[1]
        errors.append(float(np.sum((g_batch - full_grad) ** 2)))
    return float(np.mean(errors))


def check_problems(xb, yb, n_classes: int, condition_number: float, rng) -> dict:
    """The functions whose gradients the chapter checks, ``name: (point, f, grad, f_keras)`` (NumPy, and
    ``keras.ops`` for autodiff); random points and targets from ``rng``, the real batch ``xb, yb``."""
    import keras

    K = keras.ops
    target = rng.normal(size=(8, 3))
    y_binary = rng.integers(0, 2, size=(16, 1)).astype(float)
    labels = rng.integers(0, n_classes, size=16)
    quad = optim.rotated_quadratic((condition_number, 1.0))
    A = quad.hessian(None)
    rosen = optim.rosenbrock()
    xb = np.asarray(xb, dtype=float)
    n_features = xb.shape[1]
    d = n_features * n_classes

    def keras_softmax_regression(t):
        logits = K.matmul(xb, K.reshape(t[:d], (n_features, n_classes))) + t[d:]
        return K.mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True))

    return {
        "mean squared error": (
            rng.normal(size=(8, 3)),
            lambda p: optim.mse(p, target),
            lambda p: optim.mse_grad(p, target),
            lambda p: K.mean(K.square(p - target)),
        ),
        "binary cross-entropy": (
            rng.normal(size=(16, 1)),
            lambda z: optim.binary_cross_entropy(z, y_binary),
            lambda z: optim.binary_cross_entropy_grad(z, y_binary),
            lambda z: K.mean(keras.losses.binary_crossentropy(y_binary, z, from_logits=True)),
        ),
        "softmax cross-entropy": (
            rng.normal(size=(16, n_classes)),
            lambda z: optim.softmax_cross_entropy(z, labels),
            lambda z: optim.softmax_cross_entropy_grad(z, labels),
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
            lambda t: optim.softmax_regression_loss_and_grad(t, xb, yb, n_classes)[0],
            lambda t: optim.softmax_regression_loss_and_grad(t, xb, yb, n_classes)[1],
            keras_softmax_regression,
        ),
    }


def _figure(lang: str, *args, **kwargs):
    from helpers.plots import plt  # pyplot in the book's figure style

    return (*plt.subplots(*args, **kwargs), words.of(lang, "learning_maths"))


def contour(ax, problem: optim.Problem, xlim, ylim, levels, log: bool = False) -> None:
    """Level sets of a 2-D problem (of log10 f when ``log``), its minimum marked with a star."""
    xs, ys = np.linspace(*xlim, 121), np.linspace(*ylim, 121)
    Z = np.array([[problem.f(np.array([x, y])) for x in xs] for y in ys])
    ax.contour(xs, ys, np.log10(Z + 1e-12) if log else Z, levels=levels, colors="0.6", linewidths=0.6)
    ax.plot(*problem.minimum, "*", color="gold", ms=12, mec="k", zorder=5)
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")


def plot_fd_errors(steps, errors: dict, eps_used: float, lang: str = "en"):
    """Largest relative error of central differences against the step, one curve per function
    (``errors``: check name -> errors at ``steps``), with the balance point and the step used."""
    fig, ax, w = _figure(lang, figsize=(6.2, 3.6))
    for name, errs in errors.items():
        ax.loglog(steps, errs, "o-", ms=3, label=words.in_lang(name, lang, "learning_maths"))
    ax.axvline(float(np.finfo(float).eps) ** (1 / 3), color="gray", ls=":", label=r"$\delta^{1/3}$")
    ax.axvline(eps_used, color="gray", ls="--", label=w("$\\epsilon$ used in the table"))
    ax.set(xlabel=w("finite-difference step $\\epsilon$"), ylabel=w("largest relative error"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_quadratic_paths(problem: optim.Problem, paths: dict, steps: int, lang: str = "en"):
    """One panel per learning rate (``paths``: fraction r of 2/L -> :class:`Path`) over the level sets."""
    fig, axes, w = _figure(lang, 1, len(paths), figsize=(3.1 * len(paths), 3.0), sharey=True, squeeze=False)
    for i, (ax, (r, path)) in enumerate(zip(axes[0], paths.items())):
        contour(ax, problem, (-5, 5), (-4, 4), levels=np.geomspace(0.05, 120, 12))
        ax.plot(path.points[:, 0], path.points[:, 1], "o-", color=f"C{i}", ms=2.5, lw=1)
        ax.set_title(w("$r$ = {r:g}: $f$ = {f:.2g}").format(r=r, f=path.values[-1]), fontsize=9)
        ax.set_xlabel("$x_1$")
    axes[0, 0].set_ylabel("$x_2$")
    fig.suptitle(
        w("gradient descent on a quadratic, $\\eta = r \\cdot 2/L$, {steps} steps").format(steps=steps), fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_quadratic_sweep(A, x0, paths: dict, ratios, measured, r_opt: float, steps: int, lang: str = "en"):
    """Left: loss by step for each run in ``paths`` (dashed: :func:`quadratic_gd_value`). Right: the loss after
    ``steps`` steps against r (of 2/L), measured (``ratios``, ``measured``) and exact, with the bound and ``r_opt``."""
    L = float(np.max(np.linalg.eigvalsh(A)))
    fig, (ax1, ax2), w = _figure(lang, 1, 2, figsize=(11, 3.8))
    for i, (r, path) in enumerate(paths.items()):
        t = np.arange(len(path.values))
        ax1.semilogy(t, path.values, "o", ms=3, color=f"C{i}", label=f"$r$ = {r:g}")
        exact = [optim.quadratic_gd_value(A, x0, r * 2 / L, k) for k in t]
        ax1.semilogy(t, exact, "--", color=f"C{i}", lw=1)
    ax1.set(xlabel=w("step"), ylabel=w("$f$ (logarithmic scale)"))
    ax1.set_title(w("loss against step (dashed: exact formula)"), fontsize=10)
    ax1.legend(fontsize=8)
    fine = np.linspace(0.005, max(1.2, float(np.max(ratios))), 400)
    exact = [optim.quadratic_gd_value(A, x0, r * 2 / L, steps) for r in fine]
    ax2.semilogy(fine, exact, "-", color="gray", lw=1, label=w("exact formula"))
    ax2.semilogy(ratios, measured, "o", ms=4, color="C0", label=w("measured"))
    ax2.axvline(1.0, color="C3", ls="--", lw=1, label=w("bound $\\eta = 2/L$"))
    ax2.axvline(r_opt, color="C2", ls=":", lw=1.5, label=w("$\\eta^* = 2/(L+\\mu)$"))
    ax2.set(
        xlabel=w("learning rate as a fraction $r$ of $2/L$"), ylabel=w("$f$ after {steps} steps").format(steps=steps)
    )
    ax2.set_title(w("learning-rate sweep"), fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _paths_and_losses(problem: optim.Problem, ax_paths, ax_loss, paths: dict, w, fontsize: int) -> None:
    """Paths (``paths``: label -> :class:`Path`) over Rosenbrock's level sets, dot at the end; their losses by step."""
    contour(ax_paths, problem, (-2, 2), (-1, 3), levels=np.linspace(-2, 3.5, 14), log=True)
    for i, (label, path) in enumerate(paths.items()):
        ax_paths.plot(path.points[:, 0], path.points[:, 1], "-", color=f"C{i}", lw=1, label=label)
        ax_paths.plot(*path.points[-1], "o", color=f"C{i}", ms=5)
        ax_loss.semilogy(np.maximum(path.values, 1e-30), color=f"C{i}", lw=1, label=label)
    ax_paths.legend(fontsize=fontsize, loc="upper left")
    ax_loss.set(xlabel=w("step"), ylabel=w("$f$ (logarithmic scale)"))
    ax_loss.set_title(w("loss against step"), fontsize=10)
    ax_loss.legend(fontsize=fontsize)


def plot_rosenbrock(problem: optim.Problem, paths: dict, lang: str = "en"):
    """Gradient descent on Rosenbrock's function at each learning rate (``paths``: fraction r of
    2/L* -> :class:`Path`): the paths over the level sets of log10 f, and the loss against the step."""
    fig, (ax1, ax2), w = _figure(lang, 1, 2, figsize=(11, 4.0), gridspec_kw={"width_ratios": [1.1, 1]})
    _paths_and_losses(problem, ax1, ax2, {f"$r$ = {r:g}": path for r, path in paths.items()}, w, 8)
    ax1.set(xlabel="$x$", ylabel="$y$")
    ax1.set_title(w("paths (dot: last point)"), fontsize=10)
    fig.tight_layout()
    return fig


def optimizer_label(name: str, lang: str = "en", beta: float = 0.9) -> str:
    """An optimizer's name as a reader reads it (``"sgd"``, ``"momentum"``, ``"adam"``)."""
    term = {"sgd": "gradient descent", "momentum": "momentum ($\\beta$ = {beta:g})", "adam": "Adam"}[name]
    return words.in_lang(term, lang, "learning_maths").format(beta=beta)


def plot_optimizer_sweep(
    problem: optim.Problem, rates, sweep: dict, best: dict, L_star: float, steps: int, beta: float, lang: str = "en"
):
    """Optimizers on Rosenbrock's function: final loss by learning rate (``sweep``: name -> a :class:`Path` per rate,
    ×: diverged), the paths at each best rate (``best``: name -> (rate, :class:`Path`)) and their losses by step."""
    rates = np.asarray(rates)
    fig, axes, w = _figure(lang, 1, 3, figsize=(14, 4.0), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    for i, (name, runs) in enumerate(sweep.items()):
        label = optimizer_label(name, lang, beta)
        finals = np.array([run.final_value for run in runs])
        ok = np.isfinite(finals)
        axes[0].loglog(rates[ok], np.maximum(finals[ok], 1e-30), "o-", ms=3, color=f"C{i}", label=label)
        axes[0].plot(rates[~ok], np.full((~ok).sum(), 10.0 ** (3 + i)), "x", color=f"C{i}", ms=6)
    labelled = {f"{optimizer_label(name, lang, beta)}, {best[name][0]:.2g}": best[name][1] for name in sweep}
    _paths_and_losses(problem, axes[1], axes[2], labelled, w, 7)
    axes[0].axvline(2 / L_star, color="gray", ls="--", lw=1, label="$2/L_*$")
    axes[0].set(xlabel=w("learning rate"), ylabel=w("$f$ after {steps} steps").format(steps=steps))
    axes[0].set_title(w("learning-rate sweep (×: diverged)"), fontsize=10)
    axes[0].legend(fontsize=7)
    axes[1].set_title(w("paths at the best learning rate (dot: last point)"), fontsize=10)
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
    fig, ax, w = _figure(lang, figsize=(6.2, 3.6))
    epochs = np.arange(1, len(ours) + 1)
    ax.plot(epochs, ours, "o-", ms=5, label=w("NumPy (our gradient descent)"))
    ax.plot(epochs, theirs, "x--", ms=7, label=w("Keras ({backend})").format(backend=backend))
    ax.axhline(np.log(n_classes), color="gray", ls=":", lw=1, label=w("log 10: the all-zero model"))
    ax.set(xlabel=w("epoch"), ylabel=w("mean training loss over the epoch"))
    ax.set_title(
        w("softmax regression on CIFAR-10, {optimizer}, learning rate {lr:g}").format(
            optimizer=optimizer_label(optimizer, lang, beta), lr=learning_rate
        ),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
