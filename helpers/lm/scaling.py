"""Scaling sweeps for the poem model: loss against model size on fixed data, and against training compute.

N counts the *non-embedding* parameters (Kaplan et al., 2020: the embeddings hide the trend for small
models) and compute is ``C = 6 N D``. In :func:`compute_sweep` every budget gets its own complete
warm-up and cosine schedule, as Hoffmann et al. (2022) did: a cosine cut short is not a shorter run.
"""

from __future__ import annotations

import time
from dataclasses import replace

from helpers.lm.model import ModelConfig
from helpers.lm.train import LMData, TrainConfig, train
from helpers.topics.scaling import try_fit


def _config(data: LMData, d_model: int, n_layers: int, n_heads: int) -> ModelConfig:
    return ModelConfig(
        data.tokenizer.vocab_size, max_len=data.seq_len, d_model=d_model, n_layers=n_layers, n_heads=n_heads
    )


def _row(config: ModelConfig, result, extra: dict) -> dict:
    n = result.params["non_embedding"]
    return {
        "d_model": config.d_model,
        "n_layers": config.n_layers,
        "params_non_embedding": n,
        "params_embedding": result.params["embedding"],
        "steps": result.steps_done,
        "tokens": result.tokens_seen,
        "flops": 6.0 * n * result.tokens_seen,
        "val_loss": result.val_loss,
        "train_seconds": result.train_seconds,
        **extra,
    }


def size_sweep(data: LMData, sizes, train_config: TrainConfig | None = None):
    """Train every size for the same steps and batch (same tokens); one row each (a pandas table)."""
    import pandas as pd

    cfg = train_config or TrainConfig()
    cfg = replace(cfg, segment_steps=cfg.steps)  # one validation at the end is all a sweep needs
    rows = []
    for d, layers, heads in sizes:
        config = _config(data, d, layers, heads)
        start = time.perf_counter()
        result = train(data, config, cfg)
        rows.append(_row(config, result, {"wall_seconds": time.perf_counter() - start}))
    table = pd.DataFrame(rows)
    ratio = table["params_non_embedding"].max() / table["params_non_embedding"].min()
    table.attrs["non_embedding_span"] = float(ratio)
    return table


def compute_sweep(
    data: LMData, size=(64, 2, 4), step_budgets=(25, 50, 100, 200), train_config: TrainConfig | None = None
):
    """One size trained for several step budgets, each with its own full schedule; one row per budget."""
    import pandas as pd

    cfg = train_config or TrainConfig()
    rows = []
    for steps in step_budgets:
        run_cfg = replace(cfg, steps=steps, segment_steps=steps, warmup_steps=min(cfg.warmup_steps, steps // 4))
        config = _config(data, *size)
        result = train(data, config, run_cfg)
        rows.append(_row(config, result, {}))
    return pd.DataFrame(rows)


def try_fit_size_law(table):
    """:func:`~helpers.topics.scaling.try_fit` of ``val_loss = E + A / N**alpha`` to a :func:`size_sweep` table
    (N: non-embedding parameters): None when the loss does not fall as N grows; E fitted from four sizes."""
    return try_fit(table["params_non_embedding"].to_numpy(float), table["val_loss"].to_numpy(float))
