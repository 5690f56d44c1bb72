"""Data-parallel training: one model, several devices, and how far it scales.

Data parallelism keeps a full copy of the model on every device ("replica"), splits each global
batch into equal per-replica slices, computes the gradients of every slice on its own replica,
averages them across replicas (an *all-reduce*) and applies the same update everywhere, so the
copies never drift apart. This module trains the same model (the article's CNN or the fast net of
:mod:`helpers.models`) in four ways and measures each one's throughput:

================== ========== ===================================================================
mode               backend    how
================== ========== ===================================================================
single             TF         plain Keras ``fit`` on one device: the baseline
mirrored           TF         ``tf.distribute.MirroredStrategy`` over N devices of one process (on
                              a CPU: N *logical* devices carved out of the one physical CPU)
multiworker        TF         ``tf.distribute.MultiWorkerMirroredStrategy``: N worker processes,
                              one replica each, talking gRPC on 127.0.0.1 (ring all-reduce);
                              a written-out training loop, since Keras 3's ``fit`` fails here
jax-dataparallel   JAX        ``keras.distribution.DataParallel`` over N JAX devices (on a CPU:
                              ``XLA_FLAGS=--xla_force_host_platform_device_count=N``)
================== ========== ===================================================================

What works where (checked with TensorFlow 2.21, Keras 3.15, JAX 0.10.2 on a CPU):

* Keras 3 ``fit`` under ``MirroredStrategy`` works on the TensorFlow backend, when the model is
  built *and* compiled inside ``strategy.scope()``.
* Keras 3 ``fit`` under ``MultiWorkerMirroredStrategy`` fails before the first step (it all-reduces
  a uint8 input batch across workers to trace the model; keras-team/keras#20585, open). The
  strategy itself works: ``multiworker`` trains the same Keras model with ``strategy.run`` in a
  short loop (:func:`_train_tf_custom_loop`, TensorFlow's documented custom-loop pattern); ``--loop
  custom`` runs that loop in the other TensorFlow modes too, for comparison.
* Keras 3 ``fit`` has no ``ParameterServerStrategy`` support (tf-keras 2 had it); use a custom loop
  with ``tf.distribute.coordinator.ClusterCoordinator``.
* On JAX (and PyTorch) ``tf.distribute`` does nothing; the Keras 3 API there is
  :mod:`keras.distribution` (``DataParallel``, ``ModelParallel``), set once with
  ``keras.distribution.set_distribution`` before the model is built; it is implemented for JAX.

All modes train on the same batches (:func:`epoch_order`) from the same initial weights, so they
end at the same loss up to rounding (the tests check this): data parallelism changes where the
arithmetic runs, not what is computed. (A pipeline that reshuffles on every pass would not do:
``fit`` under a strategy reads the pipeline once more to trace the model, which shifts the
shuffles.) Each mode runs in its own process, because device layouts (logical CPU devices,
``XLA_FLAGS``, ``TF_CONFIG``) must be fixed before the framework initialises.

On one machine's CPU the replicas share the same cores, so data parallelism cannot make training
faster there: the figures show its *overhead* (splitting, all-reduce, and for several workers,
gRPC between processes). The speed-up appears when each replica has its own accelerator or host.

The path to many machines
-------------------------
Nothing in the model changes; what changes is who starts the processes and how they find each other.

* **TensorFlow, synchronous** (``MultiWorkerMirroredStrategy``): start the same script on every
  host with a ``TF_CONFIG`` environment variable naming the whole cluster and this host's place in
  it, e.g. ``{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker",
  "index": 1}}`` (this is what :func:`worker_env` writes, with 127.0.0.1 for every host). Worker 0 is
  the *chief*. Each host may also have several GPUs: replicas = hosts x GPUs per host. Choose
  ``CommunicationImplementation.NCCL`` on GPUs, ``RING`` (gRPC) otherwise. Cluster managers
  (Kubernetes' TFJob, SLURM via ``SlurmClusterResolver``) write ``TF_CONFIG`` for you.
* **TensorFlow, asynchronous** (``ParameterServerStrategy``): the cluster has ``chief``,
  ``worker`` and ``ps`` tasks; variables live on the parameter servers, workers push updates
  without waiting for each other (tolerates slow or failing workers; with Keras 3, a custom loop
  with ``ClusterCoordinator``).
* **JAX**: every host runs the same program and calls
  ``jax.distributed.initialize(coordinator_address="host0:1234", num_processes=P, process_id=i)``
  before anything else; ``jax.devices()`` then lists the devices of *all* hosts and
  ``keras.distribution.DataParallel(devices=jax.devices())`` spans them. For models too large for
  one device, ``keras.distribution.ModelParallel`` with a ``DeviceMesh(shape=(data, model),
  axis_names=("batch", "model"))`` and a ``LayoutMap`` shards the weights as well as the batch.

Whatever the framework:

* **Global batch = per-replica batch x replicas.** Keep the per-replica batch (it fills a device)
  and the global batch grows with the cluster; ``--batch-size`` here is the *global* batch.
* **Learning rate.** A larger global batch takes fewer, less noisy steps per epoch: scale the
  learning rate with it (linearly for SGD, roughly with its square root for Adam) and warm it up
  over the first epochs (Goyal et al., 2017).
* **Data sharding.** Each replica must see different examples: shard files per worker
  (``AutoShardPolicy.FILE``) when there are at least as many files as workers, else every worker
  reads everything and keeps its share (``DATA``, used here); all workers must shuffle with the
  same seed.
* **Checkpoints, logs and exports on the chief only** (``task index 0`` / ``jax.process_index() ==
  0``); the other workers write to scratch paths (TensorFlow needs them to take part in saving).
  Use ``keras.callbacks.BackupAndRestore`` so a restarted cluster resumes from the last epoch.

Command line (one JSON line on standard output)::

    python -m helpers.topics.parallel --mode mirrored --devices 2 --train-size 10000 --epochs 3 --batch-size 256

and from Python, :func:`measure` runs each mode in its own process and returns the records.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

from helpers import processes
from helpers.paths import ROOT, python_env

MODES = ("single", "mirrored", "multiworker", "jax-dataparallel")
MODELS = ("article", "fast")
BACKEND_OF = {"single": "tensorflow", "mirrored": "tensorflow", "multiworker": "tensorflow", "jax-dataparallel": "jax"}


# --------------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m helpers.topics.parallel",
        description="Train one model data-parallel and print one JSON line of measurements.",
    )
    p.add_argument("--mode", default="single", help=f"one of {', '.join(MODES)}")
    p.add_argument(
        "--devices",
        type=int,
        default=2,
        help="replicas: logical devices (mirrored, jax-dataparallel) or worker processes (multiworker)",
    )
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256, help="global batch size (split across replicas)")
    p.add_argument("--model", default="article", help=f"one of {', '.join(MODELS)}")
    p.add_argument("--width", type=float, default=0.5, help="width multiplier of the fast model")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--loop",
        default="fit",
        choices=("fit", "custom"),
        help="TensorFlow modes: Keras fit, or the written-out loop (multiworker always uses custom)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds the multiworker parent waits for its workers")
    # internal: how the multiworker parent starts its workers
    p.add_argument("--role", default="main", choices=("main", "worker"), help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    return p


def check_args(mode: str, devices: int, train_size: int, epochs: int, batch_size: int, model: str) -> None:
    """Raise ValueError with a clear message for settings that cannot run (``single`` ignores ``devices``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if devices < 1:
        raise ValueError(f"devices={devices}: need at least one device (or worker)")
    if epochs < 1:
        raise ValueError(f"epochs={epochs}: need at least one epoch")
    replicas = 1 if mode == "single" else devices
    if batch_size < replicas or batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of the {replicas} replicas, "
            f"so that every replica gets an equal slice"
        )
    if not 0 < train_size <= 50_000:
        raise ValueError(f"train_size={train_size}: CIFAR-10 has 50,000 training images")
    if train_size < batch_size:
        raise ValueError(f"train_size={train_size} is smaller than one global batch ({batch_size})")


