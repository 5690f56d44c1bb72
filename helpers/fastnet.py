"""The networks of the ablation ladder, from the article's CNN to a fast VGG-style net.

``fast_cnn`` follows the design of Keller Jordan's *airbench* {cite}`jordan2024airbench`: a frozen
2x2 "whitening" convolution whose filters are the eigenvectors of the patch covariance, three
blocks of (conv, max-pool, batch norm, GELU, conv, batch norm, GELU), partial identity ("dirac")
initialisation, and logits scaled down by a constant. Only built-in Keras layers are used, so a
saved model loads anywhere without this module; every function is written against Keras 3's
backend-neutral API, so the same code runs on TensorFlow, JAX and PyTorch.

All models take uint8 images (N, 32, 32, 3) and return logits (or probabilities for the article's
softmax head). :func:`core_of` gives the part after the uint8 rescaling, which takes float images
in [0, 1]: the form that is saved for serving.
"""

from __future__ import annotations

import keras
import numpy as np

#: per-channel mean and standard deviation of the CIFAR-10 training images (in [0, 1])
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
#: airbench's block widths at width multiplier 1
BASE_WIDTHS = (64, 256, 256)


def _torch_like_uniform(seed: int | None = None):
    """PyTorch's default conv/linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform", seed=seed)


def _uint8_input(name: str) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=(32, 32, 3), dtype="uint8", name="image")
    return inputs, keras.layers.Rescaling(1 / 255, name="to_unit_range")(inputs)


def article_cnn(logits: bool = True, batch_norm: bool = False, bn_momentum: float = 0.9,
                name: str = "article_cnn") -> keras.Model:
    """The article's three-convolution CNN; ``batch_norm`` adds BatchNormalization after each conv.

    ``bn_momentum`` 0.9 (PyTorch's default) rather than Keras' 0.99: the running statistics start
    at mean 0 and variance 1, and after the few hundred steps of a short run 0.99 still carries
    0.99^steps of that start, which skews every normalised activation at test time.
    """
    inputs, x = _uint8_input(name)
    core_in = keras.Input(shape=(32, 32, 3), name="unit_image")
    y = core_in
    for i, (filters, pool) in enumerate(((32, True), (64, True), (64, False))):
        y = keras.layers.Conv2D(filters, 3, use_bias=not batch_norm, name=f"conv{i + 1}")(y)
        if batch_norm:
            y = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i + 1}")(y)
        y = keras.layers.Activation("relu", name=f"relu{i + 1}")(y)
        if pool:
            y = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(y)
    y = keras.layers.Flatten(name="flatten")(y)
    y = keras.layers.Dense(64, activation="relu", name="dense")(y)
    y = keras.layers.Dense(10, activation=None if logits else "softmax", name="logits" if logits else "probs")(y)
    core = keras.Model(core_in, y, name=f"{name}_core")
    return keras.Model(inputs, core(x), name=name)


def fast_cnn(width: float = 1.0, x_whiten: np.ndarray | None = None, bn_momentum: float = 0.6,
             logit_scale: float = 1 / 9, seed: int = 0, name: str = "fast_cnn") -> keras.Model:
    """The airbench-style network; ``width`` multiplies the block widths (64, 256, 256).

    ``x_whiten`` (uint8 training images) initialises the frozen whitening convolution; without it
    the whitening filters keep a random initialisation (still frozen).
    """
    widths = [max(8, int(round(w * width))) for w in BASE_WIDTHS]
    inputs, x = _uint8_input(name)
    core_in = keras.Input(shape=(32, 32, 3), name="unit_image")
    y = keras.layers.Normalization(mean=CIFAR_MEAN, variance=[s * s for s in CIFAR_STD], name="standardize")(core_in)
    whiten = keras.layers.Conv2D(24, 2, padding="valid", use_bias=False, trainable=False, name="whiten",
                                 kernel_initializer=_torch_like_uniform(seed))
    y = keras.layers.Activation("gelu", name="whiten_gelu")(whiten(y))
    for b, w in enumerate(widths, start=1):
        for c in (1, 2):
            y = keras.layers.Conv2D(w, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}",
                                    kernel_initializer=_torch_like_uniform(seed + 10 * b + c))(y)
            if c == 1:
                y = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(y)
            y = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=1e-12, scale=False,
                                                name=f"block{b}_bn{c}")(y)
            y = keras.layers.Activation("gelu", name=f"block{b}_gelu{c}")(y)
    y = keras.layers.MaxPooling2D(3, name="final_pool")(y)
    y = keras.layers.Flatten(name="flatten")(y)
    y = keras.layers.Dense(10, use_bias=False, kernel_initializer=_torch_like_uniform(seed + 99), name="head")(y)
    y = keras.layers.Rescaling(logit_scale, name="logit_scale")(y)
    core = keras.Model(core_in, y, name=f"{name}_core")
    model = keras.Model(inputs, core(x), name=name)
    _dirac_init(core)
    if x_whiten is not None:
        whiten.set_weights([whitening_filters(x_whiten)])
    return model


def core_of(model: keras.Model) -> keras.Model:
    """The model without its uint8 rescaling: float images in [0, 1] -> outputs (what is served)."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def _dirac_init(core: keras.Model) -> None:
    """Make the first ``min(c_in, c_out)`` filters of each 3x3 conv the identity (airbench's partial dirac init)."""
    for layer in core.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("block"):
            kernel = np.array(layer.get_weights()[0])
            n = min(kernel.shape[2], kernel.shape[3])
            kernel[:, :, :, :n] = 0.0
            kernel[1, 1, np.arange(n), np.arange(n)] = 1.0
            layer.set_weights([kernel])


def whitening_filters(x_uint8: np.ndarray, eps: float = 5e-4) -> np.ndarray:
    """24 filters of shape 2x2x3: the patch covariance's eigenvectors scaled by 1/sqrt(eigenvalue), and their negatives.

    Patches are taken from standardized images; the result has Keras' kernel layout (2, 2, 3, 24).
    """
    x = (np.asarray(x_uint8, np.float64) / 255 - CIFAR_MEAN) / CIFAR_STD
    patches = np.stack([x[:, i:i + 31, j:j + 31, :] for i in (0, 1) for j in (0, 1)], axis=3)  # N,31,31,4,3
    flat = patches.reshape(-1, 12)  # (h, w, c) order, matching the kernel layout
    cov = flat.T @ flat / len(flat)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    scaled = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)  # columns are filters
    kernel = scaled.reshape(2, 2, 3, 12)
    return np.concatenate([kernel, -kernel], axis=3).astype("float32")


def count_params(model: keras.Model) -> int:
    """Trainable parameters only (the frozen whitening filters and batch-norm statistics are not learnt)."""
    return int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
