"""Scaling sweeps for the poem model: loss against model size on fixed data, and against training compute.

N counts the *non-embedding* parameters (Kaplan et al., 2020: the embeddings hide the trend for small
models) and compute is ``C = 6 N D``. In :func:`compute_sweep` every budget gets its own complete
warm-up and cosine schedule, as Hoffmann et al. (2022) did: a cosine cut short is not a shorter run.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from helpers.lm.model import ModelConfig
from helpers.lm.train import LMData, TrainConfig, train
from helpers.topics.scaling import try_fit


def _row(data: LMData, size: tuple[int, int, int], cfg: TrainConfig) -> dict:
    """Train one size (``d_model, n_layers, n_heads``) with ``cfg``; its row of a sweep's table."""
    d, layers, heads = size
    config = ModelConfig(data.tokenizer.vocab_size, max_len=data.seq_len, d_model=d, n_layers=layers, n_heads=heads)
    result = train(data, config, cfg)
    n = result.params["non_embedding"]
    return {
        "d_model": d,
        "n_layers": layers,
        "params_non_embedding": n,
        "params_embedding": result.params["embedding"],
        "steps": result.steps_done,
        "tokens": result.tokens_seen,
        "flops": 6.0 * n * result.tokens_seen,
        "val_loss": result.val_loss,
        "train_seconds": result.train_seconds,
    }


def size_sweep(data: LMData, sizes, train_config: TrainConfig | None = None):
    """Train every size for the same steps and batch (same tokens); one row each (a pandas table)."""
    cfg = train_config or TrainConfig()
    cfg = replace(cfg, segment_steps=cfg.steps)  # one validation at the end is all a sweep needs
    rows = [_row(data, tuple(size), cfg) for size in sizes]
    table = pd.DataFrame(rows)
    table.attrs["non_embedding_span"] = float(table["params_non_embedding"].max() / table["params_non_embedding"].min())
    table.attrs["runs"] = {(tuple(size), cfg): row for size, row in zip(sizes, rows)}  # for compute_sweep's `done`
    return table


def compute_sweep(
    data: LMData, size=(64, 2, 4), step_budgets=(25, 50, 100, 200), train_config: TrainConfig | None = None, done=None
):
    """One size trained for several step budgets, each with its own full warm-up and cosine (as Hoffmann et al., 2022:
    a cosine cut short is not a shorter run); one row per budget. A run the :func:`size_sweep` table ``done`` (same
    data) already made is taken from it."""
    cfg = train_config or TrainConfig()
    budgets = [replace(cfg, steps=s, segment_steps=s, warmup_steps=min(cfg.warmup_steps, s // 4)) for s in step_budgets]
    runs = {} if done is None else done.attrs.get("runs", {})
    return pd.DataFrame([runs.get((tuple(size), run_cfg)) or _row(data, tuple(size), run_cfg) for run_cfg in budgets])


def try_fit_size_law(table):
    """:func:`~helpers.topics.scaling.try_fit` of ``val_loss = E + A / N**alpha`` to a :func:`size_sweep` table
    (N: non-embedding parameters): None when the loss does not fall as N grows."""
    return try_fit(table["params_non_embedding"].to_numpy(float), table["val_loss"].to_numpy(float))