# --------------------------------------------------------------------------------------------
# one process's training (runs after the device layout is fixed)
# --------------------------------------------------------------------------------------------


def _data(args):
    from helpers.data import load_cifar10

    data = load_cifar10(train_size=args.train_size, test_size=10, seed=args.seed)
    return data.x_train, data.y_train


def _build_and_compile(args, x):
    import keras

    from helpers import models

    if args.model == "fast":
        model = models.fast_cnn(args.width, x_whiten=x[:5000], seed=args.seed)
    else:
        model = models.article_cnn(logits=True)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _epoch_timer():
    from helpers.training import (
        EpochTimer,  # imports Keras: only once the backend is fixed
    )

    return EpochTimer()


def epoch_order(n: int, batch_size: int, epochs: int, seed: int):
    """Indices of the training images in the order they are used: a fresh permutation per epoch.

    Epoch ``e``'s order depends only on ``(seed, e)`` (as in :mod:`helpers.topics.recipe`), never on how
    often a pipeline was iterated before, so every mode and every worker sees the same batches.
    The last partial batch of each epoch is dropped, so that all replicas get equal slices.
    """
    import numpy as np

    steps = n // batch_size
    return np.concatenate(
        [np.random.default_rng([seed, e]).permutation(n)[: steps * batch_size] for e in range(epochs)]
    )


