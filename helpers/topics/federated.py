"""Federated averaging (FedAvg, McMahan et al., 2017), simulated on one machine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from helpers.words import by_gap, of


def dirichlet_shards(labels, n_clients: int, alpha: float, seed: int) -> list[np.ndarray]:
    """Split indices 0..len(labels)-1 into ``n_clients`` disjoint, non-empty shards with Dirichlet label skew."""
    labels = np.asarray(labels)
    if n_clients < 1 or not alpha > 0:
        raise ValueError(f"need n_clients >= 1 and alpha > 0, got {n_clients} and {alpha}")
    if n_clients > labels.size:
        raise ValueError(f"{labels.size} examples cannot give {n_clients} clients one each")
    rng = np.random.default_rng(seed)
    if np.isinf(alpha):
        return [np.sort(s) for s in np.array_split(rng.permutation(labels.size), n_clients)]
    for _ in range(100):
        shards = [[] for _ in range(n_clients)]
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, alpha)))[:-1] * members.size).astype(int)
            for k, part in enumerate(np.split(members, cuts)):
                shards[k].extend(part.tolist())
        if all(shards):
            return [np.sort(np.asarray(s, dtype=np.int64)) for s in shards]
    raise ValueError(f"could not give every client an example with alpha={alpha}; raise alpha")


def label_histogram(labels, shards, n_classes: int = 10) -> np.ndarray:
    """Counts (clients × classes) of each class in each shard."""
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[s], minlength=n_classes) for s in shards])


@dataclass(frozen=True)
class ClientUpdate:
    """Everything a client sends to the server: trained weights and how many examples produced them."""

    weights: list  # numpy arrays, one per model variable, the shapes of the global model's weights
    num_examples: int


def weighted_average(updates: list[ClientUpdate]) -> list[np.ndarray]:
    """The FedAvg aggregate: sum_k n_k w_k / sum_k n_k, variable by variable."""
    if (total := sum(u.num_examples for u in updates)) <= 0:
        raise ValueError("no client updates to average, or they carry no examples")
    return [
        sum(u.num_examples * np.asarray(u.weights[i], dtype=np.float64) for u in updates) / total
        for i in range(len(updates[0].weights))
    ]


class Client:
    """One data holder: trains the model it is sent on its own data and returns only weights."""

    def __init__(self, name: str, x, y):
        self.name = name
        self.__x, self.__y = x, y  # private: never returned, never sent (name-mangled attributes)

    def update(self, model, global_weights, *, epochs: int, batch_size: int) -> ClientUpdate:
        """Load the global weights into ``model``, train locally, return the new weights."""
        model.set_weights(global_weights)
        for v in model.optimizer.variables:  # the step count and the moments; not the learning rate
            if not v.path.endswith("learning_rate"):
                v.assign(np.zeros(v.shape, dtype=v.dtype))
        model.fit(self.__x, self.__y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
        return ClientUpdate([np.asarray(w) for w in model.get_weights()], len(self.__y))


@dataclass
class FedAvgResult:
    history: list[dict] = field(default_factory=list)  # per round: round, test_accuracy, seconds
    bytes_sent: int = 0  # weights sent from clients to the server, all rounds
    messages: int = 0


def check_message(update: ClientUpdate, reference_weights) -> None:
    """Assert that a client's message holds weights shaped like the model's, and nothing else."""
    if set(vars(update)) != {"weights", "num_examples"}:
        raise AssertionError(f"unexpected fields in a client message: {sorted(vars(update))}")
    if (shapes := [np.shape(w) for w in update.weights]) != (expected := [np.shape(w) for w in reference_weights]):
        raise AssertionError(f"a client sent arrays shaped {shapes}, not the model's weights {expected}")


def fedavg(
    model,
    clients: list[Client],
    *,
    rounds: int,
    local_epochs: int,
    batch_size: int,
    evaluate=None,
    fraction: float = 1.0,
    seed: int = 0,
) -> FedAvgResult:
    """Run FedAvg: each round, a share ``fraction`` of the clients trains from the global weights."""
    rng = np.random.default_rng(seed)
    global_weights = [np.asarray(w) for w in model.get_weights()]
    result = FedAvgResult()
    per_round = max(1, round(fraction * len(clients)))
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        chosen = sorted(rng.choice(len(clients), size=per_round, replace=False).tolist())
        updates = [clients[k].update(model, global_weights, epochs=local_epochs, batch_size=batch_size) for k in chosen]
        for update in updates:
            check_message(update, global_weights)
            result.bytes_sent += sum(np.asarray(w).nbytes for w in update.weights)
        result.messages += len(updates)
        global_weights = [w.astype(np.float32) for w in weighted_average(updates)]
        model.set_weights(global_weights)
        row = {"round": r, "seconds": time.perf_counter() - start}
        if evaluate is not None:
            row["test_accuracy"] = float(evaluate(model))
        result.history.append(row)
    return result


#: how :func:`read_gaps` words each gap when it is a loss, a gain, or within the tolerance (the ``trends`` vocabulary)
GAP_WORDS = {
    "steps": (
        "IID clients trail central training by {points} percentage points at equal compute",
        "IID clients end {points} percentage points above central training in this run",
        "IID clients end within {points} percentage point of central training",
    ),
    "skew": (
        "the skewed shards cost another {points} points",
        "the skewed shards end {points} points above the IID ones in this run",
        "the skewed shards end within {points} point of the IID ones",
    ),
}


def read_gaps(central: float, iid: float, skewed: float, tolerance: float = 0.01) -> dict:
    """What federation (central minus IID) and the skew (IID minus skewed) cost, in numbers and in each language."""
    out = {"steps_gap": central - iid, "skew_gap": iid - skewed}
    for name, wordings in GAP_WORDS.items():
        for lang, text in by_gap(out[f"{name}_gap"], wordings, "trends", tolerance).items():
            out[f"{name}_{lang}"] = text
    return out


def plot_shards(counts: np.ndarray, class_names, lang: str = "en"):
    """Stacked bars: how many images of each class (``class_names``) each client holds; axes in ``lang``."""
    from helpers.plots import plt  # pyplot in the book's figure style

    n_clients = counts.shape[0]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    for c, name in enumerate(class_names):
        ax.bar(range(n_clients), counts[:, c], bottom=counts[:, :c].sum(axis=1), label=name, color=plt.cm.tab10(c))
    w = of(lang, "trends")
    ax.set(xlabel=w("client"), ylabel=w("images"), xticks=range(n_clients))
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    return fig


#: the curves of :func:`plot_rounds` (terms of the ``trends`` vocabulary)
ROUND_CURVES = {
    "skewed": "FedAvg, skewed shards",
    "iid": "FedAvg, IID shards",
    "central": "central training (pooled images)",
}


def plot_rounds(passes: dict, accuracy: dict, lang: str = "en"):
    """Test accuracy against passes over the training images: a curve per key of :data:`ROUND_CURVES` in ``passes``."""
    from helpers.plots import plt  # pyplot in the book's figure style

    w = of(lang, "trends")
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for key, name in ROUND_CURVES.items():
        if key not in passes:
            continue
        style = dict(ls="--", marker="s", color="k") if key == "central" else dict(marker="o")
        ax.plot(passes[key], accuracy[key], ms=4, label=w(name), **style)
    ax.set(xlabel=w("passes over the training images (compute)"), ylabel=w("test accuracy"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
