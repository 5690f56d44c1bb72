"""Counting baselines, scored on exactly the targets the transformer is scored on.

Each gives ``p(w | h2, h1)`` from the two tokens before ``w`` (:func:`histories`; never from another poem:
before a poem it is ``<bos>``), counted on the training targets. The unigram's k and the bigram's λ are
chosen on the validation characters; Kneser–Ney's discounts come from the training counts alone. ``V``
counts the possible targets (every id but ``<pad>`` and ``<bos>``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from helpers.lm.data import CharTokenizer, Packed

K_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
LAMBDA_GRID = tuple(np.round(np.arange(0.5, 1.0, 0.025), 3))
BOS = CharTokenizer.BOS


def histories(packed: Packed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h2, h1, w)``: the two tokens before each counted target and the target, flat, row by row."""
    x = packed.inputs.astype(np.int64)
    before = np.concatenate([np.full((len(x), 1), BOS), x[:, :-1]], axis=1)
    h2 = np.where(x == BOS, BOS, before)  # a poem's first character: (<bos>, <bos>)
    keep = packed.mask.astype(bool)
    return h2[keep], x[keep], packed.targets[keep].astype(np.int64)


def targets(packed: Packed) -> np.ndarray:
    """The counted targets of ``packed``, flat, in the order of :func:`histories` and ``nll[packed.mask > 0]``."""
    return histories(packed)[2]


def kinds(w: np.ndarray, tokenizer: CharTokenizer) -> dict[str, np.ndarray]:
    """Masks of ``w`` by kind: characters (``<unk>`` too), punctuation (any other symbol), ``<eos>``."""
    symbol = np.array([i >= len(CharTokenizer.SPECIALS) and not s.isalnum() for i, s in enumerate(tokenizer.itos)])
    eos = w == CharTokenizer.EOS
    return {"characters": ~symbol[w] & ~eos, "punctuation": symbol[w], "eos": eos}


