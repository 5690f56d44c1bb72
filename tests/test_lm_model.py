"""Tests for the transformer (helpers.lm.model): attention against NumPy, causality, KV-cache decoding, parameters."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import env

env.setup(os.environ.get("KERAS_BACKEND", "tensorflow"), 0)

import keras  # noqa: E402
from keras import ops  # noqa: E402

from helpers.lm import compiled  # noqa: E402
from helpers.lm.engine import DecodeFunctions  # noqa: E402
from helpers.lm.model import (  # noqa: E402
    ModelConfig,
    attention,
    build_model,
    causal_mask,
    parameter_counts,
)


def attention_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = True) -> np.ndarray:
    """Attention by hand in NumPy (float64): q (B, Tq, H, Dh), k and v (B, Tk, H, Dh).

    ``softmax(q k^T / sqrt(Dh))`` over the keys, each query seeing only keys at or before its own
    position when ``causal`` (queries are the last Tq positions of the Tk keys). The reference
    the tests hold the Keras layer to.
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    tq, tk, dh = q.shape[1], k.shape[1], q.shape[-1]
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dh)
    if causal:
        allowed = np.arange(tk)[None, :] <= np.arange(tq)[:, None] + (tk - tq)
        scores = np.where(allowed, scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", weights, v)


def non_embedding_params(config: ModelConfig) -> int:
    """Non-embedding parameters from the config alone: per block 4 d^2 attention, 2 d ff + ff + d MLP, 4 d norms."""
    d, ff = config.d_model, config.ff
    per_block = 4 * d * d + 2 * d * ff + ff + d + 4 * d
    return config.n_layers * per_block + 2 * d  # + the final LayerNorm


ROOT = Path(__file__).resolve().parent.parent
CONFIG = ModelConfig(vocab_size=40, max_len=24, d_model=32, n_layers=2, n_heads=4)


@pytest.fixture(scope="module")
def model():
    return build_model(CONFIG, seed=0)


def np_(x):
    return compiled.to_numpy(x)


@pytest.mark.unit
@pytest.mark.parametrize("tq, tk", [(7, 7), (3, 9)])
def test_attention_matches_numpy_reference(tq, tk):
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, t, 4, 8)).astype("float32") for t in (tq, tk, tk))
    got = np_(
        attention(ops.convert_to_tensor(q), ops.convert_to_tensor(k), ops.convert_to_tensor(v), causal_mask(tq, tk))
    )
    np.testing.assert_allclose(got, attention_numpy(q, k, v, causal=True), atol=1e-5)
    full = np_(attention(ops.convert_to_tensor(q), ops.convert_to_tensor(k), ops.convert_to_tensor(v)))
    np.testing.assert_allclose(full, attention_numpy(q, k, v, causal=False), atol=1e-5)


@pytest.mark.unit
def test_attention_layer_with_its_weights_matches_numpy(model):
    layer = model.blocks[0].attn
    d, h, dh = CONFIG.d_model, CONFIG.n_heads, CONFIG.head_dim
    x = np.random.default_rng(1).normal(size=(2, 9, d)).astype("float32")
    wqkv, wo = np_(layer.wqkv).astype(np.float64), np_(layer.wo).astype(np.float64)
    q, k, v = (np.reshape(x @ wqkv[:, i * d : (i + 1) * d], (2, 9, h, dh)) for i in range(3))
    expected = np.reshape(attention_numpy(q, k, v, causal=True), (2, 9, d)) @ wo
    np.testing.assert_allclose(np_(layer(ops.convert_to_tensor(x))), expected, atol=1e-5)


@pytest.mark.unit
def test_attention_layer_matches_keras_multi_head_attention(model):
    """The hand-written layer equals keras.layers.MultiHeadAttention given the same weights (no biases)."""
    layer = model.blocks[1].attn
    d, h, dh = CONFIG.d_model, CONFIG.n_heads, CONFIG.head_dim
    mha = keras.layers.MultiHeadAttention(num_heads=h, key_dim=dh, use_bias=False)
    x = np.random.default_rng(2).normal(size=(2, 6, d)).astype("float32")
    mha(x, x, use_causal_mask=True)  # builds it
    wqkv = np_(layer.wqkv)
    mha.set_weights(
        [wqkv[:, i * d : (i + 1) * d].reshape(d, h, dh) for i in range(3)] + [np_(layer.wo).reshape(h, dh, d)]
    )
    np.testing.assert_allclose(np_(mha(x, x, use_causal_mask=True)), np_(layer(ops.convert_to_tensor(x))), atol=1e-5)


