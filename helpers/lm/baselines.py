"""Counting baselines: unigram and smoothed bigram models of the same token stream the transformer sees.

Both are fitted by counting on the training rows and scored on exactly the targets the
transformer is scored on (:attr:`helpers.lm.data.Packed.mask`: every character and ``<eos>``, the
condition of the first character being ``<bos>``), so their cross-entropies in nats per token are
directly comparable with :class:`helpers.lm.train.Scorer`'s.

* unigram, add-k: ``p(w) = (c(w) + k) / (N + k V)``;
* bigram, interpolated (Jelinek–Mercer): ``p(w | v) = λ c(v, w) / c(v) + (1 - λ) p_uni(w)``;
* bigram, add-k: ``p(w | v) = (c(v, w) + k) / (c(v) + k V)``.

``V`` counts the tokens that can be targets (every id but ``<pad>`` and ``<bos>``). The smoothing
constant (k or λ) of each is chosen on the validation rows from a grid; :func:`fit_baselines`
returns the best of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.lm.data import CharTokenizer, Packed

K_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
LAMBDA_GRID = tuple(np.round(np.arange(0.5, 1.0, 0.025), 3))


def pairs(packed: Packed) -> tuple[np.ndarray, np.ndarray]:
    """(previous token, target) for every counted target of ``packed``."""
    keep = packed.mask.astype(bool)
    return packed.inputs[keep].astype(np.int64), packed.targets[keep].astype(np.int64)


@dataclass
class CountModel:
    """Unigram and bigram counts of a training stream over a vocabulary of ``vocab_size`` ids."""

    vocab_size: int
    unigram: np.ndarray  # (V,) target counts
    bigram_keys: np.ndarray  # sorted prev * V + next
    bigram_counts: np.ndarray
    context_counts: np.ndarray  # (V,) how often each id is a condition

    @classmethod
    def fit(cls, packed: Packed, vocab_size: int) -> CountModel:
        prev, nxt = pairs(packed)
        keys, counts = np.unique(prev * vocab_size + nxt, return_counts=True)
        return cls(
            vocab_size,
            np.bincount(nxt, minlength=vocab_size).astype(np.float64),
            keys,
            counts.astype(np.float64),
            np.bincount(prev, minlength=vocab_size).astype(np.float64),
        )

    @property
    def targets_possible(self) -> int:
        return self.vocab_size - 2  # every id but <pad> and <bos>

    def pair_counts(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        keys = prev * self.vocab_size + nxt
        at = np.searchsorted(self.bigram_keys, keys)
        at = np.minimum(at, len(self.bigram_keys) - 1)
        return np.where(self.bigram_keys[at] == keys, self.bigram_counts[at], 0.0)

    def unigram_prob(self, nxt: np.ndarray, k: float) -> np.ndarray:
        return (self.unigram[nxt] + k) / (self.unigram.sum() + k * self.targets_possible)

    def cross_entropy(self, packed: Packed, kind: str, value: float, unigram_k: float = 1.0) -> float:
        """Nats per counted target of ``packed`` under one smoothed model."""
        prev, nxt = pairs(packed)
        if kind == "unigram":
            p = self.unigram_prob(nxt, value)
        elif kind == "bigram_interpolated":
            ctx = self.context_counts[prev]
            ml = np.divide(self.pair_counts(prev, nxt), ctx, out=np.zeros_like(ctx), where=ctx > 0)
            lam = np.where(ctx > 0, value, 0.0)
            p = lam * ml + (1 - lam) * self.unigram_prob(nxt, unigram_k)
        elif kind == "bigram_add_k":
            p = (self.pair_counts(prev, nxt) + value) / (self.context_counts[prev] + value * self.targets_possible)
        else:
            raise ValueError(f"unknown baseline {kind!r}; choose unigram, bigram_interpolated or bigram_add_k")
        return float(-np.mean(np.log(p)))


@dataclass(frozen=True)
class Baseline:
    """One fitted baseline: its kind, the smoothing chosen on validation, and its cross-entropies."""

    kind: str
    smoothing: float
    validation: float
    test: float | None


def fit_baselines(
    train: Packed, validation: Packed, tokenizer: CharTokenizer, test: Packed | None = None
) -> dict[str, Baseline]:
    """Fit the three baselines, choose each one's smoothing on ``validation``; score on ``test`` too."""
    counts = CountModel.fit(train, tokenizer.vocab_size)
    out = {}
    unigram_k = 1.0
    for kind, grid in (("unigram", K_GRID), ("bigram_interpolated", LAMBDA_GRID), ("bigram_add_k", K_GRID)):
        scores = {float(v): counts.cross_entropy(validation, kind, float(v), unigram_k) for v in grid}
        best = min(scores, key=scores.get)
        if kind == "unigram":
            unigram_k = best
        out[kind] = Baseline(
            kind, best, scores[best], counts.cross_entropy(test, kind, best, unigram_k) if test is not None else None
        )
    return out


def baseline_table(baselines: dict[str, Baseline]):
    """The baselines as a pandas table (nats per token and perplexity)."""
    import pandas as pd

    rows = [
        {
            "model": b.kind,
            "smoothing": b.smoothing,
            "val_nats": b.validation,
            "val_perplexity": np.exp(b.validation),
            "test_nats": b.test,
            "test_perplexity": np.exp(b.test) if b.test is not None else None,
        }
        for b in baselines.values()
    ]
    return pd.DataFrame(rows)


def bigram_poems(
    train: Packed,
    tokenizer: CharTokenizer,
    n: int,
    seed: int = 0,
    temperature: float = 1.0,
    lam: float = 0.9,
    unigram_k: float = 1.0,
    max_len: int = 160,
) -> list[str]:
    """``n`` texts written by the interpolated bigram, from ``<bos>`` to ``<eos>`` (at most ``max_len`` tokens).

    The comparison for the transformer's samples: whatever form the bigram's poems have comes from
    counting which character follows which, nothing more. Each text draws with its own seeded
    generator (``seed + i``), from ``p(w | v) ** (1 / temperature)`` renormalised.
    """
    counts = CountModel.fit(train, tokenizer.vocab_size)
    size = counts.vocab_size
    ids = np.arange(size)
    unigram = counts.unigram_prob(ids, unigram_k)
    unigram[[CharTokenizer.PAD, CharTokenizer.BOS]] = 0.0  # never targets
    texts = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        prev, out = CharTokenizer.BOS, []
        for _ in range(max_len - 1):
            lo, hi = np.searchsorted(counts.bigram_keys, [prev * size, (prev + 1) * size])
            row = (1 - lam) * unigram
            if counts.context_counts[prev] > 0:
                row[counts.bigram_keys[lo:hi] - prev * size] += (
                    lam * counts.bigram_counts[lo:hi] / counts.context_counts[prev]
                )
            else:
                row = unigram.copy()
            p = row ** (1.0 / temperature)
            token = int(rng.choice(size, p=p / p.sum()))
            if token == CharTokenizer.EOS:
                break
            out.append(token)
            prev = token
        texts.append(tokenizer.decode(out))
    return texts
