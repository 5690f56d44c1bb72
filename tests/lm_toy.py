"""A toy corpus and a toy model for the language-model tests: the whole pipeline in seconds.

The toy poems are random characters from a small set, in the four regulated forms (4 or 8 lines
of 5 or 7 characters, ，and 。 alternating), with a strong bigram structure (each character is
usually followed by one of a few others), so that a tiny model learns both the form and more than
a unigram in a few dozen steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.lm.data import Corpus, Poem

CHARS = "春風花月山水雲天江雨夜秋日人心歸來長空明鳥落城行寒白青孤客思舟"
FORMS = ((4, 5), (4, 7), (8, 5), (8, 7))


def toy_poem(rng: np.random.Generator) -> str:
    n_lines, length = FORMS[int(rng.integers(len(FORMS)))]
    successors = {c: [CHARS[(i + k) % len(CHARS)] for k in (1, 2, 5)] for i, c in enumerate(CHARS)}
    out = []
    for line in range(n_lines):
        c = CHARS[int(rng.integers(len(CHARS)))]
        chars = [c]
        for _ in range(length - 1):
            c = successors[c][int(rng.integers(3))] if rng.random() < 0.9 else CHARS[int(rng.integers(len(CHARS)))]
            chars.append(c)
        out.append("".join(chars) + ("，" if line % 2 == 0 else "。"))
    return "".join(out)


def toy_corpus(n: int = 400, seed: int = 0) -> Corpus:
    """``n`` toy poems split 80/10/10 (no doubtful records, no duplicates)."""
    rng = np.random.default_rng(seed)
    poems = [Poem(f"toy-{i}", "toy", f"toy {i}", toy_poem(rng)) for i in range(n)]
    n_val = n_test = n // 10
    return Corpus(
        train=poems[n_val + n_test :],
        validation=poems[:n_val],
        test=poems[n_val : n_val + n_test],
        records=n,
        doubtful_listed=0,
        doubtful_dropped=0,
        duplicates_dropped=0,
        seed=seed,
    )


def toy_checkpoint(
    directory: Path | str, steps: int = 60, d_model: int = 32, n_layers: int = 2, seq_len: int = 64, seed: int = 0
):
    """Train a tiny model on the toy corpus into ``directory`` (resumes if it is already there); returns the TrainResult."""
    from helpers.lm.model import ModelConfig
    from helpers.lm.train import TrainConfig, prepare, train

    data = prepare(toy_corpus(seed=seed), seq_len=seq_len, min_count=1)
    config = ModelConfig(data.tokenizer.vocab_size, max_len=seq_len, d_model=d_model, n_layers=n_layers, n_heads=4)
    cfg = TrainConfig(
        steps=steps,
        batch_size=8,
        segment_steps=max(1, steps // 2),
        learning_rate=1e-2,
        warmup_steps=min(10, steps // 4),
        val_rows=16,
        seed=seed,
    )
    return train(data, config, cfg, checkpoint_dir=directory)
