"""Do the course helpers slow training down? Training images per second, with and without them.

Ways of training the article's CNN (Adam, ``SparseCategoricalCrossentropy(from_logits=True)``,
accuracy metric, as the article compiles it) on the same stratified CIFAR-10 subset:

(a) ``plain``: the article's pipeline with no helpers in the loop: the images are converted to
    float32 and divided by 255 in NumPy once, up front, and fed to the same layers without the
    Rescaling layer through a bare ``model.fit``;
(b) ``helpers``: ``helpers.models.article_cnn()`` fed uint8 images (it rescales in its first layer)
    through ``helpers.training.fit`` with its ``EpochTimer`` callback;
(c) ``uint8``: to tell the two differences apart, ``helpers.models.article_cnn()`` on uint8 images
    through the same bare ``model.fit`` as (a). b/c is the cost of ``helpers.training.fit`` itself,
    c/a that of feeding uint8 and rescaling in the model instead of float32 arrays.

Runs are interleaved (a, b, c, a, b, c, ...) so that drift in the machine's speed hits all alike.
Each run trains a fresh model for ``--epochs`` epochs; the first epoch (tracing, compiling) is
discarded and the rest are timed from epoch begin to epoch end, for (a) and (c) with a stock
Keras ``LambdaCallback``. Prints the median throughput of each, the ratio b/a and the overhead. On a
shared machine other processes make single runs vary widely: use more ``--repeats`` there.

Usage: ``python benchmarks/helpers_overhead.py [--images 10000] [--batch-size 256] [--repeats 3]
[--epochs 2]`` from the repository root (or with the repository on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import env  # noqa: E402  (imports no framework)


def compile_like_article(model):
    """Adam, SparseCategoricalCrossentropy(from_logits=True) and accuracy, as in the article."""
    import keras

    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def plain_model():
    """The article's network as its listing writes it (helpers.article.LISTING): float inputs, no Rescaling layer."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def run_bare(model, x, y, epochs: int, batch_size: int) -> float:
    """(a) and (c): bare ``model.fit``; images per second over the epochs after the first."""
    import keras

    compile_like_article(model)
    stamps = []
    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: stamps.append([time.perf_counter()]),
        on_epoch_end=lambda epoch, logs: stamps[-1].append(time.perf_counter()),
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, callbacks=[clock], verbose=0, shuffle=True)
    steady = [end - begin for begin, end in stamps[1:]]
    return len(x) * len(steady) / sum(steady)


def run_helpers(x_uint8, y, epochs: int, batch_size: int) -> float:
    """(b): ``helpers.training.fit`` on ``helpers.models.article_cnn()``; same measure as (a)."""
    from helpers import models, training  # after env.setup chose the backend

    model = compile_like_article(models.article_cnn())
    result = training.fit(model, x_uint8, y, epochs=epochs, batch_size=batch_size)
    return result.images_per_second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images (default 10000)")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per measurement, the first discarded (default 2)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is discarded as warm-up")

    hw = env.setup("tensorflow", seed=0)
    # All pipelines get TensorFlow's warning about from_logits=True on a softmax output (see
    # benchmarks/from_logits_backends.py); it says nothing about speed, so keep the table clean.
    warnings.filterwarnings("ignore", message=".*received `from_logits=True`")
    import keras  # noqa: F401  (after setup chose the backend)

    from helpers import data, models

    cifar = data.load_cifar10(train_size=args.images, test_size=100, seed=0)
    x_uint8, y = cifar.x_train, cifar.y_train
    x_float = x_uint8.astype("float32") / 255.0  # the article's NumPy-side conversion

    print(
        f"{env.describe(hw)}; Keras {keras.__version__} ({keras.backend.backend()}); "
        f"{args.images} images, batch {args.batch_size}, {args.epochs} epochs per run "
        f"(first discarded), {args.repeats} repeats, interleaved"
    )
    fit_args = (args.epochs, args.batch_size)
    pipelines = {  # label -> one measurement (a fresh model each time)
        "(a) plain model.fit, float32 /255": lambda: run_bare(plain_model(), x_float, y, *fit_args),
        "(b) helpers.training.fit, uint8": lambda: run_helpers(x_uint8, y, *fit_args),
        "(c) plain model.fit, uint8 model": lambda: run_bare(models.article_cnn(), x_uint8, y, *fit_args),
    }
    rates = {label: [] for label in pipelines}
    for repeat in range(args.repeats):
        for label, measure in pipelines.items():  # interleaved: a, b, c, a, b, c, ...
            rates[label].append(measure())
        print(
            f"  repeat {repeat + 1}: " + "   ".join(f"{label[:3]} {r[-1]:6.0f} img/s" for label, r in rates.items()),
            flush=True,
        )

    a, b, c = (statistics.median(r) for r in rates.values())
    print(f"\n{'pipeline':<36}{'median img/s':>13}   all runs (img/s)")
    for (label, runs), median in zip(rates.items(), (a, b, c)):
        print(f"{label:<36}{median:>13.0f}   {', '.join(f'{r:.0f}' for r in runs)}")
    print(
        f"\nratio b/a = {b / a:.3f}; helpers overhead = {100 * (a - b) / a:+.1f}% of (a)'s throughput "
        "(negative: faster)"
    )
    print(f"of which helpers.training.fit itself (b/c) = {b / c:.3f}, uint8 input + Rescaling (c/a) = {c / a:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
