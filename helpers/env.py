"""The machine a notebook runs on: Keras backend, seeds, determinism, hardware and versions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import os
import platform
import resource
import sys

from helpers.words import pick

BACKENDS = ("tensorflow", "jax", "torch")


def setup(backend: str = "tensorflow", seed: int = 0, deterministic: bool = True) -> dict:
    """Select the Keras backend (before Keras is imported), seed everything; :func:`hardware`'s description."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown Keras backend {backend!r}; choose one of {BACKENDS}")
    if importlib.util.find_spec(backend) is None:
        raise ValueError(
            f"keras_backend={backend!r}, but {backend} is not installed here: install it or choose another"
        )
    if (loaded := sys.modules.get("keras")) is not None and loaded.backend.backend() != backend:
        raise RuntimeError(f"Keras is already imported with another backend; restart the kernel to use {backend!r}")
    os.environ["KERAS_BACKEND"] = backend
    with native_stderr_silenced():  # TensorFlow's C++ start-up notices bypass TF_CPP_MIN_LOG_LEVEL
        import keras

    keras.utils.set_random_seed(seed)
    if backend == "tensorflow":
        import tensorflow as tf

        # tf.function retracing notices (one per new model evaluated) print memory addresses
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        untuned_array_pipelines()
    return hardware()


def untuned_array_pipelines() -> None:
    """Keras's NumPy-array pipeline without ``tf.data`` autotuning (once; nothing changes without the adapter):
    stopping the autotuner often waited ~2 s at the end of ``fit``, ``evaluate``, ``predict``; same batches, as fast."""
    import tensorflow as tf

    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:
        return
    if getattr(tuned := ArrayDataAdapter.get_tf_dataset, "untuned", False):
        return

    def get_tf_dataset(self):
        options = tf.data.Options()
        options.autotune.enabled = False
        return tuned(self).with_options(options)

    get_tf_dataset.untuned = True
    ArrayDataAdapter.get_tf_dataset = get_tf_dataset


@contextlib.contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the duration (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def accelerators() -> list[str]:
    """Names of the GPUs the current Keras backend can use (empty on a CPU-only machine)."""
    import keras

    if (backend := keras.backend.backend()) == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def cpu_name() -> str:
    """The processor's model name, as the operating system reports it."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        if name := next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None):
            return name
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def hardware() -> dict:
    """What the computation runs on (for :func:`describe`): GPU names, CPU and its core count."""
    return {"gpus": accelerators(), "cpu": cpu_name(), "cpu_cores": cpu_cores()}


def describe(hw: dict, lang: str = "en") -> str:
    """One line for the text: ``GPU (NVIDIA H200)`` or ``CPU (2 cores, <model>)``, or in Chinese."""
    if hw["gpus"]:
        return pick(lang, f"GPU ({', '.join(hw['gpus'])})", f"GPU（{'、'.join(hw['gpus'])}）")
    return pick(lang, f"CPU ({hw['cpu_cores']} cores, {hw['cpu']})", f"CPU（{hw['cpu_cores']} 个核心，{hw['cpu']}）")


def versions(packages=("python", "numpy", "keras", "tensorflow", "jax", "torch")) -> dict:
    """Installed versions of the packages that decide the numbers (None if not installed)."""
    found = dict.fromkeys(packages)
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = platform.python_version() if name == "python" else importlib.metadata.version(name)
    return found


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