def _tf_dataset(x, y, batch_size: int, seed: int, epochs: int):
    """All epochs' global batches, in :func:`epoch_order`, as one tf.data pipeline.

    Under a strategy each global batch is split into per-replica slices; with several workers,
    ``AutoShardPolicy.DATA`` makes every worker read the same pipeline and keep its own slices.
    """
    import tensorflow as tf

    order = epoch_order(len(x), batch_size, epochs, seed)
    ds = (
        tf.data.Dataset.from_tensor_slices((x[order], y[order]))
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)


def _record(args, mode, replicas, workers, devices, seconds, final_loss, steps, backend, loop="fit") -> dict:
    timed = seconds[1:] if len(seconds) > 1 else seconds  # the first epoch also compiles
    per_epoch = sum(timed) / len(timed)
    images = steps * args.batch_size
    return {
        "mode": mode,
        "backend": backend,
        "model": args.model,
        "devices": devices,
        "workers": workers,
        "devices_per_worker": devices // workers,
        "replicas": replicas,
        "global_batch_size": args.batch_size,
        "per_replica_batch_size": args.batch_size // replicas,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "steps_per_epoch": steps,
        "images_per_second": round(images / per_epoch, 1),
        "seconds_per_epoch": round(per_epoch, 3),
        "epoch_seconds": [round(s, 3) for s in seconds],
        "timed_epochs": len(timed),
        "final_loss": float(final_loss),
        "loop": loop,
        "seed": args.seed,
    }


def _train_tf(args, strategy, mode: str, workers: int, devices: int) -> dict:
    """Keras ``fit`` under ``strategy``: the model is built and compiled in its scope."""
    import keras

    keras.utils.set_random_seed(args.seed)
    x, y = _data(args)
    steps = len(x) // args.batch_size
    ds = _tf_dataset(x, y, args.batch_size, args.seed, args.epochs)
    with strategy.scope():
        model = _build_and_compile(args, x)
    timer = _epoch_timer()
    history = model.fit(ds, epochs=args.epochs, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[timer])
    return _record(
        args,
        mode,
        strategy.num_replicas_in_sync,
        workers,
        devices,
        timer.seconds,
        history.history["loss"][-1],
        steps,
        "tensorflow",
    )


