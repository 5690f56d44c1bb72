"""Data-parallel training of the article's CNN: on one device, on N mirrored devices, by N worker processes,
each mode in its own process (TensorFlow fixes its device layout when it starts) on the same batches."""

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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.topics.parallel", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", default="single", help=f"one of {', '.join(MODES)}")
    p.add_argument("--devices", type=int, default=2, help="logical devices (mirrored) or worker processes")
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256, help="global batch size (split across replicas)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds the multiworker parent waits for its workers")
    p.add_argument("--role", default="main", choices=("main", "worker"), help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    return p


def check_args(mode: str, devices: int, train_size: int, epochs: int, batch_size: int) -> None:
    """Raise ValueError with a clear message for settings that cannot run."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if devices < 1 or epochs < 1:
        raise ValueError(f"devices={devices}, epochs={epochs}: need at least one of each")
    replicas = 1 if mode == "single" else devices
    if batch_size < replicas or batch_size % replicas:
        raise ValueError(f"batch_size={batch_size} must be a positive multiple of the {replicas} replicas")
    if not batch_size <= train_size <= 50_000:
        raise ValueError(f"train_size={train_size}: between one global batch ({batch_size}) and CIFAR-10's 50,000")


def _dataset(x, y, batch_size: int, seed: int, epochs: int):
    """All epochs' global batches as one tf.data pipeline; ``AutoShardPolicy.DATA``: each worker keeps its slices."""
    import numpy as np
    import tensorflow as tf

    used = len(x) // batch_size * batch_size
    order = np.concatenate([np.random.default_rng([seed, e]).permutation(len(x))[:used] for e in range(epochs)])
    ds = tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _custom_loop(args, strategy, model, dataset, steps: int) -> tuple[list[float], float]:
    """What ``fit`` does under a strategy, step by step: each replica's loss is divided by the *global*
    batch size, so that the all-reduce of the replicas' gradients gives the global batch's mean loss."""
    import keras
    import tensorflow as tf

    batches = iter(strategy.experimental_distribute_dataset(dataset))
    with strategy.scope():
        per_example = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        model.optimizer.build(model.trainable_variables)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            per_replica = per_example(yb, model(xb, training=True))
            loss = tf.nn.compute_average_loss(per_replica, global_batch_size=args.batch_size)
        model.optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    @tf.function
    def train_step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=batch), axis=None)

    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        total = sum(float(train_step(next(batches))) for _ in range(steps))
        seconds.append(time.perf_counter() - start)
    return seconds, total / steps


