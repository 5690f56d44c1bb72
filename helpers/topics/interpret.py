"""Why did the network say "cat"? Saliency maps and Grad-CAM for a Keras Sequential CNN."""

from __future__ import annotations

import numpy as np

from helpers import words
from helpers.topics.optim import autodiff_gradient


def _apply(layers, h):
    for layer in layers:
        h = layer(h)
    return h


def _score_gradient(layers, x, classes) -> np.ndarray:
    """d(sum of each image's ``classes`` score after ``layers``)/dx for a float32 array ``x``; returns NumPy."""
    import keras

    def total(v):
        out = _apply(layers, v)
        onehot = keras.ops.one_hot(keras.ops.convert_to_tensor(np.asarray(classes)), out.shape[-1])
        return keras.ops.sum(out * keras.ops.cast(onehot, out.dtype))

    return autodiff_gradient(total, x, dtype="float32")


def saliency(model, images, classes) -> np.ndarray:
    """|d score_class / d pixel|, the largest over colour channels: (N, H, W), each map scaled to max 1."""
    x = np.asarray(images, dtype=np.float32)
    grads = _score_gradient(model.layers, x, classes)
    maps = np.abs(grads).max(axis=-1)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return maps / np.where(peak > 0, peak, 1.0)


def grad_cam(model, images, classes, layer_name: str) -> np.ndarray:
    """Grad-CAM heat maps (N, H, W) in [0, 1] for ``classes``, from the conv layer ``layer_name``."""
    import keras

    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer {layer_name!r} in {model.name}; layers: {names}")
    split = names.index(layer_name) + 1  # the activations of ``layer_name``, then the layers after it
    x = np.asarray(images, dtype=np.float32)
    acts = keras.ops.convert_to_numpy(_apply(model.layers[:split], keras.ops.convert_to_tensor(x)))
    grads = _score_gradient(model.layers[split:], acts, classes)
    weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per feature map
    cam = np.maximum((weights * acts).sum(axis=-1), 0.0)  # (N, h, w)
    cam = keras.ops.image.resize(cam[..., None], x.shape[1:3], interpolation="bilinear")
    cam = keras.ops.convert_to_numpy(cam)[..., 0]
    # rescale each map to [0, 1] (min to max), as Grad-CAM's heat maps are shown
    low = cam.min(axis=(1, 2), keepdims=True)
    span = cam.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (cam - low) / np.where(span > 0, span, 1.0), 0.0)


def plot_explanations(images, sal, cams, titles, colors=None, lang: str = "en"):
    """Three rows: the images, their saliency maps and their Grad-CAM maps over the image."""
    from helpers.plots import plt  # pyplot in the book's figure style

    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.25 * n, 4.2), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(images[j])
        axes[0, j].set_title(titles[j], fontsize=7, color=(colors[j] if colors else "black"))
        axes[1, j].imshow(sal[j], cmap="gray")
        axes[2, j].imshow(images[j])
        axes[2, j].imshow(cams[j], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for i in range(3):
            axes[i, j].axis("off")
    for i, label in enumerate(("image", "saliency", "Grad-CAM")):
        axes[i, 0].text(-4, 16, words.label(label, lang, "trends"), rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    return fig