def _train_tf_custom_loop(args, strategy, mode: str, workers: int, devices: int) -> dict:
    """The same training as ``fit``, written out: what ``fit`` does under a strategy, step by step.

    Used for MultiWorkerMirroredStrategy, which Keras 3's ``fit`` does not support (it fails
    before the first step, reducing a uint8 input batch across workers to trace the model:
    keras-team/keras#20585). Each replica computes the loss of its slice divided by the *global*
    batch size, so that summing the replicas' gradients (the all-reduce inside
    ``optimizer.apply``) gives the gradient of the global batch's mean loss.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    x, y = _data(args)
    steps = len(x) // args.batch_size
    dataset = _tf_dataset(x, y, args.batch_size, args.seed, args.epochs)
    batches = iter(strategy.experimental_distribute_dataset(dataset))  # per-replica slices of each global batch
    with strategy.scope():
        model = _build_and_compile(args, x)
        per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = tf.nn.compute_average_loss(per_example(yb, logits), global_batch_size=args.batch_size)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function
    def train_step(batch):
        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    seconds, final_loss = [], float("nan")
    for _ in range(args.epochs):
        start, total, n = time.perf_counter(), 0.0, 0
        for _ in range(steps):
            total += float(train_step(next(batches)))
            n += 1
        seconds.append(time.perf_counter() - start)
        final_loss = total / max(n, 1)
    return _record(
        args,
        mode,
        strategy.num_replicas_in_sync,
        workers,
        devices,
        seconds,
        final_loss,
        steps,
        "tensorflow",
        loop="custom",
    )


def _deterministic_tf():
    """Same settings, same numbers: TensorFlow's op determinism, in every TensorFlow mode alike
    (it costs some speed, so the throughput comparison stays fair only if all modes pay it)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return tf


def run_single(args) -> dict:
    tf = _deterministic_tf()
    train = _train_tf_custom_loop if args.loop == "custom" else _train_tf
    return train(args, tf.distribute.get_strategy(), "single", workers=1, devices=1)


def run_mirrored(args) -> dict:
    tf = _deterministic_tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    # on a CPU the all-reduce must not use NCCL (GPU only): reduce on the host
    strategy = tf.distribute.MirroredStrategy(devices=names, cross_device_ops=tf.distribute.ReductionToOneDevice())
    train = _train_tf_custom_loop if args.loop == "custom" else _train_tf
    return train(args, strategy, "mirrored", workers=1, devices=args.devices)


def run_worker(args) -> dict:
    """One worker of the multiworker mode; TF_CONFIG (set by the parent) says who it is."""
    tf = _deterministic_tf()
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    workers = len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])
    return _train_tf_custom_loop(args, strategy, "multiworker", workers=workers, devices=workers)