def train(args, strategy, mode: str, workers: int = 1) -> dict:
    """Train under ``strategy`` (``fit``, or :func:`_custom_loop` for multiworker) and return the mode's record."""
    import keras

    from helpers import models
    from helpers.data import load_cifar10
    from helpers.training import EpochTimer  # imports Keras: only once the device layout is fixed

    keras.utils.set_random_seed(args.seed)
    data = load_cifar10(train_size=args.train_size, test_size=10, seed=args.seed)
    steps = args.train_size // args.batch_size
    dataset = _dataset(data.x_train, data.y_train, args.batch_size, args.seed, args.epochs)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with strategy.scope():
        model = models.article_cnn(logits=True)
        model.compile(keras.optimizers.Adam(1e-3), loss)
    # Keras 3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585): a strategy.run loop there
    loop = "custom" if mode == "multiworker" else "fit"
    if loop == "fit":
        timer = EpochTimer()
        history = model.fit(dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        seconds, final_loss = timer.seconds, history.history["loss"][-1]
    else:
        seconds, final_loss = _custom_loop(args, strategy, model, dataset, steps)
    timed = seconds[1:] or seconds  # the first epoch also compiles
    per_epoch = sum(timed) / len(timed)
    replicas = strategy.num_replicas_in_sync
    return {
        "mode": mode,
        "workers": workers,
        "replicas": replicas,
        "global_batch_size": args.batch_size,
        "per_replica_batch_size": args.batch_size // replicas,
        "steps_per_epoch": steps,
        "images_per_second": round(steps * args.batch_size / per_epoch, 1),
        "seconds_per_epoch": round(per_epoch, 3),
        "final_loss": float(final_loss),
        "loop": loop,
    }


def worker_env(ports: list[int], index: int) -> dict:
    """What worker ``index`` adds to its environment: a TF_CONFIG naming every worker on 127.0.0.1."""
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    return {"TF_CONFIG": json.dumps(tf_config), "KERAS_BACKEND": "tensorflow"}


def _command(**flags) -> list[str]:
    """``python -m helpers.topics.parallel --name value ...`` (underscores become dashes)."""
    return processes.module(
        "helpers.topics.parallel", *(s for k, v in flags.items() for s in (f"--{k.replace('_', '-')}", str(v)))
    )


def _worker_argv(args, index: int) -> list[str]:
    shared = {k: getattr(args, k) for k in ("devices", "train_size", "epochs", "batch_size", "seed")}
    return _command(role="worker", index=index, mode="multiworker", **shared)


def run_multiworker(args) -> dict:
    """Run ``args.devices`` workers on 127.0.0.1, return the chief's record; if one fails, stop all and name it."""
    ports = processes.free_ports(args.devices)
    workers = []
    try:
        for i in range(args.devices):
            env = worker_env(ports, i)
            workers.append(processes.Child(_worker_argv(args, i), stream="both", env=env, name=f"worker {i}"))
        deadline, failed = time.monotonic() + args.timeout, None
        while failed is None:
            codes = [w.process.poll() for w in workers]
            if bad := [str(i) for i, c in enumerate(codes) if c not in (None, 0)]:
                failed = f"worker {', '.join(bad)} failed"
            elif all(c == 0 for c in codes):
                break
            elif time.monotonic() > deadline:
                failed = f"workers did not finish within {args.timeout:.0f} s"
            time.sleep(0.2)
    finally:
        for w in workers:
            w.stop(graceful=False)
    if failed:
        tails = [
            f"--- worker {i} (exit {w.process.returncode}) ---\n{w.tail(40)[-1500:]}" for i, w in enumerate(workers)
        ]
        raise RuntimeError(f"multiworker run on 127.0.0.1 ports {ports}: {failed}\n" + "\n".join(tails))
    if not (records := [e for e in workers[0].lines if "images_per_second" in e]):
        raise RuntimeError("the chief (worker 0) finished without printing its JSON record")
    return records[-1]


def run(args) -> dict:
    """Run the mode ``args`` describes in this process (TensorFlow not yet imported) and return its record."""
    check_args(args.mode, args.devices, args.train_size, args.epochs, args.batch_size)
    if args.mode == "multiworker" and args.role == "main":
        return run_multiworker(args)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()  # in every mode alike, so that the speeds compare fairly
    if args.mode == "single":
        return train(args, tf.distribute.get_strategy(), "single")
    if args.mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        # on a CPU the all-reduce must not use NCCL (GPU only): reduce on the host
        strategy = tf.distribute.MirroredStrategy(devices=names, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return train(args, strategy, "mirrored")
    processes.exit_with_parent()  # a worker never outlives the run that started it
    ring = tf.distribute.experimental.CommunicationImplementation.RING
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(implementation=ring)
    )
    return train(args, strategy, "multiworker", workers=args.devices)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.mode == "single":
        args.devices = 1  # the baseline has one device whatever --devices says
    try:
        record = run(args)
    except (ValueError, RuntimeError) as e:  # settings that cannot run (2), a run that failed (1)
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    if args.index == 0:
        print(json.dumps(record), flush=True)
    return 0


def measure(modes=MODES, devices=2, train_size=10_000, epochs=3, batch_size=256, seed=0, timeout=900.0) -> list[dict]:
    """Each mode's record from its own process; ValueError for settings that cannot run, RuntimeError if a run fails."""
    for mode in modes:
        check_args(mode, devices, train_size, epochs, batch_size)
    env = python_env(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    env = {k: v for k, v in env.items() if k not in ("TF_CONFIG", "XLA_FLAGS")}
    shared = dict(train_size=train_size, epochs=epochs, batch_size=batch_size, seed=seed, timeout=timeout)
    records = []
    for mode in modes:
        argv = _command(mode=mode, devices=1 if mode == "single" else devices, **shared)
        try:
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(
                f"parallel mode {mode!r} did not finish within {timeout + 60:.0f} s\n{e.stderr}"
            ) from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"parallel mode {mode!r} failed (exit {done.returncode}) running {' '.join(argv[1:])}\n"
                f"stderr tail:\n{done.stderr.strip()[-3000:]}"
            )
        records.append(json.loads(lines[-1]))
    return records


def relative_table(records: list[dict]) -> list[dict]:
    """Rows for the chapter's table: each record's throughput relative to the first one-replica record."""
    base = ([r for r in records if r["replicas"] == 1] or records)[0]["images_per_second"]
    return [
        {
            "mode": r["mode"],
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
