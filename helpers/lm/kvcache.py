"""The engine's KV cache in bytes: computed from the model's shape, measured, and the share a fixed slot wastes."""

from __future__ import annotations

import numpy as np

from helpers.lm import compiled


def kv_cache_bytes(config, slots: int = 1) -> dict:
    """The engine's float32 KV cache, by :func:`helpers.topics.large_models.kv_cache_bytes`: per token,
    per sequence (``max_len`` positions) and for ``slots``."""
    from helpers.topics.large_models import kv_cache_bytes as cache_bytes

    per_token = int(cache_bytes(config.n_layers, config.n_heads, config.head_dim, 1, "fp32"))
    return {
        "per_token": per_token,
        "per_sequence": per_token * config.max_len,
        "total": per_token * config.max_len * slots,
    }


def measured_cache_bytes(cache) -> int:
    """Bytes actually allocated by a cache (the sum of its buffers' sizes)."""
    return int(sum(compiled.nbytes(t) for t in cache))


def kv_cache_waste(lengths, max_len: int) -> dict:
    """Share of a fixed ``max_len``-per-sequence cache that sequences of these lengths leave unused,
    and the share blocks of 16 positions would (only each sequence's last block is partly empty)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.size == 0 or np.any(lengths < 1) or np.any(lengths > max_len):
        raise ValueError(f"lengths must be between 1 and max_len={max_len}")
    blocks = np.ceil(lengths / 16) * 16
    return {
        "sequences": int(lengths.size),
        "mean_length": float(lengths.mean()),
        "max_len": max_len,
        "unused_share": float(1 - lengths.sum() / (max_len * lengths.size)),
        "unused_share_paged16": float(1 - lengths.sum() / blocks.sum()),
    }
