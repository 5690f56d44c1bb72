"""What ``SparseCategoricalCrossentropy(from_logits=True)`` on a softmax output does, per Keras backend.

The article ends its CNN in ``Dense(10, activation="softmax")`` and compiles it with
``SparseCategoricalCrossentropy(from_logits=True)`` and Adam. For every Keras backend that can
be imported here (tensorflow, jax, torch) this script starts a subprocess with ``KERAS_BACKEND``
set, which:

1. trains ``helpers.models.article_cnn()`` (softmax output) compiled exactly that way for
   ``--epochs`` epochs on a ``--train-size`` stratified subset, and records every warning
   emitted, the training loss per epoch and the accuracy on the full test set;
2. computes the loss of one fixed test batch three ways with ``keras.ops``: the article's loss
   object called on the softmax output; cross-entropy on the pre-softmax logits; and
   ``helpers.training.double_softmax_crossentropy`` (softmax applied again to the probabilities), plus
   the loss ``model.evaluate`` reports for the same batch (the compiled path training uses).

The parent prints one table. Run it with each interpreter that has a backend installed, with
the repository on ``PYTHONPATH``::

    PYTHONPATH=. .venv/bin/python benchmarks/from_logits_backends.py
    PYTHONPATH=. /tmp/torchenv/bin/python benchmarks/from_logits_backends.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKENDS = ("tensorflow", "jax", "torch")
MARK = "FROM_LOGITS_RESULT "  # prefixes the worker's JSON line on stdout


def worker(backend: str, epochs: int, train_size: int, batch_size: int, seed: int) -> dict:
    """Train and measure on ``backend``; runs in its own process (the backend is fixed at import)."""
    from helpers import env

    env.setup(backend, seed=seed)
    import keras
    from keras import ops

    from helpers import data, models, training

    cifar = data.load_cifar10(train_size=train_size, seed=seed)
    article_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = models.article_cnn()
        model.compile(optimizer="adam", loss=article_loss, metrics=["accuracy"])
        start = time.perf_counter()
        history = model.fit(cifar.x_train, cifar.y_train, epochs=epochs, batch_size=batch_size, verbose=0)
        train_seconds = time.perf_counter() - start
        _, test_accuracy = model.evaluate(cifar.x_test, cifar.y_test, batch_size=1024, verbose=0)

        # One fixed batch, three ways of computing its loss.
        x, y = cifar.x_test[:256], cifar.y_test[:256]
        probs = model(x)
        hidden = ops.convert_to_tensor(x)
        for layer in model.layers[:-1]:
            hidden = layer(hidden)
        last = model.layers[-1]
        logits = ops.matmul(hidden, last.kernel) + last.bias
        labels = ops.reshape(ops.cast(ops.convert_to_tensor(y), "int32"), (-1, 1))
        on_logits = -ops.take_along_axis(ops.log_softmax(logits, axis=-1), labels, axis=-1)
        batch = {
            "article loss object on softmax output": article_loss(y, probs),
            "cross-entropy on pre-softmax logits": ops.mean(on_logits),
            "double softmax (helpers.models)": ops.mean(training.double_softmax_crossentropy(y, probs)),
            "model.evaluate on the batch (compiled)": model.evaluate(x, y, verbose=0)[0],
        }
        batch = {key: float(ops.convert_to_numpy(value)) for key, value in batch.items()}
    seen = []
    for w in caught:  # category, where it was raised (relative to site-packages), first 120 chars
        where = w.filename.split("site-packages/")[-1]
        message = " ".join(str(w.message).split())[:120]
        text = f"{w.category.__name__} at {where}:{w.lineno}: {message}"
        if text not in seen:
            seen.append(text)
    return {
        "backend": backend,
        "keras": keras.__version__,
        "framework": env.versions((backend,))[backend],
        "warnings": seen,
        "train_loss": [float(v) for v in history.history["loss"]],
        "train_accuracy": [float(v) for v in history.history["accuracy"]],
        "test_accuracy": float(test_accuracy),
        "train_seconds": train_seconds,
        "batch_losses": batch,
    }


def run_backend(backend: str, args) -> dict:
    """Run :func:`worker` for ``backend`` in a subprocess; return its result (or its error)."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        backend,
        "--epochs",
        str(args.epochs),
        "--train-size",
        str(args.train_size),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
    ]
    proc = subprocess.run(
        command, env={**os.environ, "KERAS_BACKEND": backend, "MAAS_NO_PROGRESS": "1"}, capture_output=True, text=True
    )
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    return {"backend": backend, "error": (proc.stderr.strip() or proc.stdout.strip())[-2000:]}


def report(results: list[dict]) -> None:
    """Print each backend's warnings, then a table of losses and accuracies."""
    for r in results:
        print(f"\n[{r['backend']}]")
        if "error" in r:
            print(f"  failed:\n{r['error']}")
            continue
        print(f"  keras {r['keras']}, {r['backend']} {r['framework']}; training took {r['train_seconds']:.0f} s")
        for text in r["warnings"] or ["(no warnings)"]:
            print(f"  warning: {text}")
    done = [r for r in results if "error" not in r]
    if not done:
        return
    width = 42
    print(f"\n{'':<{width}}" + "".join(f"{r['backend']:>12}" for r in done))
    epochs = len(done[0]["train_loss"])
    for e in range(epochs):
        print(f"{f'train loss, epoch {e + 1}':<{width}}" + "".join(f"{r['train_loss'][e]:>12.4f}" for r in done))
    for e in range(epochs):
        print(
            f"{f'train accuracy, epoch {e + 1}':<{width}}" + "".join(f"{r['train_accuracy'][e]:>12.4f}" for r in done)
        )
    print(f"{'test accuracy (10,000 images)':<{width}}" + "".join(f"{r['test_accuracy']:>12.4f}" for r in done))
    print("loss of one fixed batch of 256 test images:")
    for key in done[0]["batch_losses"]:
        print(f"{'  ' + key:<{width}}" + "".join(f"{r['batch_losses'][key]:>12.4f}" for r in done))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument("--train-size", type=int, default=10_000, help="stratified training subset (default 10000)")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="batch size (default 32, Keras' default, as the article uses)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="backend(s) to run (default: every one that can be imported)",
    )
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args.worker, args.epochs, args.train_size, args.batch_size, args.seed)
        print(MARK + json.dumps(result), flush=True)
        return 0

    backends = [b for b in (args.backend or BACKENDS) if importlib.util.find_spec(b) is not None]
    if not backends:
        print(f"none of {', '.join(BACKENDS)} can be imported by {sys.executable}", file=sys.stderr)
        return 1
    print(
        f"{sys.executable}: backends {', '.join(backends)}; {args.train_size} training images, "
        f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}",
        flush=True,
    )
    results = [run_backend(b, args) for b in backends]
    report(results)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
