"""The one place that knows the Keras backends: compile a ``keras.ops`` function, and hold the KV cache.

Model code is written against ``keras.ops`` only; to run fast, a function of tensors is traced
once and reused: ``tf.function`` on TensorFlow, ``jax.jit`` on JAX, plain eager calls on PyTorch.
Fixed shapes (a preallocated cache, padded prompts) keep the number of traces small.

**The KV cache, updated in place.** A decode step writes one key and one value per sequence into
a cache of (slots, heads, max_len, head_dim) per layer. Written functionally (a new tensor with
one row changed), every step copies the whole cache: 42 MB at 32 slots for the chapter's model,
more than the step's arithmetic costs on a CPU. So the cache is a buffer updated in place:

* TensorFlow: each buffer is a ``tf.Variable``; :func:`write_rows` is a ``scatter_nd_update`` on it,
  inside the compiled step (XLA updates the variable's memory, nothing is copied);
* JAX: arrays are immutable, but a compiled function may *donate* its input buffers
  (``jax.jit(..., donate_argnums=...)``): XLA then writes the output into the input's memory, and
  the caller must use the returned arrays (the old ones are deleted);
* PyTorch (eager): the functional update, as before.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def backend() -> str:
    return keras.backend.backend()


def compile_function(
    fn: Callable, jit_compile: bool = True, static_argnums: tuple[int, ...] = (), donate_argnums: tuple[int, ...] = ()
) -> Callable:
    """``fn`` traced and compiled for the current backend (called with tensors or NumPy arrays).

    On TensorFlow ``jit_compile=True`` (the default) asks for XLA, which fuses the many small
    operations of a one-token step (about three times faster on a CPU than a plain graph); JAX
    always compiles with XLA. ``static_argnums`` are Python values that select a trace (one per
    value: TensorFlow retraces for a new Python value by itself); ``donate_argnums`` are inputs
    whose buffers JAX may reuse for the outputs (ignored elsewhere: TensorFlow updates variables).
    """
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=jit_compile, reduce_retracing=False)
    if name == "jax":
        import jax

        return jax.jit(fn, static_argnums=static_argnums, donate_argnums=donate_argnums)
    return fn


def specialize(fn: Callable, specs: list[tuple[tuple[int, ...], str]], *static) -> Callable:
    """``fn`` with its trailing ``static`` arguments fixed, for arguments of these (shape, dtype) ``specs``.

    On TensorFlow the trace is looked up once and its concrete function called directly: a
    ``tf.function`` otherwise matches every argument against its traces on each call, which
    costs a fifth of a one-slot decode step on a CPU. Elsewhere, ``fn(*args, *static)``.
    """
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
    """Write ``rows`` at ``index`` of ``buffer``; the buffer's new value.

    ``index`` (..., k) holds the leading indices of ``buffer`` of each row of ``rows`` (..., rest
    of the buffer's shape). In place on a ``tf.Variable`` (the variable itself is returned, to be
    read in the same compiled step); a functional ``scatter_update`` on an array (donated
    buffers make it in place under ``jax.jit``).
    """
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
