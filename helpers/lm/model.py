"""A character-level decoder-only transformer in Keras 3 (``keras.ops`` only, so any backend).

GPT-style: token plus learned (or sinusoidal) position embeddings, pre-norm blocks, a final
LayerNorm and an output layer tied to the input embedding. Written here rather than taken from
keras_hub, whose cache is written at one index for the whole batch: continuous batching needs every
slot at its own position. One set of weights runs three ways: :meth:`PoetLM.call` (whole sequences),
:meth:`PoetLM.prefill` (a prompt, returning its keys and values) and :meth:`PoetLM.decode` (one token
for each of S slots, each at its own position, on a preallocated cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from helpers.lm import compiled

NEG_INF = -1e9  # added to masked attention scores (finite: no NaN when a whole row is masked)


@dataclass(frozen=True)
class ModelConfig:
    """The transformer's shape. ``max_len`` is the context: positions, and the KV cache per sequence."""

    vocab_size: int
    max_len: int = 128
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0  # 0: 4 * d_model
    positions: str = "learned"  # learned | sinusoidal

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {self.positions!r}")
        if min(self.vocab_size, self.max_len, self.d_model, self.n_layers, self.n_heads) < 1:
            raise ValueError(f"every size must be positive: {self}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model


def attention(q, k, v, mask=None):
    """Scaled dot-product attention: q (B, Tq, H, Dh), k and v (B, Tk, H, Dh) -> (B, Tq, H, Dh); ``mask``
    broadcasts to (B, H, Tq, Tk), True where a query may attend to a key."""
    scores = ops.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = ops.where(mask, scores, ops.cast(NEG_INF, scores.dtype))
    return ops.einsum("bhqk,bkhd->bqhd", ops.softmax(scores, axis=-1), v)


def attend_one(q, k, v, visible):
    """Attention of one query per sequence over a cache: q (S, H, Dh), k and v (S, H, M, Dh), visible (S, 1, M).

    Heads-first, each (sequence, head) reads one contiguous (M, Dh) block: on a CPU several times faster than
    positions-first (S, M, H, Dh), where XLA gathers every head's keys across the rows."""
    if k.shape[0] == 1 < q.shape[0]:  # every query reads one sequence's cache: the rest of a prompt (paged)
        k, v, cache = k[0], v[0], "hmd"
    else:
        cache = "shmd"
    scores = ops.einsum(f"shd,{cache}->shm", q, k) * (1.0 / math.sqrt(q.shape[-1]))
    scores = ops.where(visible, scores, ops.cast(NEG_INF, scores.dtype))
    return ops.einsum(f"shm,{cache}->shd", ops.softmax(scores, axis=-1), v)


def cache_index(slots, positions, n_heads: int):
    """Where keys go in a heads-first cache: (n, H, 3) indices ``[slot, head, position]`` for n (slot, position) pairs."""
    n = slots.shape[0]
    heads = ops.broadcast_to(ops.arange(n_heads, dtype="int32")[None, :], (n, n_heads))
    rows, cols = (ops.broadcast_to(x[:, None], (n, n_heads)) for x in (slots, positions))
    return ops.stack([rows, heads, cols], axis=-1)


def read_blocks(pool, tables):
    """A paged cache read through block tables: pool (blocks, H, B, Dh), tables (S, n) -> (S, H, n * B, Dh),
    row s's position p at ``[s, :, p]`` as in a contiguous cache (a gathered copy, for :func:`attend_one`)."""
    s, n = tables.shape
    blocks = ops.take(pool, tables, axis=0)  # (S, n, H, B, Dh)
    return ops.reshape(ops.transpose(blocks, (0, 2, 1, 3, 4)), (s, pool.shape[1], n * pool.shape[2], pool.shape[3]))


def causal_mask(tq: int, tk: int | None = None):
    """(1, 1, tq, tk) booleans: query i may see keys 0..i (+ tk - tq when the keys are longer)."""
    tk = tk or tq
    return ops.reshape(ops.arange(tk)[None, :] <= ops.arange(tq)[:, None] + (tk - tq), (1, 1, tq, tk))


def _init():
    return keras.initializers.RandomNormal(stddev=0.02)


class CausalSelfAttention(keras.layers.Layer):
    """Multi-head causal self-attention, no biases: ``wqkv`` (d, 3d) projects queries, keys and values
    in one product (decoding one token is dominated by the number of operations), ``wo`` (d, d) merges the heads."""

    def __init__(self, d_model: int, n_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads

    def build(self, input_shape):
        self.wqkv = self.add_weight(name="wqkv", shape=(self.d_model, 3 * self.d_model), initializer=_init())
        self.wo = self.add_weight(name="wo", shape=(self.d_model, self.d_model), initializer=_init())

    def project(self, x):
        """Queries, keys and values of x (..., d): three (..., H, Dh) tensors."""
        shape = (*x.shape[:-1], 3, self.n_heads, self.head_dim)
        qkv = ops.reshape(ops.matmul(x, self.wqkv), tuple(-1 if s is None else s for s in shape))
        return qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]

    def merge(self, heads):
        """The output projection of (..., H, Dh) heads: (..., d)."""
        shape = (*heads.shape[:-2], self.d_model)
        return ops.matmul(ops.reshape(heads, tuple(-1 if s is None else s for s in shape)), self.wo)

    def call(self, x):
        q, k, v = self.project(x)
        return self.merge(attention(q, k, v, causal_mask(x.shape[1])))


class Block(keras.layers.Layer):
    """A pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))`` (GELU MLP)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.n_heads, self.d_ff = d_model, n_heads, d_ff
        self.ln1 = keras.layers.LayerNormalization(epsilon=1e-5, name="ln1")
        self.attn = CausalSelfAttention(d_model, n_heads, name="attn")
        self.ln2 = keras.layers.LayerNormalization(epsilon=1e-5, name="ln2")
        self.fc = keras.layers.Dense(d_ff, activation="gelu", kernel_initializer=_init(), name="fc")
        self.proj = keras.layers.Dense(d_model, kernel_initializer=_init(), name="proj")

    def build(self, input_shape):
        for layer in (self.ln1, self.attn, self.ln2, self.fc):
            layer.build(input_shape)
        self.proj.build((*input_shape[:-1], self.d_ff))

    def mlp(self, x):
        return x + self.proj(self.fc(self.ln2(x)))

    def call(self, x):
        return self.mlp(x + self.attn(self.ln1(x)))


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """Vaswani et al.'s fixed position encodings, (max_len, d_model) float32."""
    angles = np.arange(max_len)[:, None] / np.power(10000.0, 2 * np.arange(d_model // 2)[None, :] / d_model)
    table = np.zeros((max_len, d_model), np.float32)
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles[:, : d_model - d_model // 2])
    return table


class PoetLM(keras.Model):
    """The decoder-only transformer: ``call(tokens (B, T)) -> logits (B, T, vocab)``."""

    def __init__(self, config: dict | ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, ModelConfig) else ModelConfig(**config)
        c = self.config
        self.tok_emb = keras.layers.Embedding(c.vocab_size, c.d_model, embeddings_initializer=_init(), name="tok_emb")
        self.pos_emb = self._pos_table = None
        if c.positions == "learned":
            self.pos_emb = keras.layers.Embedding(c.max_len, c.d_model, embeddings_initializer=_init(), name="pos_emb")
        else:
            self._pos_table = sinusoidal_table(c.max_len, c.d_model)
        self.blocks = [Block(c.d_model, c.n_heads, c.ff, name=f"block_{i}") for i in range(c.n_layers)]
        self.ln_f = keras.layers.LayerNormalization(epsilon=1e-5, name="ln_f")
        self.build((None, c.max_len))

    def build(self, input_shape):
        c = self.config
        self.tok_emb.build((None, None))
        if self.pos_emb is not None:
            self.pos_emb.build((None,))
        for block in self.blocks:
            block.build((None, None, c.d_model))
        self.ln_f.build((None, None, c.d_model))
        self.built = True

    def embed(self, tokens, positions):
        """Token plus position embeddings; tokens and positions of the same shape."""
        x = self.tok_emb(tokens)
        if self.pos_emb is not None:
            return x + self.pos_emb(positions)
        return x + ops.take(ops.convert_to_tensor(self._pos_table), positions, axis=0)

    def logits(self, h):
        """Output layer tied to the input embedding: ``ln_f(h) @ E^T``."""
        return ops.matmul(self.ln_f(h), ops.transpose(self.tok_emb.embeddings))

    def hidden(self, tokens):
        """The last block's output (B, T, D), before the output layer."""
        x = self.embed(tokens, ops.expand_dims(ops.arange(tokens.shape[1]), 0))
        for block in self.blocks:
            x = block(x)
        return x

    def call(self, tokens):
        return self.logits(self.hidden(tokens))

    def prefill(self, tokens):
        """Run a prompt (B, P): logits (B, P, V) and, per layer, its keys and values (B, P, H, Dh)."""
        t = tokens.shape[1]
        x = self.embed(tokens, ops.expand_dims(ops.arange(t), 0))
        kv = []
        for block in self.blocks:
            q, k, v = block.attn.project(block.ln1(x))
            kv.append((k, v))
            x = block.mlp(x + block.attn.merge(attention(q, k, v, causal_mask(t))))
        return self.logits(x), kv

    def decode(self, tokens, positions, cache, window: int | None = None, tables=None):
        """One step for S slots: tokens (S,) at positions (S,); returns logits (S, V) and the updated cache.

        ``cache``: keys and values per layer, each (S, H, max_len, Dh); slot s writes at ``[s, :, positions[s]]``
        and attends to ``0..positions[s]`` within the first ``window`` positions (default: all). With block
        ``tables`` (S, n), each buffer is a pool (blocks, H, B, Dh) holding position p of row s at
        ``[tables[s, p // B], :, p % B]`` (:mod:`helpers.lm.paged`); one table (1, n): rows are one prompt's positions.
        """
        s, h = tokens.shape[0], self.config.n_heads
        positions = ops.cast(positions, "int32")
        if tables is None:
            window = window or cache[0].shape[2]
            rows, cols, read = ops.arange(s, dtype="int32"), positions, lambda b: compiled.leading(b, window)
        else:
            size, full = cache[0].shape[2], ops.broadcast_to(tables, (s, tables.shape[1]))  # one table: one sequence
            rows = ops.take_along_axis(full, ops.expand_dims(positions // size, 1), axis=1)[:, 0]
            cols, window, read = positions % size, tables.shape[1] * size, lambda b: read_blocks(b, tables)
        x = self.embed(tokens, positions)  # (S, d)
        index = cache_index(rows, cols, h)  # (S, H, 3): where to write
        visible = ops.reshape(ops.arange(window, dtype="int32")[None, :] <= positions[:, None], (s, 1, window))
        new_cache = []
        for i, block in enumerate(self.blocks):
            q, k, v = block.attn.project(block.ln1(x))  # (S, H, Dh) each
            k_cache = compiled.write_rows(cache[2 * i], index, k)
            v_cache = compiled.write_rows(cache[2 * i + 1], index, v)
            new_cache += [k_cache, v_cache]
            x = block.mlp(x + block.attn.merge(attend_one(q, read(k_cache), read(v_cache), visible)))
        return self.logits(x), new_cache


def build_model(config: ModelConfig, seed: int = 0) -> PoetLM:
    """A freshly initialised :class:`PoetLM` (weights drawn after seeding Keras with ``seed``)."""
    keras.utils.set_random_seed(seed)
    return PoetLM(config, name="poet_lm")


def parameter_counts(model: PoetLM) -> dict:
    """Parameters: ``embedding`` (token and position tables; the tied output layer adds none),
    ``non_embedding`` (N of Kaplan et al. 2020, and of ``6 N D``) and ``total``."""
    embedding = sum(int(np.prod(e.embeddings.shape)) for e in (model.tok_emb, model.pos_emb) if e is not None)
    total = int(sum(np.prod(v.shape) for v in model.weights))
    return {"embedding": embedding, "non_embedding": total - embedding, "total": total}