def run_jax(args) -> dict:
    """keras.distribution.DataParallel over ``--devices`` JAX devices (host devices on a CPU)."""
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError("jax-dataparallel needs KERAS_BACKEND=jax (set before Keras is imported)")
    devices = jax.devices()[: args.devices]
    if len(devices) < args.devices:
        raise RuntimeError(
            f"asked for {args.devices} JAX devices, found {len(jax.devices())}; on a CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={args.devices} before JAX starts"
        )
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(args.seed)
    x, y = _data(args)
    steps = len(x) // args.batch_size
    model = _build_and_compile(args, x)
    # the same batches as the TensorFlow modes, all epochs in a row (fit reads on across epochs
    # when given steps_per_epoch); each batch is split along the mesh's "batch" axis
    order = epoch_order(len(x), args.batch_size, args.epochs, args.seed)
    timer = _epoch_timer()
    history = model.fit(
        x[order],
        y[order],
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=steps,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    seconds, losses = timer.seconds, history.history["loss"]
    # every weight is replicated on all the mesh's devices (data parallelism keeps a full copy per device)
    weight_devices = len(model.trainable_variables[0].value.sharding.device_set)
    replicas = int(distribution.device_mesh.shape[0])
    record = _record(args, "jax-dataparallel", replicas, 1, len(devices), seconds, losses[-1], steps, "jax")
    record["weight_copies"] = weight_devices
    return record


# --------------------------------------------------------------------------------------------
# the multiworker parent: ports, TF_CONFIG, worker processes
# --------------------------------------------------------------------------------------------


def worker_env(ports: list[int], index: int, base: dict | None = None) -> dict:
    """The environment of worker ``index``: a TF_CONFIG naming every worker on 127.0.0.1."""
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    env = dict(os.environ if base is None else base)
    env.update(TF_CONFIG=json.dumps(tf_config), KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _worker_argv(args, index: int) -> list[str]:
    return processes.module(
        "helpers.topics.parallel",
        "--role",
        "worker",
        "--index",
        str(index),
        "--mode",
        "multiworker",
        "--devices",
        str(args.devices),
        "--train-size",
        str(args.train_size),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--model",
        args.model,
        "--width",
        str(args.width),
        "--learning-rate",
        str(args.learning_rate),
        "--seed",
        str(args.seed),
    )


def _tail(text: str, chars: int = 3000) -> str:
    text = (text or "").strip()
    return text if len(text) <= chars else "..." + text[-chars:]


def run_multiworker(args) -> dict:
    """Start ``args.devices`` workers on 127.0.0.1, wait for them (up to ``args.timeout``), return the chief's record.

    Each worker is a :class:`helpers.processes.Child` (its own process group, ended if this
    process goes away); if one fails, all are stopped and the error names it, with its output.
    """
    ports = processes.free_ports(args.devices)
    workers = []
    try:
        for i in range(args.devices):
            workers.append(
                processes.Child(_worker_argv(args, i), stream="both", env=worker_env(ports, i), name=f"worker {i}")
            )
        deadline = time.monotonic() + args.timeout
        failed = None
        while failed is None:
            codes = [w.process.poll() for w in workers]
            bad = [str(i) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed = f"worker {', '.join(bad)} failed"
            elif all(c == 0 for c in codes):
                break
            elif time.monotonic() > deadline:
                failed = f"workers did not finish within {args.timeout:.0f} s"
            else:
                time.sleep(0.2)
        for w in workers:
            w.stop(graceful=False)
        if failed:
            details = [
                f"--- worker {i} (exit {w.process.returncode}) output tail ---\n{_tail(w.tail(40), 1500)}"
                for i, w in enumerate(workers)
            ]
            raise RuntimeError(f"multiworker run on 127.0.0.1 ports {ports}: {failed}\n" + "\n".join(details))
        records = [e for e in workers[0].lines if "mode" in e and "images_per_second" in e]
        if not records:
            raise RuntimeError("the chief (worker 0) finished without printing its JSON record")
        return records[-1]
    finally:
        for w in workers:  # on any way out (an interrupt included), no worker outlives this call
            w.stop(graceful=False)


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------


def _prepare_process(mode: str, devices: int) -> None:
    """Settings that must precede the first import of TensorFlow / JAX / Keras in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if BACKEND_OF[mode] == "jax":
        os.environ["KERAS_BACKEND"] = "jax"
        flag = f"--xla_force_host_platform_device_count={devices}"
        os.environ["XLA_FLAGS"] = (
            " ".join(
                f
                for f in os.environ.get("XLA_FLAGS", "").split()
                if not f.startswith("--xla_force_host_platform_device_count")
            )
            + " "
            + flag
        )
    else:
        os.environ["KERAS_BACKEND"] = "tensorflow"
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != os.environ["KERAS_BACKEND"]:
        raise RuntimeError(
            f"Keras is already imported with the {loaded.backend.backend()!r} backend; "
            f"mode {mode!r} needs its own process (use measure())"
        )


def run(args) -> dict:
    """Run the mode ``args`` describes in this process and return its record."""
    check_args(args.mode, args.devices, args.train_size, args.epochs, args.batch_size, args.model)
    if BACKEND_OF[args.mode] == "jax" and importlib.util.find_spec("jax") is None:
        raise ValueError(
            f"mode {args.mode!r} needs JAX, which {sys.executable} does not have: install it "
            f"(pip install -r requirements-backends.txt) or run this mode with an interpreter that "
            f"has it (measure(jax_python=...) or MAAS_JAX_PYTHON)"
        )
    _prepare_process(args.mode, args.devices)
    if args.role == "worker":
        processes.exit_with_parent()  # a worker never outlives the run that started it
        return run_worker(args)
    return {
        "single": run_single,
        "mirrored": run_mirrored,
        "multiworker": run_multiworker,
        "jax-dataparallel": run_jax,
    }[args.mode](args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.mode == "single" and args.devices >= 1:
        args.devices = 1  # the baseline has one device whatever --devices says
    try:
        record = run(args)
    except ValueError as e:  # settings that cannot run
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a run that failed (e.g. a worker of the multiworker mode)
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.role == "main" or args.index == 0:
        print(json.dumps(record), flush=True)
    return 0


def measure(
    modes=("single", "mirrored", "multiworker"),
    devices: int = 2,
    train_size: int = 10_000,
    epochs: int = 3,
    batch_size: int = 256,
    model: str = "article",
    width: float = 0.5,
    seed: int = 0,
    timeout: float = 900.0,
    jax_python: str | None = None,
) -> list[dict]:
    """Run each mode in its own process (``python -m helpers.topics.parallel``) and return the JSON records.

    ``single`` always uses one device; the other modes use ``devices`` replicas. ``jax_python`` is
    the interpreter for ``jax-dataparallel`` (one with JAX installed; default: ``$MAAS_JAX_PYTHON``,
    else this one). Raises ValueError for settings that cannot run, and
    RuntimeError naming the mode, with the end of its standard error, if a run fails.
    """
    if not modes:
        raise ValueError("no modes to measure")
    for mode in modes:
        check_args(mode, 1 if mode == "single" and devices >= 1 else devices, train_size, epochs, batch_size, model)
    records = []
    for mode in modes:
        python = sys.executable
        if BACKEND_OF[mode] == "jax":
            python = jax_python or os.environ.get("MAAS_JAX_PYTHON") or sys.executable
        argv = processes.module(
            "helpers.topics.parallel",
            "--mode",
            mode,
            "--devices",
            str(1 if mode == "single" else devices),
            "--train-size",
            str(train_size),
            "--epochs",
            str(epochs),
            "--batch-size",
            str(batch_size),
            "--model",
            model,
            "--width",
            str(width),
            "--seed",
            str(seed),
            "--timeout",
            str(timeout),
            python=python,
        )
        env = python_env(KERAS_BACKEND=BACKEND_OF[mode], TF_CPP_MIN_LOG_LEVEL="3")
        for name in ("TF_CONFIG", "XLA_FLAGS"):
            env.pop(name, None)
        try:
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(
                f"parallel mode {mode!r} did not finish within {timeout + 60:.0f} s\n"
                f"{_tail(e.stderr if isinstance(e.stderr, str) else '')}"
            ) from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"parallel mode {mode!r} failed (exit {done.returncode}) running {' '.join(argv[1:])}\n"
                f"stderr tail:\n{_tail(done.stderr)}"
            )
        records.append(json.loads(lines[-1]))
    return records


def relative_table(records: list[dict]) -> list[dict]:
    """Rows for the chapter's table: each record's throughput relative to one device of the same backend.

    The baseline of a backend is its first one-replica record (``single`` for TensorFlow,
    ``jax-dataparallel`` with one device for JAX), else the first record; the frameworks' own
    speeds differ too much on a CPU for a cross-backend ratio to mean anything.
    """

    def baseline(backend: str) -> float:
        ones = [r for r in records if r["backend"] == backend and r["replicas"] == 1]
        return (ones or [r for r in records if r["backend"] == backend])[0]["images_per_second"]

    return [
        {
            "mode": r["mode"],
            "backend": r["backend"],
            "replicas": r["replicas"],
            "workers": r["workers"],
            "global batch": r["global_batch_size"],
            "images/s": r["images_per_second"],
            "s/epoch": r["seconds_per_epoch"],
            "vs one device": round(r["images_per_second"] / baseline(r["backend"]), 2),
            "final loss": round(r["final_loss"], 4),
        }
        for r in records
    ]


if __name__ == "__main__":
    sys.exit(main())
