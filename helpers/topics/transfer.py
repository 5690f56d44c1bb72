"""One network, two tasks: features learned on CIFAR-10's animals reused for its vehicles."""

from __future__ import annotations

import numpy as np

from helpers.words import by_gap

#: CIFAR-10's animals and vehicles, by class index
ANIMALS = (2, 3, 4, 5, 6, 7)
VEHICLES = (0, 1, 8, 9)


def per_class_subset(y, classes, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` seeded examples of each class in ``classes`` (sorted)."""
    rng, picked = np.random.default_rng(seed), []
    for c in classes:
        if per_class > (members := np.flatnonzero(np.asarray(y) == c)).size:
            raise ValueError(f"class {c} has {members.size} examples, {per_class} requested")
        picked.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(picked))


def accuracy_among(model, x, y, classes) -> float:
    """Accuracy when the prediction is the highest logit among ``classes`` only."""
    logits = np.asarray(model.predict(x, batch_size=1024, verbose=0))[:, list(classes)]
    return float(np.mean(np.asarray(classes)[logits.argmax(axis=1)] == y))


def transfer(
    cifar,
    *,
    target_per_class: int,
    source_epochs: int,
    target_epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> dict:
    """Train on the animals, then reuse the frozen convolutions for the vehicles (``target_per_class`` images each)."""
    import keras

    from helpers import models

    def trained(model, x, y, epochs: int):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(keras.optimizers.Adam(learning_rate), loss)
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
        return model

    source_idx = np.flatnonzero(np.isin(cifar.y_train, ANIMALS))
    target_idx = per_class_subset(cifar.y_train, VEHICLES, target_per_class, seed)
    test_idx = np.flatnonzero(np.isin(cifar.y_test, VEHICLES))
    x_target, y_target = cifar.x_train[target_idx], cifar.y_train[target_idx]
    x_test, y_test = cifar.x_test[test_idx], cifar.y_test[test_idx]

    keras.utils.set_random_seed(seed)
    x_source, y_source = cifar.x_train[source_idx], cifar.y_train[source_idx]
    pretrained = trained(models.article_cnn(logits=True, name="source_classes"), x_source, y_source, source_epochs)
    features = pretrained.layers[: [layer.name for layer in pretrained.layers].index("flatten") + 1]
    for layer in features:
        layer.trainable = False
    keras.utils.set_random_seed(seed)
    head = [keras.layers.Dense(64, activation="relu", name="new_dense"), keras.layers.Dense(10, name="new_logits")]
    reused = keras.Sequential([keras.Input((32, 32, 3), dtype="uint8"), *features, *head], name="reused_features")
    reused = trained(reused, x_target, y_target, target_epochs)
    keras.utils.set_random_seed(seed)
    scratch = trained(models.article_cnn(logits=True, name="from_scratch"), x_target, y_target, target_epochs)
    return {
        "source_images": int(source_idx.size),
        "target_images": int(target_idx.size),
        "test_images": int(test_idx.size),
        "transfer": accuracy_among(reused, x_test, y_test, VEHICLES),
        "scratch": accuracy_among(scratch, x_test, y_test, VEHICLES),
        "chance": 1 / len(VEHICLES),
        "trained_params_transfer": models.count_params(reused),
        "trained_params_scratch": models.count_params(scratch),
    }


#: the transfer result when reusing helps, hurts, or is within the tolerance (the ``trends`` vocabulary)
VERDICTS = (
    "the features learned on animals gave {points} percentage points more accuracy on vehicles than training from "
    "scratch",
    "the features learned on animals gave {points} percentage points less accuracy on vehicles than training from "
    "scratch in this run",
    "reusing the features learned on animals made less than {points}% of difference in this run",
)


def verdict(result: dict, tolerance: float = 0.01) -> dict:
    """The transfer result in words, ``en`` and ``zh``, written from the two accuracies."""
    return by_gap(result["transfer"] - result["scratch"], VERDICTS, "trends", tolerance)
