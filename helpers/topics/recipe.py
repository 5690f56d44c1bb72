"""Training recipes: the ablation ladder from the article's CNN to a fast, strong one."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers import words
from helpers.topics.recipe_parts import (
    AIRBENCH,
    accuracy,
    build_model,
    compile_model,
    epoch_data,
    keras_classes,
    reinitialise,
)

#: the airbench paper's own times to 94% test accuracy on CIFAR-10, all on one NVIDIA A100
#: (Jordan, 2024, arXiv:2404.00498, section 1): airbench94 with torch.compile, and without it
AIRBENCH_PAPER = {"gpu": "NVIDIA A100", "accuracy": 0.94, "seconds": 3.29, "seconds_uncompiled": 3.83}


def keras_sgd_settings(batch_size: int) -> tuple[float, float]:
    """airbench's learning rate and weight decay converted to Keras' units: (learning_rate, weight_decay)."""
    momentum = AIRBENCH["momentum"]
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    lr_torch = AIRBENCH["lr"] / kilostep
    wd_torch = AIRBENCH["weight_decay"] * batch_size / kilostep
    lr_keras = lr_torch * batch_size
    return lr_keras, lr_torch * wd_torch / ((1 - momentum) * lr_keras)


@dataclass(frozen=True)
class Recipe:
    """One rung of the ladder. Defaults describe the article's model and training."""

    arch: str = "article"  # article | article_bn | fast
    width: float = 1.0  # block-width multiplier of the fast net (1.0 = 64, 256, 256)
    softmax_head: bool = True  # the article's softmax output fed to from_logits=True
    val_size: int = 0  # images held out of training for validation (0 = none)
    augment: bool = False  # random flips and translations, redrawn every epoch
    translate: int = 2  # pixels of random translation (reflection padding)
    optimizer: str = "adam"  # adam | sgd (Nesterov, airbench's settings)
    learning_rate: float = 1e-3  # peak rate, Keras units; for sgd see keras_sgd_settings
    schedule: str = "constant"  # constant | triangle (warm-up then linear decay)
    label_smoothing: float = 0.0
    weight_decay: float = 0.0  # Keras (decoupled) units; see keras_sgd_settings
    bias_lr_scale: float = 1.0  # learning-rate multiplier of biases (airbench: 64)
    lookahead: bool = False  # airbench's lookahead: every 5 steps pull weights to their average
    tta: int = 0  # test-time augmentation: 0 none, 1 mirror, 2 mirror + translations
    mixed_precision: bool = False  # bfloat16 compute (on a GPU)
    epochs: float = 10.0
    batch_size: int = 32

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)


@dataclass
class RunResult:
    recipe: dict
    test_accuracy: float
    val_accuracy: float | None
    train_seconds: float
    images_per_second: float
    epochs_done: float
    n_train: int
    params: int
    resumed_from_epoch: int = 0
    epoch_seconds: list = field(default_factory=list)
    history: list = field(default_factory=list)
    test_accuracy_no_tta: float | None = None
    eval_seconds: float = 0.0


def ladder(
    batch_size: int = 512, epochs: float = 10.0, width: float = 0.5, val_size: int = 5000, mixed_precision: bool = False
) -> list[tuple[str, str, Recipe]]:
    """The cumulative ablation ladder: (rung id, what changed, recipe). Each rung keeps all earlier changes."""
    lr, wd = keras_sgd_settings(batch_size)
    sgd = {"optimizer": "sgd", "learning_rate": lr, "schedule": "triangle", "bias_lr_scale": AIRBENCH["bias_scaler"]}
    steps = [
        ("article", "the article's model and training", {}),
        ("logits", "corrected loss: logits into from_logits=True", {"softmax_head": False}),
        ("validation", "validation split held out of training", {"val_size": val_size}),
        ("augment", "random flips and 2-pixel translations", {"augment": True}),
        ("batchnorm", "batch normalization after each convolution", {"arch": "article_bn"}),
        ("fastnet", "wider, deeper VGG-style net with whitening", {"arch": "fast", "width": width}),
        ("schedule", "SGD-Nesterov with a triangular one-cycle schedule", sgd),
        ("smoothing", "label smoothing 0.2", {"label_smoothing": AIRBENCH["label_smoothing"]}),
        ("decay", "weight decay", {"weight_decay": wd}),
        ("lookahead", "lookahead weight averaging", {"lookahead": True}),
        ("tta", "test-time augmentation (mirror + translations)", {"tta": 2}),
    ]
    if mixed_precision:
        steps.append(("bf16", "mixed precision (bfloat16)", {"mixed_precision": True}))
    rungs, r = [], Recipe(epochs=epochs, batch_size=batch_size)
    for rung, change, fields in steps:
        r = r.replace(**fields)
        rungs.append((rung, change, r))
    return rungs