@pytest.mark.unit
def test_model_is_causal(model):
    rng = np.random.default_rng(3)
    a = rng.integers(4, CONFIG.vocab_size, size=(1, 12)).astype("int32")
    b = a.copy()
    b[0, 8:] = (b[0, 8:] + 1) % CONFIG.vocab_size
    la, lb = np_(model(a)), np_(model(b))
    np.testing.assert_allclose(la[:, :8], lb[:, :8], atol=1e-6)
    assert not np.allclose(la[:, 8:], lb[:, 8:])


@pytest.mark.unit
def test_prefill_then_cached_decode_equals_the_full_forward(model):
    """Two slots at different positions, prompt prefilled then decoded token by token."""
    rng = np.random.default_rng(4)
    seqs = rng.integers(4, CONFIG.vocab_size, size=(2, 14)).astype("int32")
    full = np_(model(seqs))
    fns = DecodeFunctions(model, slots=2)
    cache = fns.new_cache()
    prompt_len = (5, 9)
    for slot, n in enumerate(prompt_len):
        padded = np.zeros((1, 16), np.int32)
        padded[0, :n] = seqs[slot, :n]
        logits, cache = fns.prefill(padded, np.int32(n - 1), np.int32(slot), *cache)
        np.testing.assert_allclose(np_(logits), full[slot, n - 1], atol=1e-4)
    pos = np.array(prompt_len, np.int32)
    for _ in range(4):
        logits, cache = fns.decode(seqs[[0, 1], pos], pos, *cache)
        for slot in range(2):
            np.testing.assert_allclose(np_(logits)[slot], full[slot, pos[slot]], atol=1e-4)
        pos = pos + 1


@pytest.mark.unit
def test_parameter_counts(model):
    counts = parameter_counts(model)
    c = CONFIG
    assert counts["embedding"] == c.vocab_size * c.d_model + c.max_len * c.d_model
    assert counts["non_embedding"] == non_embedding_params(c)
    assert counts["total"] == model.count_params()
    sinusoidal = build_model(ModelConfig(40, 24, 32, 2, 4, positions="sinusoidal"))
    assert parameter_counts(sinusoidal)["embedding"] == c.vocab_size * c.d_model


@pytest.mark.unit
def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        ModelConfig(40, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="positions"):
        ModelConfig(40, positions="rotary")


JAX_SCRIPT = textwrap.dedent("""
    import numpy as np
    from helpers import env
    env.setup("jax", 0)
    import lm_toy as toy

    from helpers.lm import compiled
    from helpers.lm.engine import DecodeFunctions, Engine, Request
    from helpers.lm.model import ModelConfig, build_model
    from helpers.lm.sampling import SamplingParams
    from helpers.lm.train import TrainConfig, prepare, train
    assert compiled.backend() == "jax"
    model = build_model(ModelConfig(40, 24, 32, 2, 4))
    seqs = np.random.default_rng(0).integers(4, 40, size=(1, 10)).astype("int32")
    full = compiled.to_numpy(model(seqs))
    fns = DecodeFunctions(model, 1)
    cache = fns.new_cache()
    padded = np.zeros((1, 16), np.int32); padded[0, :4] = seqs[0, :4]
    logits, cache = fns.prefill(padded, np.int32(3), np.int32(0), *cache)
    for t in range(4, 8):
        logits, cache = fns.decode(seqs[0, t:t + 1], np.array([t], np.int32), *cache)
        assert np.allclose(compiled.to_numpy(logits)[0], full[0, t], atol=1e-4)
    data = prepare(toy.toy_corpus(120), seq_len=32, min_count=1)
    result = train(data, ModelConfig(data.tokenizer.vocab_size, 32, 16, 1, 2),
                   TrainConfig(steps=4, batch_size=4, segment_steps=2, warmup_steps=1, val_rows=4))
    assert len(result.history) == 2 and np.isfinite(result.val_loss)
    engine = Engine(result.model, data.tokenizer, slots=2)
    r = engine.submit(Request(data.tokenizer.encode("春"), SamplingParams(max_tokens=5, seed=1)))
    engine.run_until_idle()
    assert r.finished
    print("jax ok")
""")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (requirements-backends.txt)")
def test_the_same_code_runs_on_jax():
    """Forward, prefill/decode, training and the engine on the JAX backend (a subprocess: one backend per process)."""
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 0 and "jax ok" in result.stdout, result.stderr[-3000:]
