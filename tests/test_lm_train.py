"""Tests for training (helpers.lm.train), the counting baselines and the scaling sweep, on the toy corpus.

Tiny models, a few steps each; deterministic on TensorFlow with op determinism (helpers.env.setup).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest

from helpers import env

env.setup(os.environ.get("KERAS_BACKEND", "tensorflow"), 0)

import lm_toy as toy  # noqa: E402

from helpers.lm import baselines, compiled, scaling  # noqa: E402
from helpers.lm.data import CharTokenizer, Packed  # noqa: E402
from helpers.lm.model import ModelConfig  # noqa: E402
from helpers.lm.train import Scorer, TrainConfig, WarmupCosine, batch_indices, load_model, prepare, train  # noqa: E402
from helpers.topics.scaling import fit_power_law  # noqa: E402


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
@pytest.mark.parametrize("xla", [False, True])
def test_interrupted_run_resumes_with_the_same_numbers(data, tmp_path, xla):
    cfg = replace(CFG, xla=xla)
    straight = train(data, tiny(data), cfg)
    assert straight.model.jit_compile == xla  # the step ran as XLA code, or not
    ckpt = tmp_path / "ckpt"
    first = train(data, tiny(data), cfg, checkpoint_dir=ckpt, stop_after_segment=2)
    assert first.steps_done == 4
    resumed = train(data, tiny(data), cfg, checkpoint_dir=ckpt)
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
def test_baselines_score_the_same_targets_by_kind(data):
    fitted = baselines.fit_baselines(data.train, data.validation, data.tokenizer, data.test)
    assert list(fitted) == ["unigram", "bigram_interpolated", "kn_bigram", "kn_trigram"]
    uni, bi = fitted["unigram"], fitted["bigram_interpolated"]
    assert bi.test["characters"] < uni.test["characters"]  # the toy poems have a strong bigram structure
    assert bi.smoothing in baselines.LAMBDA_GRID and uni.smoothing in baselines.K_GRID
    assert fitted["kn_trigram"].smoothing is None and set(uni.test) == {"characters", "punctuation", "eos", "all"}
    assert baselines.best_on_characters(fitted).kind != "unigram"  # chosen on validation
    # the targets the baselines score are those the transformer's loss counts, split into three kinds
    w = baselines.targets(data.test)
    assert len(w) == data.test.tokens and len(baselines.histories(data.test)[2]) == len(w)
    assert not np.any(w == CharTokenizer.PAD) and not np.any(w == CharTokenizer.BOS)
    kinds = baselines.kinds(w, data.tokenizer)
    assert sum(m.astype(int) for m in kinds.values()).tolist() == [1] * len(w)  # each target in exactly one kind
    assert kinds["eos"].sum() == data.test.poems and {data.tokenizer.itos[i] for i in w[kinds["punctuation"]]} == {
        "，",
        "。",
    }
    nll = np.arange(len(w), dtype=float)
    split = baselines.by_kind(w, nll, data.tokenizer)
    assert split["eos"] == pytest.approx(nll[w == CharTokenizer.EOS].mean()) and split["all"] == pytest.approx(
        nll.mean()
    )


@pytest.mark.unit
def test_held_out_poems_start_fresh_and_contexts_stay_in_their_poem(data):
    rows = data.test.rows
    assert np.all(rows[:, 0] == CharTokenizer.BOS) and np.all((rows == CharTokenizer.BOS).sum(axis=1) == 1)
    assert np.all((rows == CharTokenizer.EOS).sum(axis=1) == 1)  # one poem a row
    packed = Packed(np.array([[1, 5, 6, 2, 1, 7, 8, 2, 0]]), 2, 0)  # two poems in one training row
    h2, h1, w = baselines.histories(packed)
    assert w.tolist() == [5, 6, 2, 7, 8, 2]
    assert h1.tolist() == [1, 5, 6, 1, 7, 8] and h2.tolist() == [1, 1, 5, 1, 1, 7]  # never the other poem's tokens


def _every_target(model, vocab_size, h2, h1):
    w = np.array([i for i in range(vocab_size) if i not in (CharTokenizer.PAD, CharTokenizer.BOS)])
    return model.prob(np.full(len(w), h2), np.full(len(w), h1), w)


@pytest.mark.unit
def test_every_baseline_sums_to_one_over_the_vocabulary(data):
    v = data.tokenizer.vocab_size
    fitted = baselines.fit_baselines(data.train, data.validation, data.tokenizer)
    for b in fitted.values():
        for h2, h1 in ((1, 1), (1, 5), (5, 6), (7, 7), (2, 3), (v - 1, 4)):  # seen, unseen and odd contexts
            assert _every_target(b.model, v, h2, h1).sum() == pytest.approx(1.0, abs=1e-9), (b.kind, h2, h1)


@pytest.mark.unit
def test_kneser_ney_by_hand():
    """Two poems, AB and AC (ids: A 4, B 5, C 6; <bos> 1, <eos> 2; V = 7, so 5 possible targets)."""
    rows = Packed(np.array([[1, 4, 5, 2], [1, 4, 6, 2]]), 2, 0)
    kn = baselines.KneserNey(rows, 7, order=2)
    # bigram counts: <bos>A 2, AB 1, AC 1, B<eos> 1, C<eos> 1: n1 = 4, n2 = 1, D2 = 4 / 6
    # continuation counts N(. w): A 1 (after <bos>), B 1, C 1, <eos> 2 (after B and C): n1 = 3, n2 = 1, D1 = 3 / 5
    assert [level[-1] for level in kn.levels] == pytest.approx([3 / 5, 4 / 6])  # D_k, unigram first
    d1, d2 = 3 / 5, 4 / 6
    uni = {w: (max(n - d1, 0) + d1 * 4 * 1 / 5) / 5 for w, n in ((4, 1), (5, 1), (6, 1), (2, 2), (3, 0))}
    assert sum(uni.values()) == pytest.approx(1.0)
    p = kn.prob(np.array([1, 1, 1]), np.array([4, 4, 6]), np.array([5, 2, 2]))
    # after A (seen twice, followed by 2 distinct): p(B | A) = (1 - D2 + 2 D2 p1(B)) / 2
    assert p[0] == pytest.approx((1 - d2 + 2 * d2 * uni[5]) / 2)
    assert p[1] == pytest.approx((0 + 2 * d2 * uni[2]) / 2)  # <eos> never seen after A
    assert p[2] == pytest.approx(1 - d2 + d2 * uni[2])  # C is always followed by <eos>
    tri = baselines.KneserNey(rows, 7, order=3)
    # trigram counts: (<bos> <bos> A) 2, (<bos> A B), (<bos> A C), (A B <eos>), (A C <eos>) 1 each: D3 = 4 / 6;
    # the bigrams' continuation counts are then all 1 (one token before each), so D2 = 1 and p2(B | A) = p1(B)
    assert [level[-1] for level in tri.levels] == pytest.approx([3 / 5, 1.0, 4 / 6])
    d3 = 4 / 6
    p2 = tri.prob(np.array([1]), np.array([4]), np.array([5]))
    lower = uni[5]
    assert p2[0] == pytest.approx((1 - d3 + 2 * d3 * lower) / 2)


@pytest.mark.slow
def test_scaling_sweeps_run_and_fit(data):
    """Three sizes (the chapter sweeps more, from its parameters), 1.2k to 65k non-embedding parameters."""
    cfg = TrainConfig(steps=4, batch_size=4, segment_steps=4, learning_rate=1e-2, warmup_steps=1, val_rows=8)
    table = scaling.size_sweep(data, ((8, 1, 2), (24, 2, 2), (48, 2, 4)), cfg)
    assert len(table) == 3 and table.attrs["non_embedding_span"] >= 30
    assert (table["flops"] == 6 * table["params_non_embedding"] * table["tokens"]).all()
    assert table["tokens"].nunique() == 1  # fixed data
    fit = fit_power_law(
        table["params_non_embedding"].to_numpy(float), table["val_loss"].to_numpy(float), irreducible=False
    )
    assert fit.n == 3 and math.isfinite(fit.exponent)
    compute = scaling.compute_sweep(data, (8, 1, 2), (2, 4), cfg)
    assert list(compute["steps"]) == [2, 4] and compute["flops"].is_monotonic_increasing
    # the 4-step budget is the size sweep's run of that size: taken from it, and equal to training it again
    reused = scaling.compute_sweep(data, (8, 1, 2), (2, 4), cfg, done=table)
    same = ["params_non_embedding", "steps", "tokens", "val_loss"]
    assert reused[same].equals(compute[same])
    assert reused["train_seconds"].iloc[1] == table["train_seconds"].iloc[0] != compute["train_seconds"].iloc[1]
