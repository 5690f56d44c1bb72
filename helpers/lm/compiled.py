"""The one place that knows the Keras backends: compile a ``keras.ops`` function, and hold the KV cache.

The cache is written in place, as copying it every step would cost more than a step's arithmetic on a CPU: a
``tf.Variable`` on TensorFlow, donated buffers on JAX (use the returned arrays), a functional update on PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def backend() -> str:
    return keras.backend.backend()


def compile_function(fn: Callable, static_argnums: tuple = (), donate_argnums: tuple = ()) -> Callable:
    """``fn`` traced and compiled for the backend (XLA fuses a one-token step's many small operations).

    ``static_argnums`` (Python values selecting a trace) and ``donate_argnums`` (buffers reused for the
    outputs) are JAX's; TensorFlow retraces for a new Python value by itself."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True, reduce_retracing=False)
    if name == "jax":
        import jax

        return jax.jit(fn, static_argnums=static_argnums, donate_argnums=donate_argnums)
    return fn


def specialize(fn: Callable, specs: list[tuple[tuple[int, ...], str]], *static) -> Callable:
    """``fn`` with its trailing ``static`` arguments fixed, for arguments of these (shape, dtype) ``specs``.

    On TensorFlow the concrete function is looked up once: matching the arguments against the traces on
    each call costs a fifth of a one-slot decode step on a CPU."""
    if backend() == "tensorflow":
        import tensorflow as tf

        concrete = fn.get_concrete_function(*(tf.TensorSpec(shape, dtype) for shape, dtype in specs), *static)
        return lambda *args: concrete(*(tf.convert_to_tensor(a) for a in args))
    return lambda *args: fn(*args, *static)


def in_place() -> bool:
    """True where cache buffers are variables written in place (TensorFlow); else the step returns new buffers."""
    return backend() == "tensorflow"


def new_buffer(shape: tuple[int, ...], dtype: str = "float32"):
    """A zeroed cache buffer: a ``tf.Variable`` on TensorFlow, an array elsewhere."""
    if in_place():
        import tensorflow as tf

        return tf.Variable(tf.zeros(shape, dtype=dtype), trainable=False)
    return keras.ops.zeros(shape, dtype=dtype)


def write_rows(buffer, index, rows):
    """Write ``rows`` (..., rest of the buffer's shape) at ``index`` (..., k leading indices); the buffer's new value
    (a ``tf.Variable`` is updated in place and returned itself)."""
    k = index.shape[-1]
    index = keras.ops.reshape(index, (-1, k))
    rows = keras.ops.reshape(rows, (-1, *buffer.shape[k:]))
    if hasattr(buffer, "scatter_nd_update"):
        buffer.scatter_nd_update(index, rows)
        return buffer
    return keras.ops.scatter_update(buffer, index, rows)


def leading(buffer, length: int):
    """The first ``length`` positions of a (slots, heads, max_len, head_dim) buffer, as a tensor."""
    if length >= buffer.shape[2]:
        return keras.ops.convert_to_tensor(buffer)
    return buffer[:, :, :length]


def nbytes(buffer) -> int:
    """Bytes a tensor or variable holds, from its shape and dtype (nothing is copied)."""
    return int(np.prod(buffer.shape)) * np.dtype(keras.backend.standardize_dtype(buffer.dtype)).itemsize


def to_numpy(x) -> np.ndarray:
    """A tensor or Keras variable as a NumPy array."""
    if isinstance(x, keras.Variable):
        return np.asarray(x.numpy())
    return keras.ops.convert_to_numpy(x)
