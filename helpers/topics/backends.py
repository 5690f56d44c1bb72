"""Time the same Keras code on each backend (TensorFlow, JAX, PyTorch), each in its own process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from helpers.env import BACKENDS
from helpers.paths import ROOT, python_env

#: What each subprocess runs; argv: images, epochs, batch_size, seed.
SCRIPT = r"""
import json, sys, time
images, epochs, batch_size, seed = (int(a) for a in sys.argv[1:5])
from helpers import env
env.setup(env.os.environ["KERAS_BACKEND"], seed=seed)
import keras, numpy as np
from helpers import models
rng = np.random.default_rng(seed)
x = rng.integers(0, 256, size=(images, 32, 32, 3), dtype=np.uint8)
y = rng.integers(0, 10, size=images)
start = time.perf_counter()
model = models.article_cnn(1.0, logits=True)
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x[:batch_size * 2], y[:batch_size * 2], epochs=1, batch_size=batch_size, verbose=0)
first = time.perf_counter() - start  # build, trace/compile, two steps
start = time.perf_counter()
model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
train = time.perf_counter() - start
model.predict(x[:batch_size], batch_size=batch_size, verbose=0)
start = time.perf_counter()
model.predict(x, batch_size=256, verbose=0)
infer = time.perf_counter() - start
print("RESULT " + json.dumps({"startup_s": first, "train_images_per_s": images * epochs / train,
                              "predict_images_per_s": images / infer,
                              "version": __import__(env.os.environ["KERAS_BACKEND"]).__version__}))
"""


def installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def time_backend(
    backend: str, images: int = 2048, epochs: int = 1, batch_size: int = 64, seed: int = 0, timeout: float = 300.0
) -> dict:
    """Run :data:`SCRIPT` under ``KERAS_BACKEND=backend``; a dict with ``status`` and the timings."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    row = {"backend": backend, "status": "not installed"}
    if not installed(backend):
        return row
    env = python_env(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", ""))
    env.pop("MPLBACKEND", None)
    try:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(images), str(epochs), str(batch_size), str(seed)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**row, "status": f"timed out after {timeout:.0f} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "status": f"failed: {last[:200]}"}
    return {**row, "status": "ok", **json.loads(lines[-1][len("RESULT ") :])}


def time_backends(backends=BACKENDS, **kwargs) -> list[dict]:
    """:func:`time_backend` for each backend, one after the other (never two at once)."""
    return [time_backend(b, **kwargs) for b in backends]
