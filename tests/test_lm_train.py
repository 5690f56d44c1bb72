"""Tests for training (helpers.lm.train), the counting baselines and the scaling sweep, on the toy corpus.

Tiny models, a few steps each; deterministic on TensorFlow with op determinism (helpers.env.setup).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from helpers import env

env.setup(os.environ.get("KERAS_BACKEND", "tensorflow"), 0)

import lm_toy as toy  # noqa: E402

from helpers.lm import baselines, compiled, scaling  # noqa: E402
from helpers.lm.data import CharTokenizer  # noqa: E402
from helpers.lm.model import ModelConfig  # noqa: E402
from helpers.lm.train import Scorer, TrainConfig, WarmupCosine, batch_indices, load_model, prepare, train  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return prepare(toy.toy_corpus(240, seed=0), seq_len=32, min_count=1)


def tiny(data):
    return ModelConfig(data.tokenizer.vocab_size, max_len=32, d_model=16, n_layers=1, n_heads=2)


CFG = TrainConfig(steps=8, batch_size=4, segment_steps=2, learning_rate=5e-3, warmup_steps=2, val_rows=8)


def weights(model):
    return [compiled.to_numpy(w) for w in model.weights]


@pytest.mark.unit
def test_warmup_cosine_schedule():
    s = WarmupCosine(peak=1.0, warmup=4, total=12, min_ratio=0.1)
    lr = [float(compiled.to_numpy(s(i))) for i in range(14)]
    assert lr[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr[4] == pytest.approx(1.0) and lr[8] == pytest.approx(0.55)
    assert lr[12] == pytest.approx(0.1) and lr[13] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lr[4:], lr[5:]))


@pytest.mark.unit
def test_batches_are_a_function_of_seed_and_step():
    a = [batch_indices(10, 3, s, seed=1) for s in range(6)]
    assert all(np.array_equal(x, y) for x, y in zip(a, [batch_indices(10, 3, s, seed=1) for s in range(6)]))
    assert sorted(np.concatenate(a[:3]).tolist()) == sorted(set(np.concatenate(a[:3]).tolist()))  # one pass: no repeats
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(2, 3, 0, 0)


@pytest.mark.slow
@pytest.mark.unit
def test_training_records_a_learning_curve_and_learns(data):
    result = train(data, tiny(data), CFG)
    assert [p["step"] for p in result.history] == [2, 4, 6, 8]
    tokens = [p["tokens"] for p in result.history]
    assert tokens == sorted(tokens) and result.tokens_seen == tokens[-1]
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"] < math.log(data.tokenizer.vocab_size) + 0.5
    assert result.params["non_embedding"] > 0 and result.params["embedding"] > 0
    assert result.val_loss == pytest.approx(Scorer(result.model, 4)(data.validation, CFG.val_rows))


@pytest.mark.slow
def test_interrupted_run_resumes_with_the_same_numbers(data, tmp_path):
    straight = train(data, tiny(data), CFG)
    ckpt = tmp_path / "ckpt"
    first = train(data, tiny(data), CFG, checkpoint_dir=ckpt, stop_after_segment=2)
    assert first.steps_done == 4
    resumed = train(data, tiny(data), CFG, checkpoint_dir=ckpt)
    assert resumed.resumed_from_step == 4

    def numbers(history):
        return [{k: v for k, v in point.items() if k != "seconds"} for point in history]

    assert numbers(resumed.history) == numbers(straight.history)  # losses, tokens, learning rates: every number
    for a, b in zip(weights(resumed.model), weights(straight.model)):
        np.testing.assert_array_equal(a, b)
    # the finished checkpoint serves: same weights, same tokenizer
    model, tokenizer, identity = load_model(ckpt)
    assert tokenizer.itos == data.tokenizer.itos and identity["model"]["d_model"] == 16
    for a, b in zip(weights(model), weights(straight.model)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.unit
def test_a_checkpoint_of_another_run_is_refused(data, tmp_path):
    train(data, tiny(data), CFG, checkpoint_dir=tmp_path, stop_after_segment=1)
    other = TrainConfig(**{**CFG.__dict__, "learning_rate": 1e-3})
    with pytest.raises(ValueError, match="different run"):
        train(data, tiny(data), other, checkpoint_dir=tmp_path)
    assert json.loads((tmp_path / "state.json").read_text())["steps_done"] == 2
    with pytest.raises(FileNotFoundError, match="not a model checkpoint"):
        load_model(tmp_path / "nothing")


@pytest.mark.unit
def test_baselines_score_the_same_targets_and_bigram_beats_unigram(data):
    fitted = baselines.fit_baselines(data.train, data.validation, data.tokenizer, data.test)
    uni, bi = fitted["unigram"], fitted["bigram_interpolated"]
    assert bi.validation < uni.validation  # the toy poems have a strong bigram structure
    assert bi.smoothing in baselines.LAMBDA_GRID and uni.smoothing in baselines.K_GRID
    # the targets the baselines score are those the transformer's loss counts
    prev, nxt = baselines.pairs(data.validation)
    assert len(nxt) == data.validation.tokens
    assert not np.any(nxt == CharTokenizer.PAD) and not np.any(nxt == CharTokenizer.BOS)
    table = baselines.baseline_table(fitted)
    assert list(table["model"]) == ["unigram", "bigram_interpolated", "bigram_add_k"]


@pytest.mark.unit
def test_bigram_probabilities_sum_to_one(data):
    counts = baselines.CountModel.fit(data.train, data.tokenizer.vocab_size)
    v = data.tokenizer.vocab_size
    targets = np.array([i for i in range(v) if i not in (CharTokenizer.PAD, CharTokenizer.BOS)])
    for kind, value in (("bigram_interpolated", 0.8), ("bigram_add_k", 0.1)):
        for prev in (CharTokenizer.BOS, 5):
            from helpers.lm.data import Packed

            rows = np.stack([np.array([prev, t]) for t in targets]).astype(np.int32)
            p = np.exp(-np.array([counts.cross_entropy(Packed(r[None], 1, 0), kind, value) for r in rows]))
            assert p.sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
def test_scaling_sweeps_run_and_fit(data):
    """Three sizes (the chapter sweeps more, from its parameters), 1.2k to 65k non-embedding parameters."""
    cfg = TrainConfig(steps=4, batch_size=4, segment_steps=4, learning_rate=1e-2, warmup_steps=1, val_rows=8)
    table = scaling.size_sweep(data, ((8, 1, 2), (24, 2, 2), (48, 2, 4)), cfg)
    assert len(table) == 3 and table.attrs["non_embedding_span"] >= 30
    assert (table["flops"] == 6 * table["params_non_embedding"] * table["tokens"]).all()
    assert table["tokens"].nunique() == 1  # fixed data
    fit = scaling.fit_size_law(table, irreducible=False)
    assert fit.n == 3 and math.isfinite(fit.exponent)
    compute = scaling.compute_sweep(data, (8, 1, 2), (2, 4), cfg)
    assert list(compute["steps"]) == [2, 4] and compute["flops"].is_monotonic_increasing
