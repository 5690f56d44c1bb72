"""The networks of the course, each defined once, in backend-neutral Keras 3 with built-in layers only.

:func:`article_cnn` (the article's network, with width, head and batch-norm options),
:func:`tutorial_cnn` {cite}`tensorflow2024cnn`, :func:`fast_cnn` {cite}`jordan2024airbench` and
:func:`core_of` (without the rescaling: the served form). Every model takes uint8 images (N, 32, 32, 3)
and rescales them itself: 150 MB of training set instead of 1.2 GB of float64.
"""

from __future__ import annotations

import keras
import numpy as np

from helpers.data import IMAGE_SHAPE

#: per-channel mean and standard deviation of the CIFAR-10 training images (in [0, 1])
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
#: the article network's convolution filters and dense units at width 1 (its listing: Conv2D(32),
#: Conv2D(64), Dense(64), each convolution followed by 2x2 max-pooling)
ARTICLE_WIDTHS = {"convs": (32, 64), "dense": 64}
#: the article network's last feature map (after its ReLU): where Grad-CAM looks
ARTICLE_FEATURES = "relu2"
#: the TensorFlow tutorial's network: three convolutions, max-pooling after the first two
TUTORIAL_WIDTHS = {"convs": (32, 64, 64), "dense": 64}
#: airbench's block widths at width multiplier 1
FAST_WIDTHS = (64, 256, 256)


def article_cnn(
    width: float = 1.0,
    *,
    logits: bool = False,
    batch_norm: bool = False,
    bn_momentum: float = 0.9,
    name: str = "article_cnn",
) -> keras.Sequential:
    """The article's network: 3x3 convolutions of 32 and 64 filters, each with ReLU and 2x2 max-pooling,
    then ``Dense(64)`` with ReLU and ``Dense(10)``; every width times ``width`` (167,562 parameters at 1).

    ``logits=True`` ends in a plain ``Dense(10)`` (what ``from_logits=True`` expects). ``batch_norm`` puts
    BatchNormalization between each convolution (then without bias) and its ReLU; ``bn_momentum`` 0.9
    rather than Keras' 0.99, whose running statistics after a short run still lean on their start.
    Each ReLU is a layer of its own (``relu1``, ``relu2``) so that its output can be read.
    """
    return _cnn(ARTICLE_WIDTHS, (True, True), width, logits, batch_norm, bn_momentum, name)


def tutorial_cnn(*, logits: bool = False, name: str = "tutorial_cnn") -> keras.Sequential:
    """The TensorFlow CNN tutorial's network {cite}`tensorflow2024cnn` (a third convolution, 122,570
    parameters): the recorded GPU ladder (``results/gpu_runs.json``) was trained with it."""
    return _cnn(TUTORIAL_WIDTHS, (True, True, False), 1.0, logits, False, 0.9, name)


def _cnn(widths: dict, pools: tuple, width: float, logits: bool, batch_norm: bool, bn_momentum: float, name: str):
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    convs = [max(1, round(width * n)) for n in widths["convs"]]
    layers = [keras.layers.Rescaling(1 / 255, name="rescale")]  # the article divides by 255.0 in NumPy
    for i, (filters, pool) in enumerate(zip(convs, pools), start=1):
        layers.append(keras.layers.Conv2D(filters, (3, 3), use_bias=not batch_norm, name=f"conv{i}"))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}"))
        layers.append(keras.layers.Activation("relu", name=f"relu{i}"))
        if pool:
            layers.append(keras.layers.MaxPooling2D((2, 2), name=f"pool{i}"))
    layers += [
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(max(1, round(width * widths["dense"])), activation="relu", name="dense"),
        keras.layers.Dense(10, activation=None if logits else "softmax", name="logits" if logits else "probs"),
    ]
    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE, dtype="uint8"), *layers], name=name)


def _torch_like_uniform(seed: int | None = None):
    """PyTorch's default conv/linear initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform", seed=seed)


def fast_cnn(
    width: float = 1.0,
    x_whiten: np.ndarray | None = None,
    bn_momentum: float = 0.6,
    logit_scale: float = 1 / 9,
    seed: int = 0,
    name: str = "fast_cnn",
) -> keras.Model:
    """The airbench-style network; ``width`` multiplies the block widths (64, 256, 256).

    A frozen 2x2 whitening convolution (initialised from ``x_whiten``, uint8 images, if given), three
    blocks of (conv, max-pool, BN, GELU, conv, BN, GELU) with partial identity initialisation, and
    logits scaled down by a constant.
    """
    widths = [max(8, int(round(w * width))) for w in FAST_WIDTHS]
    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255, name="to_unit_range")(inputs)
    core_in = keras.Input(shape=IMAGE_SHAPE, name="unit_image")
    y = keras.layers.Normalization(mean=CIFAR_MEAN, variance=[s * s for s in CIFAR_STD], name="standardize")(core_in)
    whiten = keras.layers.Conv2D(
        24,
        2,
        padding="valid",
        use_bias=False,
        trainable=False,
        name="whiten",
        kernel_initializer=_torch_like_uniform(seed),
    )
    y = keras.layers.Activation("gelu", name="whiten_gelu")(whiten(y))
    for b, w in enumerate(widths, start=1):
        for c in (1, 2):
            y = keras.layers.Conv2D(
                w,
                3,
                padding="same",
                use_bias=False,
                name=f"block{b}_conv{c}",
                kernel_initializer=_torch_like_uniform(seed + 10 * b + c),
            )(y)
            if c == 1:
                y = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(y)
            y = keras.layers.BatchNormalization(
                momentum=bn_momentum, epsilon=1e-12, scale=False, name=f"block{b}_bn{c}"
            )(y)
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
    """The model without its uint8 rescaling (float images in [0, 1]): what is served."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        return nested[0]
    if not isinstance(model.layers[0], keras.layers.Rescaling):
        raise ValueError(f"{model.name} has no uint8 rescaling layer to strip")
    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE), *model.layers[1:]], name=f"{model.name}_core")


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
    """24 filters (2, 2, 3, 24): the eigenvectors of standardized images' patch covariance scaled by
    1/sqrt(eigenvalue), and their negatives."""
    x = (np.asarray(x_uint8, np.float64) / 255 - CIFAR_MEAN) / CIFAR_STD
    patches = np.stack([x[:, i : i + 31, j : j + 31, :] for i in (0, 1) for j in (0, 1)], axis=3)  # N,31,31,4,3
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