#: what each rung changes, by rung id (in Chinese: the vocabulary's ``stronger_cnn`` section, as the rungs' names)
CHANGES = {rung: change for rung, change, _ in ladder(mixed_precision=True)}


def rung_name(rung: str, lang: str = "en") -> str:
    """A rung's name on the ``lang`` pages: its id in English, in Chinese its name in the vocabulary."""
    return words.label(rung, lang, "stronger_cnn")


def plot_ladder(table, lang: str = "en"):
    """Test accuracy and training time of each rung (``table``: rung, test_accuracy, train_seconds) as bars."""
    import matplotlib.pyplot as plt

    w = words.of(lang, "stronger_cnn")
    names = [rung_name(r, lang) for r in table["rung"]][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    left.barh(names, (table["test_accuracy"] * 100).to_numpy()[::-1])
    left.set(xlabel=w("test accuracy (%)"), xlim=(max(0.0, float(table["test_accuracy"].min()) * 100 - 10), 100))
    right.barh(names, table["train_seconds"].to_numpy()[::-1])
    right.set_xlabel(w("training time (s)"))
    fig.tight_layout()
    return fig


def plot_losses(history: list[dict], lang: str = "en"):
    """Training loss per epoch of one run (:attr:`RunResult.history`), labelled in ``lang``."""
    import matplotlib.pyplot as plt

    w = words.of(lang, "stronger_cnn")
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(range(1, len(history) + 1), [h["loss"] for h in history], marker="o")
    ax.set(xlabel=w("epoch"), ylabel=w("training loss (label-smoothed)"))
    fig.tight_layout()
    return fig


def strong_recipe(
    batch_size: int = 512, epochs: float = 10.0, width: float = 0.5, val_size: int = 0, mixed_precision: bool = False
) -> Recipe:
    """The top rung, trained on all the training images unless ``val_size`` asks for a hold-out."""
    return ladder(batch_size, epochs, width, val_size, mixed_precision)[-1][2].replace(val_size=val_size)


class Checkpoint:
    """The model (with its optimiser state) and the run's progress, saved atomically after each epoch."""

    def __init__(self, directory: Path | str, recipe: Recipe, seed: int, n_train: int):
        self.dir = Path(directory)
        self.model_path = self.dir / "last.keras"
        self.state_path = self.dir / "state.json"
        self.identity = {"recipe": dataclasses.asdict(recipe), "seed": seed, "n_train": n_train}

    def load(self):
        """(model, state) of the last finished epoch, or (None, None). A checkpoint of another run is an error."""
        if not (self.model_path.exists() and self.state_path.exists()):
            return None, None
        state = json.loads(self.state_path.read_text())
        if state.get("identity") != self.identity:
            raise ValueError(
                f"{self.dir} holds a checkpoint of a different run (other recipe, seed or data); "
                f"delete it or choose another checkpoint_dir"
            )
        import keras

        keras_classes()
        return keras.saving.load_model(self.model_path), state

    def save(self, model, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        model.save(self.dir / "last.tmp.keras")
        os.replace(self.dir / "last.tmp.keras", self.model_path)  # the state is written after the model it describes
        (self.dir / "state.tmp.json").write_text(json.dumps({**state, "identity": self.identity}, indent=1))
        os.replace(self.dir / "state.tmp.json", self.state_path)


def train(
    recipe: Recipe,
    x_train,
    y_train,
    x_test,
    y_test,
    seed: int = 0,
    checkpoint_dir=None,
    on_epoch=None,
    stop_after_epoch: int | None = None,
    warm_model=None,
) -> RunResult:
    """Train one recipe; returns its :class:`RunResult`."""
    import keras

    from helpers import models
    from helpers.data import split_validation

    keras.utils.set_random_seed(seed)
    keras.config.set_dtype_policy("mixed_bfloat16" if recipe.mixed_precision else "float32")
    x_tr, y_tr, x_val, y_val = (
        split_validation(x_train, y_train, recipe.val_size, seed) if recipe.val_size else (x_train, y_train, None, None)
    )
    bs = recipe.batch_size
    steps_per_epoch = len(x_tr) // bs
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={bs} is larger than the {len(x_tr)} training images; lower it")
    total_steps = max(1, round(recipe.epochs * steps_per_epoch))
    n_epochs = -(-total_steps // steps_per_epoch)
    onehot = np.eye(10, dtype="float32")

    ckpt = Checkpoint(checkpoint_dir, recipe, seed, len(x_train)) if checkpoint_dir else None
    model, state = ckpt.load() if ckpt else (None, None)
    if model is None:
        state = {"epochs_done": 0, "epoch_seconds": [], "history": []}
        model = build_model(recipe, x_tr, seed)
        if warm_model is not None:
            reinitialise(warm_model, model)
            model = warm_model
        else:
            compile_model(model, recipe, total_steps)
    resumed_from = state["epochs_done"]
    # the next epoch's shuffled, augmented copy is prepared on a thread while this one trains
    pool = ThreadPoolExecutor(max_workers=1)
    last = time.perf_counter()
    upcoming = pool.submit(epoch_data, x_tr, y_tr, state["epochs_done"], seed, recipe)
    try:
        for epoch in range(state["epochs_done"], n_epochs):
            xe, ye = upcoming.result()
            if epoch + 1 < n_epochs:
                upcoming = pool.submit(epoch_data, x_tr, y_tr, epoch + 1, seed, recipe)
            n = min(steps_per_epoch, total_steps - epoch * steps_per_epoch) * bs  # the last epoch may be partial
            hist = model.fit(xe[:n], onehot[ye[:n]], batch_size=bs, epochs=1, shuffle=False, verbose=0)
            seconds = time.perf_counter() - last
            record = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]), "seconds": round(seconds, 3)}
            if x_val is not None:
                record["val_accuracy"] = accuracy(model, x_val, y_val)
            state["epochs_done"] = epoch + 1
            state["epoch_seconds"].append(seconds)
            state["history"].append(record)
            if ckpt:
                ckpt.save(model, state)
            if on_epoch:
                on_epoch(epoch + 1, record)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                break
            last = time.perf_counter()  # validation and checkpoints are not training time
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    steady = state["epoch_seconds"][1:] or state["epoch_seconds"]
    start = time.perf_counter()
    test_acc = accuracy(model, x_test, y_test, recipe.tta)
    eval_seconds = time.perf_counter() - start
    result = RunResult(
        recipe=dataclasses.asdict(recipe),
        test_accuracy=test_acc,
        val_accuracy=accuracy(model, x_val, y_val, recipe.tta) if x_val is not None else None,
        train_seconds=float(sum(state["epoch_seconds"])),
        images_per_second=bs * steps_per_epoch * len(steady) / max(sum(steady), 1e-9),
        epochs_done=min(total_steps, state["epochs_done"] * steps_per_epoch) * bs / len(x_tr),
        n_train=len(x_tr),
        params=models.count_params(model),
        resumed_from_epoch=resumed_from,
        epoch_seconds=list(state["epoch_seconds"]),
        history=list(state["history"]),
        test_accuracy_no_tta=accuracy(model, x_test, y_test, 0) if recipe.tta else test_acc,
        eval_seconds=eval_seconds,
    )
    result.model = model  # not serialized; for saving or inspection
    return result


def main(argv=None) -> int:
    """Train one rung, printing each epoch as it is checkpointed (the interruption test runs this)."""
    parser = argparse.ArgumentParser(prog="python -m helpers.topics.recipe", description=__doc__)
    parser.add_argument("--rung", default="tta", choices=CHANGES, help="a rung id of the ladder")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--result", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    report = lambda epoch, record: print(f"epoch {epoch} done: {json.dumps(record)}", flush=True)

    from helpers import env
    from helpers.data import load_cifar10

    env.setup(os.environ.get("KERAS_BACKEND", "tensorflow"), args.seed)
    data = load_cifar10(args.train_size, args.test_size, args.seed)
    recipe = {rung: r for rung, _, r in ladder(args.batch_size, args.epochs, args.width, 0, True)}[args.rung]
    res = train(recipe, data.x_train, data.y_train, data.x_test, data.y_test, args.seed, args.checkpoint_dir, report)
    if args.result:
        Path(args.result).write_text(json.dumps(dataclasses.asdict(res), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
