"""A mini scaling law on CIFAR-10: train the course's CNN at several widths and data sizes, fit a power law."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.words import of, sentence


def run_sweep(
    cifar, widths, train_sizes, *, epochs: int, batch_size: int, learning_rate: float, seed: int
) -> pd.DataFrame:
    """Train the article's CNN (:func:`helpers.models.article_cnn`) at every (width, train_size) pair; one row per run."""
    import keras

    from helpers import data, models
    from helpers.topics import compute_cost

    rows = []
    for width in widths:
        for n in train_sizes:
            idx = data.stratified_indices(cifar.y_train, n, seed) if n < len(cifar.y_train) else slice(None)
            x, y = cifar.x_train[idx], cifar.y_train[idx]
            keras.utils.set_random_seed(seed)
            model = models.article_cnn(width, logits=True, name=f"cnn_w{width:g}")
            loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            model.compile(keras.optimizers.Adam(learning_rate), loss_fn, metrics=["accuracy"])
            start = time.perf_counter()
            model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
            seconds = time.perf_counter() - start
            loss, acc = model.evaluate(cifar.x_test, cifar.y_test, batch_size=1024, verbose=0)
            flops = compute_cost.training_flops(model, n * epochs)
            row = dict(width=float(width), params=int(model.count_params()), train_size=int(n), epochs=int(epochs))
            rows.append(
                row | dict(test_error=1.0 - float(acc), test_loss=float(loss), train_flops=flops, seconds=seconds)
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PowerLawFit:
    """``err(x) = irreducible + scale * x**(-exponent)``, fitted to ``n`` points."""

    exponent: float  # alpha: how fast the reducible error falls with x
    scale: float  # A
    irreducible: float  # E: the error no amount of x removes (within this family)
    r2: float  # of log(err - E) on log x
    n: int

    def predict(self, x) -> np.ndarray:
        return self.irreducible + self.scale * np.asarray(x, dtype=float) ** (-self.exponent)

    @property
    def bend(self) -> float:
        """The x where the reducible term equals the irreducible one (inf without an irreducible term)."""
        return math.inf if self.irreducible <= 0 else (self.scale / self.irreducible) ** (1.0 / self.exponent)

    def x_for_error(self, err: float) -> float:
        """The x at which the fit predicts ``err`` (inf when ``err`` is at or below E)."""
        return (
            math.inf if err <= self.irreducible else ((err - self.irreducible) / self.scale) ** (-1.0 / self.exponent)
        )


def fit_power_law(x, err, irreducible: bool = True, grid: int = 400) -> PowerLawFit:
    """Fit ``err = E + A * x**(-alpha)`` with ``alpha > 0``."""
    x, err = np.asarray(x, dtype=float), np.asarray(err, dtype=float)
    if x.shape != err.shape or x.ndim != 1:
        raise ValueError("x and err must be one-dimensional and of the same length")
    points, distinct = (4, 3) if irreducible else (2, 2)
    if x.size < points or np.unique(x).size < distinct:
        raise ValueError(f"need at least {points} points at {distinct} different x to fit, got {x.size}")
    if np.any(x <= 0) or np.any(err <= 0):
        raise ValueError("x and err must be positive")

    lx = np.log(x)

    def best_of(candidates, best=None):
        for e in candidates:
            lr = np.log(err - e)  # least squares of log(err - E) on log x
            slope, intercept = (float(v) for v in np.polyfit(lx, lr, 1))
            if slope >= 0:
                continue
            sse, total = float(np.sum((lr - intercept - slope * lx) ** 2)), float(np.sum((lr - lr.mean()) ** 2))
            fit = PowerLawFit(-slope, math.exp(intercept), float(e), 1.0 - sse / total if total > 0 else 1.0, x.size)
            sse = float(np.sum((fit.predict(x) - err) ** 2))
            if best is None or sse < best[0]:
                best = (sse, fit)
        return best

    if not irreducible:
        best = best_of([0.0])
    else:  # a grid over [0, min err), then three finer grids around the best value
        top = float(err.min())
        step = top / grid
        best = best_of(np.arange(grid) * step)
        for _ in range(3):
            if best is None:
                break
            centre = best[1].irreducible
            low, high = max(0.0, centre - step), min(top * (1 - 1e-9), centre + step)
            best = best_of(np.linspace(low, high, 41), best)
            step = (high - low) / 40
    if best is None:
        raise ValueError("the error does not fall as x grows: no power law with a positive exponent fits")
    return best[1]


#: the three axes of the sweep: the column, its symbol, and its name (a term of the ``trends`` vocabulary)
AXES = {
    "params": ("N", "parameters"),
    "train_size": ("D", "training images"),
    "train_flops": ("C", "training compute (FLOPs)"),
}


def fit_sweep(table: pd.DataFrame) -> dict:
    """The sweep's power laws of error against params, train_size and train_flops (None where none fits)."""
    most_data = table[table.train_size == table.train_size.max()]
    widest = table[table.width == table.width.max()]
    frontier = compute_frontier(table)
    return {
        "params": try_fit(most_data.params, most_data.test_error),
        "train_size": try_fit(widest.train_size, widest.test_error),
        "train_flops": try_fit(frontier.train_flops, frontier.test_error),
    }


def plot_sweep(table: pd.DataFrame, fits: dict, lang: str = "en"):
    """Three log-log panels: test error against parameters, training images and training FLOPs."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    from helpers.plots import plt  # pyplot in the book's figure style

    w = of(lang, "trends")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (column, (symbol, name)) in zip(axes, AXES.items()):
        by, key = ("width", w("width")) if column == "train_size" else ("train_size", "D")
        for value, part in table.groupby(by):
            part = part.sort_values(column)
            ax.plot(part[column], part["test_error"], "o-", ms=4, lw=1, alpha=0.8, label=f"{key} = {value:g}")
        fit = fits.get(column)
        if fit is not None:
            xs = np.geomspace(table[column].min(), table[column].max() * 4, 100)
            label = f"{w('fit')}: {fit.irreducible:.2f} + A·{symbol}^-{fit.exponent:.2f}"
            ax.plot(xs, fit.predict(xs), "k--", lw=1.2, label=label)
            if math.isfinite(fit.bend) and fit.bend < xs.max():
                ax.axvline(fit.bend, color="C3", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
        ax.set_xlabel(f"{w(name)} {symbol}")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(w("test error"))
    fig.tight_layout()
    return fig


def compute_frontier(table: pd.DataFrame) -> pd.DataFrame:
    """The runs no cheaper run beats: lowest test error so far, in order of training FLOPs."""
    ordered = table.sort_values("train_flops")
    best = ordered["test_error"].cummin()
    return ordered[ordered["test_error"] <= best].drop_duplicates("test_error")


def try_fit(x, err) -> PowerLawFit | None:
    """:func:`fit_power_law` where it can be fitted (at least three different x), else None."""
    if (distinct := np.unique(np.asarray(x, dtype=float)).size) >= 3:
        with contextlib.suppress(ValueError):
            return fit_power_law(x, err, irreducible=distinct >= 4)
    return None


#: where a curve bends against the measured range, in words (the ``trends`` section of the vocabulary)
BEND_WORDS = {
    "below": "below the smallest value measured, so every run here is past it",
    "inside": "inside the measured range",
    "above": "beyond the largest value measured, so the runs here are still on the straight part",
}


def describe_bend(fit: PowerLawFit | None, low: float, high: float, unit: str) -> dict:
    """Where a fitted curve bends relative to the measured range [low, high], in English and Chinese;
    ``unit`` is "parameters" or "training images"."""
    from helpers.topics.large_models import sci

    against = sentence(f"against {unit}", "trends")
    if fit is None:
        return {"where": "none"} | sentence("no power law could be fitted {against}", "trends", against=against)
    if not math.isfinite(fit.bend):
        words = "the curve {against} shows no bend: its fitted floor is 0, a straight line on log-log axes"
        return {"where": "none"} | sentence(words, "trends", against=against)
    where = "below" if fit.bend < low else "inside" if fit.bend <= high else "above"
    amount = sentence(f"{{n}} {unit}", "trends", n=sci(fit.bend, 2))
    words, place = "the curve {against} bends at about {amount}, {where}", sentence(BEND_WORDS[where], "trends")
    return {"where": where} | sentence(words, "trends", against=against, amount=amount, where=place)


#: which resource to add next, by (the width curve has bent, the data curve has bent)
VERDICTS = {
    (True, False): "The width curve has bent and the data curve has not: the next gain would come from more data, "
    "not a wider network.",
    (False, True): "The data curve has bent and the width curve has not: a wider network would gain more than more "
    "images.",
    (True, True): "Both curves have bent: with this training budget, more epochs (compute) come before more "
    "parameters or data.",
    (False, False): "Neither curve has bent in this range: more parameters and more data both still pay.",
}


def verdict(params_where: str, data_where: str) -> dict:
    """Which resource the sweep says to add next, from where the two curves bend (see :func:`describe_bend`)."""
    return sentence(VERDICTS[params_where in ("below", "inside"), data_where in ("below", "inside")], "trends")


def width_for_params(widths, params, need: float) -> float:
    """The width multiplier at which the swept CNN would have ``need`` parameters."""
    widths, params = np.asarray(widths, dtype=float), np.asarray(params, dtype=float)
    if len(np.unique(widths)) < 3:
        raise ValueError("need at least three different widths to fit a quadratic")
    a, b, c = np.polyfit(widths, params, 2)
    roots = [r.real for r in np.roots([a, b, c - need]) if abs(r.imag) < 1e-9 and r.real > 0]
    return max(roots) if roots else math.nan


def quiet_tracing_warnings() -> None:
    """Silence TensorFlow's "triggered tf.function retracing" warning."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
