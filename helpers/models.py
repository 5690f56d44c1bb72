"""The networks of the course, each defined once in Keras 3; each takes uint8 images and rescales them itself."""

from __future__ import annotations

import keras
import numpy as np

from helpers.data import IMAGE_SHAPE

#: per-channel mean and standard deviation of the CIFAR-10 training images (in [0, 1])
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
#: the article network's last feature map (after its ReLU): where Grad-CAM looks
ARTICLE_FEATURES = "relu2"


def article_cnn(
    width: float = 1.0, *, logits: bool = False, batch_norm: bool = False, bn_momentum: float = 0.9, name="article_cnn"
) -> keras.Sequential:
    """The article's network, its widths times ``width``; ``batch_norm`` before each ReLU (momentum 0.9, not 0.99)."""
    return _cnn((32, 64), (True, True), width, logits, batch_norm, bn_momentum, name)


def tutorial_cnn(*, logits: bool = False, name: str = "tutorial_cnn") -> keras.Sequential:
    """The TensorFlow tutorial's network {cite}`tensorflow2024cnn` (the recorded GPU ladder's)."""
    return _cnn((32, 64, 64), (True, True, False), 1.0, logits, False, 0.9, name)


def _cnn(convs: tuple, pools: tuple, width: float, logits: bool, batch_norm: bool, bn_momentum: float, name: str):
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    layers = [keras.Input(shape=IMAGE_SHAPE, dtype="uint8"), keras.layers.Rescaling(1 / 255, name="rescale")]
    for i, (filters, pool) in enumerate(zip(convs, pools), start=1):
        layers.append(keras.layers.Conv2D(max(1, round(width * filters)), 3, use_bias=not batch_norm, name=f"conv{i}"))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}"))
        layers.append(keras.layers.Activation("relu", name=f"relu{i}"))
        if pool:
            layers.append(keras.layers.MaxPooling2D((2, 2), name=f"pool{i}"))
    layers += [
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(max(1, round(width * 64)), activation="relu", name="dense"),
        keras.layers.Dense(10, activation=None if logits else "softmax", name="logits" if logits else "probs"),
    ]
    return keras.Sequential(layers, name=name)


def fast_cnn(width: float = 1.0, x_whiten=None, bn_momentum: float = 0.6, seed: int = 0, name: str = "fast_cnn"):
    """The airbench network {cite}`jordan2024airbench`, whitened from the images ``x_whiten`` if given."""
    L = keras.layers
    # PyTorch's default initialisation of a convolution or dense layer: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    torch_like = lambda seed: keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=seed)
    inputs = keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")
    core_in = keras.Input(shape=IMAGE_SHAPE, name="unit_image")
    y = L.Normalization(mean=CIFAR_MEAN, variance=[s * s for s in CIFAR_STD], name="standardize")(core_in)
    whiten = L.Conv2D(24, 2, use_bias=False, trainable=False, kernel_initializer=torch_like(seed), name="whiten")
    y = L.Activation("gelu", name="whiten_gelu")(whiten(y))
    for b, w in enumerate((max(8, round(w * width)) for w in (64, 256, 256)), start=1):
        for c in (1, 2):
            init = torch_like(seed + 10 * b + c)
            y = L.Conv2D(w, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}", kernel_initializer=init)(y)
            if c == 1:
                y = L.MaxPooling2D(2, name=f"block{b}_pool")(y)
            y = L.BatchNormalization(momentum=bn_momentum, epsilon=1e-12, scale=False, name=f"block{b}_bn{c}")(y)
            y = L.Activation("gelu", name=f"block{b}_gelu{c}")(y)
    y = L.Flatten(name="flatten")(L.MaxPooling2D(3, name="final_pool")(y))
    y = L.Dense(10, use_bias=False, kernel_initializer=torch_like(seed + 99), name="head")(y)
    core = keras.Model(core_in, L.Rescaling(1 / 9, name="logit_scale")(y), name=f"{name}_core")
    model = keras.Model(inputs, core(L.Rescaling(1 / 255, name="to_unit_range")(inputs)), name=name)
    for layer in core.layers:  # airbench's partial dirac init: the first min(c_in, c_out) filters are the identity
        if isinstance(layer, L.Conv2D) and layer.name.startswith("block"):
            kernel = np.array(layer.get_weights()[0])
            n = min(kernel.shape[2:])
            kernel[:, :, :, :n] = 0.0
            kernel[1, 1, np.arange(n), np.arange(n)] = 1.0
            layer.set_weights([kernel])
    if x_whiten is not None:
        whiten.set_weights([whitening_filters(x_whiten)])
    return model


def core_of(model: keras.Model) -> keras.Model:
    """The model without its uint8 rescaling (float images in [0, 1]): what is served."""
    if nested := [layer for layer in model.layers if isinstance(layer, keras.Model)]:
        return nested[0]
    if not isinstance(model.layers[0], keras.layers.Rescaling):
        raise ValueError(f"{model.name} has no uint8 rescaling layer to strip")
    return keras.Sequential([keras.Input(shape=IMAGE_SHAPE), *model.layers[1:]], name=f"{model.name}_core")


def whitening_filters(x_uint8: np.ndarray, eps: float = 5e-4) -> np.ndarray:
    """24 filters (2, 2, 3, 24): the eigenvectors of 2x2 patch covariance over sqrt(eigenvalue), and negatives."""
    x = (np.asarray(x_uint8, np.float64) / 255 - CIFAR_MEAN) / CIFAR_STD
    patches = np.stack([x[:, i : i + 31, j : j + 31, :] for i in (0, 1) for j in (0, 1)], axis=3)  # N,31,31,4,3
    flat = patches.reshape(-1, 12)  # (h, w, c) order, matching the kernel layout
    eigenvalues, eigenvectors = np.linalg.eigh(flat.T @ flat / len(flat))
    order = np.argsort(eigenvalues)[::-1]
    kernel = (eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)).reshape(2, 2, 3, 12)  # columns: filters
    return np.concatenate([kernel, -kernel], axis=3).astype("float32")


def count_params(model: keras.Model) -> int:
    """Trainable parameters only (the frozen whitening filters and batch-norm statistics are not learnt)."""
    return int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
