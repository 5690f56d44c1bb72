"""What the layers of the article's network compute, written out in NumPy."""

from __future__ import annotations

import numpy as np

from helpers.topics.optim import softmax


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Convolve one image ``x`` (H, W, C_in) with ``kernel`` (k, k, C_in, C_out), no padding, stride 1."""
    x, kernel = np.asarray(x, dtype=float), np.asarray(kernel, dtype=float)
    k = kernel.shape[0]
    if kernel.shape[1] != k or kernel.shape[2] != x.shape[2]:
        raise ValueError(f"kernel {kernel.shape} does not fit an image with {x.shape[2]} channels")
    height, width = x.shape[0] - k + 1, x.shape[1] - k + 1
    # every k x k patch at once: (height, width, k, k, C_in), then one contraction with the kernel
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1)).transpose(0, 1, 3, 4, 2)
    out = np.tensordot(patches[:height, :width], kernel, axes=3)
    return out if bias is None else out + np.asarray(bias, dtype=float)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def max_pool2d(x: np.ndarray, size: int = 2) -> np.ndarray:
    """Max-pooling of (H, W, C) over ``size`` x ``size`` windows; an odd last row or column is dropped (as Keras)."""
    height, width = x.shape[0] // size, x.shape[1] // size
    windows = np.asarray(x)[: height * size, : width * size].reshape(height, size, width, size, -1)
    return windows.max(axis=(1, 3))


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float) @ np.asarray(kernel, dtype=float) + np.asarray(bias, dtype=float)


_ACTIVATIONS = {"linear": lambda z: z, "relu": relu, "softmax": softmax}


def _activate(layer, z):
    name = getattr(layer.activation, "__name__", "linear")
    if name not in _ACTIVATIONS:
        raise ValueError(f"{layer.name}: activation {name!r} is not written out here")
    return _ACTIVATIONS[name](z)


def forward_by_hand(model, image: np.ndarray) -> np.ndarray:
    """Run one image through a Keras ``Sequential`` of Rescaling, Conv2D, Activation, MaxPooling2D,
    Flatten and Dense layers with the NumPy functions above and the model's own weights."""
    import keras

    h = np.asarray(image, dtype=float)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Rescaling):
            h = h * layer.scale + layer.offset
        elif isinstance(layer, keras.layers.Conv2D):
            if layer.strides != (1, 1) or layer.padding != "valid" or layer.dilation_rate != (1, 1):
                raise ValueError(f"{layer.name}: only stride 1, no padding, no dilation are written out here")
            h = _activate(layer, conv2d(h, *layer.get_weights()))
        elif isinstance(layer, keras.layers.Activation):
            h = _activate(layer, h)
        elif isinstance(layer, keras.layers.MaxPooling2D):
            if layer.pool_size[0] != layer.pool_size[1] or tuple(layer.strides) != tuple(layer.pool_size):
                raise ValueError(f"{layer.name}: only square pools with stride = size are written out here")
            h = max_pool2d(h, layer.pool_size[0])
        elif isinstance(layer, keras.layers.Flatten):
            h = h.reshape(-1)
        elif isinstance(layer, keras.layers.Dense):
            h = _activate(layer, dense(h, *layer.get_weights()))
        else:
            raise ValueError(f"{layer.name}: a {type(layer).__name__} layer is not written out here")
    return h


def layer_outputs(model, x, names=None) -> dict[str, np.ndarray]:
    """Layer name -> NumPy output of each layer of a ``Sequential`` (or those in ``names``) for images ``x``."""
    import keras

    h = keras.ops.convert_to_tensor(np.asarray(x))
    out = {}
    for layer in model.layers:
        h = layer(h)
        if names is None or layer.name in names:
            out[layer.name] = keras.ops.convert_to_numpy(h)
    return out


def layer_table(model):
    """``model.summary()`` as a table :func:`helpers.show.table` labels in each language: per layer, its Keras
    class (the index), the output shape of one example (``30×30×32``) and the parameter count."""
    import pandas as pd

    rows = [
        (type(layer).__name__, "×".join(str(d) for d in tuple(layer.output.shape)[1:]), int(layer.count_params()))
        for layer in model.layers
    ]
    return pd.DataFrame(rows, columns=["layer", "output shape", "parameters"]).set_index("layer")
