"""Data-parallel training: one model trained on one device, on N mirrored devices, and by N worker processes.

Modes (TensorFlow, each in its own process, since a device layout is fixed when TensorFlow starts):
``single`` (Keras ``fit`` on one device), ``mirrored`` (``MirroredStrategy`` over N logical CPU
devices) and ``multiworker`` (``MultiWorkerMirroredStrategy``: N worker processes on 127.0.0.1,
each with its own ``TF_CONFIG``, trained with a written-out ``strategy.run`` loop because Keras 3's
``fit`` fails there, keras-team/keras#20585). All modes train on the same batches
(:func:`epoch_order`) from the same weights, so they end at the same loss up to rounding.
:func:`measure` runs the modes and returns one record each; the command line prints one::

    python -m helpers.topics.parallel --mode mirrored --devices 2 --train-size 10000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from helpers import processes
from helpers.paths import ROOT, python_env

MODES = ("single", "mirrored", "multiworker")


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
        help="replicas: logical devices (mirrored) or worker processes (multiworker)",
    )
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256, help="global batch size (split across replicas)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds the multiworker parent waits for its workers")
    # internal: how the multiworker parent starts its workers
    p.add_argument("--role", default="main", choices=("main", "worker"), help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    return p


def check_args(mode: str, devices: int, train_size: int, epochs: int, batch_size: int) -> None:
    """Raise ValueError with a clear message for settings that cannot run (``single`` ignores ``devices``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
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


def _build_and_compile(args):
    """The article's CNN (with logits), compiled with Adam."""
    import keras

    from helpers import models

    model = models.article_cnn(logits=True)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


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


def _record(args, mode, replicas, workers, devices, seconds, final_loss, steps, loop="fit") -> dict:
    timed = seconds[1:] if len(seconds) > 1 else seconds  # the first epoch also compiles
    per_epoch = sum(timed) / len(timed)
    images = steps * args.batch_size
    return {
        "mode": mode,
        "backend": "tensorflow",
        "model": "article",
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
        model = _build_and_compile(args)
    from helpers.training import EpochTimer  # imports Keras: only once the device layout is fixed

    timer = EpochTimer()
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
        model = _build_and_compile(args)
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
    return _train_tf(args, tf.distribute.get_strategy(), "single", workers=1, devices=1)


def run_mirrored(args) -> dict:
    tf = _deterministic_tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    # on a CPU the all-reduce must not use NCCL (GPU only): reduce on the host
    strategy = tf.distribute.MirroredStrategy(devices=names, cross_device_ops=tf.distribute.ReductionToOneDevice())
    return _train_tf(args, strategy, "mirrored", workers=1, devices=args.devices)


def run_worker(args) -> dict:
    """One worker of the multiworker mode; TF_CONFIG (set by the parent) says who it is."""
    tf = _deterministic_tf()
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    workers = len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])
    return _train_tf_custom_loop(args, strategy, "multiworker", workers=workers, devices=workers)


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


def _command(python: str | None = None, **flags) -> list[str]:
    """``python -m helpers.topics.parallel --name value ...`` for ``flags`` (underscores become dashes)."""
    pairs = [part for name, value in flags.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    return processes.module("helpers.topics.parallel", *pairs, python=python)


def _worker_argv(args, index: int) -> list[str]:
    shared = ("devices", "train_size", "epochs", "batch_size", "learning_rate", "seed")
    return _command(role="worker", index=index, mode="multiworker", **{k: getattr(args, k) for k in shared})


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


def _prepare_process(mode: str) -> None:
    """Settings that must precede the first import of TensorFlow / Keras in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Keras is already imported with the {loaded.backend.backend()!r} backend; "
            f"mode {mode!r} needs its own process (use measure())"
        )


def run(args) -> dict:
    """Run the mode ``args`` describes in this process and return its record."""
    check_args(args.mode, args.devices, args.train_size, args.epochs, args.batch_size)
    _prepare_process(args.mode)
    if args.role == "worker":
        processes.exit_with_parent()  # a worker never outlives the run that started it
        return run_worker(args)
    return {"single": run_single, "mirrored": run_mirrored, "multiworker": run_multiworker}[args.mode](args)


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
    seed: int = 0,
    timeout: float = 900.0,
) -> list[dict]:
    """Run each mode in its own process (``python -m helpers.topics.parallel``) and return the JSON records.

    ``single`` always uses one device; the other modes use ``devices`` replicas. Raises ValueError
    for settings that cannot run, and RuntimeError naming the mode, with the end of its standard
    error, if a run fails.
    """
    if not modes:
        raise ValueError("no modes to measure")
    for mode in modes:
        check_args(mode, 1 if mode == "single" and devices >= 1 else devices, train_size, epochs, batch_size)
    records = []
    for mode in modes:
        argv = _command(
            mode=mode,
            devices=1 if mode == "single" else devices,
            train_size=train_size,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            timeout=timeout,
        )
        env = python_env(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
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
    """Rows for the chapter's table: each record's throughput relative to the first one-replica record
    (``single``), else to the first record."""
    base = ([r for r in records if r["replicas"] == 1] or records)[0]["images_per_second"]
    return [
        {
            "mode": r["mode"],
            "backend": r["backend"],
            "replicas": r["replicas"],
            "workers": r["workers"],
            "global batch": r["global_batch_size"],
            "images/s": r["images_per_second"],
            "s/epoch": r["seconds_per_epoch"],
            "vs one device": round(r["images_per_second"] / base, 2),
            "final loss": round(r["final_loss"], 4),
        }
        for r in records
    ]


if __name__ == "__main__":
    sys.exit(main())