def by_kind(w: np.ndarray, nll: np.ndarray, tokenizer: CharTokenizer) -> dict[str, float]:
    """Mean nats per target of each kind of ``w`` (nan where none), and over ``all`` of them."""
    out = {k: float(nll[m].mean()) if m.any() else float("nan") for k, m in kinds(w, tokenizer).items()}
    return {**out, "all": float(nll.mean())}


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values`` at ``query`` in the sorted ``keys``, 0 where a query is absent."""
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[at] == query, values[at], 0)


@dataclass(frozen=True)
class Unigram:
    """Add-k unigram: ``(c(w) + k) / (N + k V)``."""

    counts: np.ndarray  # (vocab,) target counts
    k: float = 1.0

    @classmethod
    def fit(cls, train: Packed, vocab_size: int) -> Unigram:
        return cls(np.bincount(histories(train)[2], minlength=vocab_size).astype(np.float64))

    def prob(self, h2, h1, w) -> np.ndarray:
        return (self.counts[w] + self.k) / (self.counts.sum() + self.k * (len(self.counts) - 2))


@dataclass(frozen=True)
class Interpolated:
    """Jelinek–Mercer bigram: ``λ c(v, w) / c(v) + (1 - λ) p_uni(w)`` (the unigram alone after an unseen ``v``)."""

    unigram: Unigram
    keys: np.ndarray  # sorted v * vocab + w
    counts: np.ndarray
    contexts: np.ndarray  # (vocab,) c(v)
    lam: float = 0.9

    @classmethod
    def fit(cls, train: Packed, unigram: Unigram) -> Interpolated:
        _, v, w = histories(train)
        keys, counts = np.unique(v * len(unigram.counts) + w, return_counts=True)
        return cls(unigram, keys, counts.astype(np.float64), np.bincount(v, minlength=len(unigram.counts)) * 1.0)

    def prob(self, h2, h1, w) -> np.ndarray:
        ctx = self.contexts[h1]
        ml = _lookup(self.keys, self.counts, h1 * len(self.contexts) + w) / np.maximum(ctx, 1)
        lam = np.where(ctx > 0, self.lam, 0.0)
        return lam * ml + (1 - lam) * self.unigram.prob(h2, h1, w)


class KneserNey:
    """Interpolated Kneser–Ney of order 2 or 3 (Chen and Goodman, 1999)::

        p_k(w | u) = (max(c_k(u w) - D_k, 0) + D_k T_k(u) p_{k-1}(w | u')) / c_k(u),   D_k = n1 / (n1 + 2 n2)

    (``p_{k-1}`` where ``c_k(u) = 0``, ``p_0`` uniform). ``u'`` is ``u`` without its oldest token; below the
    highest order ``c_k`` counts the distinct contexts a k-gram follows (continuation counts); ``T_k(u)``
    counts the ``w`` with ``c_k(u w) > 0``; n1, n2: the k-grams counted once and twice.
    """

    def __init__(self, train: Packed, vocab_size: int, order: int = 3):
        if order not in (2, 3):
            raise ValueError(f"order must be 2 or 3, got {order}")
        self.vocab_size = vocab_size
        h2, h1, w = histories(train)
        grams = (h2 * vocab_size + h1) * vocab_size + w if order == 3 else h1 * vocab_size + w
        keys, counts = np.unique(grams, return_counts=True)
        self.levels = []  # order 1 first: (k-gram keys, counts, context keys, c_k(u), T_k(u), D_k)
        for k in range(order, 0, -1):
            ctx, first, types = np.unique(keys // vocab_size, return_index=True, return_counts=True)
            n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
            level = (keys, counts, ctx, np.add.reduceat(counts, first), types, n1 / max(n1 + 2 * n2, 1))
            self.levels.insert(0, level)
            keys, counts = np.unique(keys % vocab_size ** (k - 1), return_counts=True)  # continuation counts

    def prob(self, h2, h1, w) -> np.ndarray:
        v = self.vocab_size
        p = np.full(w.shape, 1.0 / (v - 2))
        for context, (keys, counts, ctx, totals, types, d) in zip((np.zeros_like(w), h1, h2 * v + h1), self.levels):
            c, total = _lookup(keys, counts, context * v + w), _lookup(ctx, totals, context)
            seen = total > 0
            p = np.where(
                seen, (np.maximum(c - d, 0) + d * _lookup(ctx, types, context) * p) / np.where(seen, total, 1), p
            )
        return p


def nll(model, packed: Packed) -> np.ndarray:
    """Nats of every counted target of ``packed`` under ``model``, flat (the order of :func:`targets`)."""
    return -np.log(model.prob(*histories(packed)))


@dataclass(frozen=True)
class Baseline:
    """One fitted baseline: its model, the smoothing chosen on validation (None: none to choose), its scores by kind."""

    kind: str
    model: object
    smoothing: float | None
    validation: dict[str, float]
    test: dict[str, float] | None


def fit_baselines(
    train: Packed, validation: Packed, tokenizer: CharTokenizer, test: Packed | None = None
) -> dict[str, Baseline]:
    """The four baselines by name; smoothing chosen per character on ``validation``; scored on ``test`` too."""
    chars = kinds(targets(validation), tokenizer)["characters"]

    def best(make, grid):
        scores = {float(g): float(nll(make(float(g)), validation)[chars].mean()) for g in grid}
        return make(min(scores, key=scores.get)), min(scores, key=scores.get)

    unigram, k = best(lambda g: replace(Unigram.fit(train, tokenizer.vocab_size), k=g), K_GRID)
    counted = Interpolated.fit(train, unigram)
    bigram, lam = best(lambda g: replace(counted, lam=g), LAMBDA_GRID)
    models = {
        "unigram": (unigram, k),
        "bigram_interpolated": (bigram, lam),
        "kn_bigram": (KneserNey(train, tokenizer.vocab_size, 2), None),
        "kn_trigram": (KneserNey(train, tokenizer.vocab_size, 3), None),
    }

    def scores(model, rows):
        return by_kind(targets(rows), nll(model, rows), tokenizer) if rows is not None else None

    return {
        name: Baseline(name, model, value, scores(model, validation), scores(model, test))
        for name, (model, value) in models.items()
    }


def best_on_characters(fitted: dict[str, Baseline]) -> Baseline:
    """The baseline with the lowest cross-entropy per character on validation (chosen there, quoted on test)."""
    return min(fitted.values(), key=lambda b: b.validation["characters"])


def bigram_poems(
    bigram: Interpolated, tokenizer: CharTokenizer, n: int, seed: int = 0, temperature: float = 1.0, max_len: int = 160
) -> list[str]:
    """``n`` texts written by the interpolated bigram from ``<bos>`` to ``<eos>`` (at most ``max_len`` tokens),
    text i drawn with seed ``seed + i`` from ``p(w | v) ** (1 / temperature)`` renormalised."""
    ids = np.arange(tokenizer.vocab_size)
    texts = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        prev, out = CharTokenizer.BOS, []
        for _ in range(max_len - 1):
            p = bigram.prob(ids, np.full_like(ids, prev), ids) ** (1.0 / temperature)
            p[[CharTokenizer.PAD, CharTokenizer.BOS]] = 0.0  # never targets
            token = int(rng.choice(len(p), p=p / p.sum()))
            if token == CharTokenizer.EOS:
                break
            out.append(token)
            prev = token
        texts.append(tokenizer.decode(out))
    return texts
