"""The figures the chapters draw, in the book's style (``maas.mplstyle``), their words in ``lang``."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import matplotlib.font_manager as font_manager
import matplotlib.pyplot as plt
import numpy as np

from helpers import words

# the book's style; the CJK font found here joins font.family (Matplotlib falls back glyph by glyph only along it)
plt.style.use(Path(__file__).with_name("maas.mplstyle"))
#: fonts with Chinese glyphs, best first: the style's ``font.sans-serif`` after its Latin DejaVu Sans
CJK_FAMILIES = tuple(plt.rcParams["font.sans-serif"][1:])


def cjk_font() -> str | None:
    """The CJK family that figures use (fontconfig's Chinese fonts registered if need be), or None."""
    known = lambda: next((n for n in CJK_FAMILIES if n in {f.name for f in font_manager.fontManager.ttflist}), None)
    if (found := known()) is None and shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout
        for path in sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()}):
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                font_manager.fontManager.addfont(path)
        found = known()
    return found


if cjk := cjk_font():
    plt.rcParams["font.family"] = ["sans-serif", cjk]


def _grid(rows: int, cols: int, figsize):
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def image_grid(images, titles, ncols: int = 10, size: float = 1.1):
    """Show uint8 images in a grid with a title under each."""
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = _grid(nrows, ncols, (ncols * size, nrows * (size + 0.35)))
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(runs: dict[str, dict], metrics=("loss", "accuracy"), lang: str = "en"):
    """Training (solid) and validation (dashed) curves of each named run's Keras history."""
    w = words.of(lang)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for i, (name, history) in enumerate(runs.items()):
            epochs = np.arange(1, len(history[metric]) + 1)
            ax.plot(epochs, history[metric], "-o", ms=3, color=f"C{i}", label=w("{run}: training").format(run=name))
            if f"val_{metric}" in history:
                label = w("{run}: validation").format(run=name)
                ax.plot(epochs, history[f"val_{metric}"], "--s", ms=3, color=f"C{i}", label=label)
        ax.set_xlabel(w("epoch"))
        ax.set_ylabel(words.label(metric, lang))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def confusion(matrix: np.ndarray, class_names, lang: str = "en"):
    """Row-normalised confusion matrix (true class in rows), the percentages written in."""
    w = words.of(lang)
    share = matrix / matrix.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel=w("predicted class"), ylabel=w("true class"))
    ax.grid(False)
    for (i, j), value in np.ndenumerate(share):
        color = "white" if value > 0.5 else "black"
        ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, label=w("share of true class"))
    fig.tight_layout()
    return fig


def per_class_bars(values: dict[str, np.ndarray], class_names, lang: str = "en"):
    """Grouped bars: a group per class, a bar per named model (names and classes given in ``lang``)."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width, x = 0.8 / len(values), np.arange(len(class_names))
    for i, (name, accuracy) in enumerate(values.items()):
        ax.bar(x + (i - (len(values) - 1) / 2) * width, accuracy, width, label=name)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set(ylabel=words.in_lang("test accuracy", lang), ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def filters(kernel, ncols: int = 16, size: float = 0.6):
    """First-layer filters (k, k, 3, n) as numbered colour images, each scaled to the full range."""
    tiles = np.moveaxis(np.asarray(kernel, dtype=float), 3, 0)  # (n, k, k, 3)
    low, high = tiles.min(axis=(1, 2, 3), keepdims=True), tiles.max(axis=(1, 2, 3), keepdims=True)
    images = np.round(255 * (tiles - low) / np.maximum(high - low, 1e-12)).astype(np.uint8)
    return image_grid(images, [str(i) for i in range(len(images))], ncols=ncols, size=size)


def feature_maps(image, maps: dict[str, np.ndarray], lang: str = "en", channels: int = 8, size: float = 1.0):
    """One image, then a row per layer (name -> (h, w, c) maps) of its first ``channels`` maps in grey."""
    fig, axes = _grid(len(maps), channels + 1, ((channels + 1) * size, len(maps) * (size + 0.25)))
    axes[0, 0].imshow(image, interpolation="nearest")
    axes[0, 0].set_title(words.pick(lang, "input", "输入"), fontsize=7)
    for r, (name, values) in enumerate(maps.items()):
        axes[r, 1].set_title(f"{name} {values.shape[0]}×{values.shape[1]}×{values.shape[2]}", fontsize=7, loc="left")
        for c in range(min(channels, values.shape[2])):
            axes[r, c + 1].imshow(values[:, :, c], cmap="gray", interpolation="nearest")
    fig.tight_layout()
    return fig
