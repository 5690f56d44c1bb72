"""The landmark-model table and the estimates of chapter 01: cited rows, exact formulas, clear errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from helpers.topics import large_models as lm


@pytest.fixture(scope="module")
def table():
    return lm.load_models()


@pytest.fixture(scope="module")
def bib_keys(root):
    return set(re.findall(r"^@\w+\{([^,]+),", (root / "book" / "references.bib").read_text(), flags=re.M))


def test_the_table_has_at_least_twenty_cited_rows(table, bib_keys):
    assert len(table) >= 20
    assert table["source"].str.strip().ne("").all()
    missing = sorted(set(table["bib_key"]) - bib_keys)
    assert not missing, f"bib keys not in book/references.bib: {missing}"
    assert table["model"].is_unique


def test_the_table_holds_no_invented_or_impossible_values(table):
    assert (table["parameters"] > 0).all()
    for column in ("training_flops", "training_data"):
        values = table[column].dropna()
        assert (values > 0).all(), column
    # every data size says what it counts
    assert table.loc[table["training_data"].notna(), "data_unit"].str.len().gt(0).all()
    # years are plausible and the loader sorts by them
    assert table["year"].between(1989, 2030).all()
    assert table["year"].is_monotonic_increasing
    assert table["model"].iloc[0] == "LeNet-5"


def test_published_figures_match_their_papers(table):
    row = table.set_index("model")
    assert row.loc["GPT-3", "parameters"] == 175e9 and row.loc["GPT-3", "training_data"] == 300e9
    assert row.loc["GPT-3", "training_flops"] == pytest.approx(3.14e23)
    assert row.loc["PaLM", "training_flops"] == pytest.approx(2.56e24)
    assert row.loc["Llama 3.1 405B", "training_flops"] == pytest.approx(3.8e25)
    assert row.loc["Chinchilla", "training_data"] == 1.4e12
    assert math.isnan(row.loc["Chinchilla", "training_flops"])  # not published in the paper: left empty


def test_a_damaged_table_is_rejected(tmp_path):
    good = lm.TABLE.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([good[0], good[1].replace("lecun1998gradient", "")]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="source and a bib_key"):
        lm.load_models(bad)
    bad.write_text("\n".join([good[0], good[1].replace(",60000,,", ",-5,,")]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="parameters must be published and positive"):
        lm.load_models(bad)


def test_the_doubling_fit_recovers_a_known_doubling_time():
    years = np.arange(2000, 2021)
    values = 1e6 * 2.0 ** ((years - 2000) / 1.5)  # doubles every 18 months, exactly
    fit = lm.fit_doubling(years, values)
    assert fit.doubling_months == pytest.approx(18.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.predict([2003])[0] == pytest.approx(4e6)
    noisy = values * np.exp(np.random.default_rng(0).normal(0, 0.2, years.size))
    assert lm.fit_doubling(years, noisy).doubling_months == pytest.approx(18.0, rel=0.1)


def test_the_doubling_fit_skips_missing_values_and_refuses_nonsense():
    fit = lm.fit_doubling([2000, 2001, 2002], [1.0, float("nan"), 4.0])
    assert fit.n == 2 and fit.doubling_months == pytest.approx(12.0)
    with pytest.raises(ValueError, match="two different years"):
        lm.fit_doubling([2000, 2000], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        lm.fit_doubling([2000, 2001], [1.0, -2.0])
    with pytest.raises(ValueError, match="do not grow"):
        lm.fit_doubling([2000, 2001], [4.0, 2.0])


def test_six_n_d_by_hand():
    assert lm.training_flops(175e9, 300e9) == pytest.approx(3.15e23)
    assert lm.training_flops(1, 1) == 6
    with pytest.raises(ValueError, match="n_params must be a positive number"):
        lm.training_flops(-1, 10)


def test_memory_formulas_by_hand():
    assert lm.training_memory(1.5e9, "mixed-fp16")["total"] == pytest.approx(24e9)  # ZeRO's 16 bytes/parameter
    fp32 = lm.training_memory(1e9, "fp32")
    assert (fp32["weights"], fp32["gradients"], fp32["master weights"], fp32["Adam moments"]) == (4e9, 4e9, 0, 8e9)
    assert lm.weight_bytes(405e9, "bf16") == 810e9
    assert lm.weight_bytes(10, "int4") == 5
    # LLaMA-65B: 80 layers, 64 heads of 128, bf16: 2 * 80 * 64 * 128 * 2 bytes per token
    assert lm.kv_cache_bytes(80, 64, 128, 1, "bf16") == 2_621_440
    assert lm.kv_cache_bytes(80, 64, 128, 2048, "bf16", batch=32) == 2_621_440 * 2048 * 32


def test_accelerators_needed_rounds_up():
    assert lm.accelerators_needed(810e9, 80e9) == 11  # Llama 3 405B in bf16 on 80 GB GPUs
    assert lm.accelerators_needed(80e9, 80e9) == 1
    assert lm.accelerators_needed(80e9 + 1, 80e9) == 2
    assert lm.accelerators_needed(1, 80e9) == 1


def test_serving_estimate_by_hand():
    est = lm.serving_estimate(
        1e9,
        "bf16",
        n_layers=2,
        n_kv_heads=1,
        head_dim=4,
        prompt_tokens=10,
        output_tokens=10,
        batch=1,
        memory_per_accelerator=100e9,
        peak_flops=1e12,
        bandwidth=1e9,
        utilization=0.5,
    )
    weights, kv = 2e9, 2 * 2 * 1 * 4 * 20 * 2
    assert (est.weights, est.kv_cache, est.accelerators) == (weights, kv, 1)
    assert est.prefill_seconds == pytest.approx(2e9 * 10 / 0.5e12)
    assert est.seconds_per_token == pytest.approx((weights + kv) / 1e9)  # memory-bound
    assert est.decode_bound == "memory"
    assert est.request_seconds == pytest.approx(est.prefill_seconds + 10 * est.seconds_per_token)


def test_training_days_by_hand():
    assert lm.training_days(86_400e12, 1, 1e12, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cannot exceed 1"):
        lm.training_days(1e20, 1, 1e12, 1.5)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown precision 'fp12'.*fp32"):
        lm.bytes_per_value("fp12")
    with pytest.raises(ValueError, match="unknown training recipe"):
        lm.training_memory(1e9, "fp64")


def test_the_article_cnn_is_counted_from_code():
    from helpers import env

    env.setup("tensorflow", seed=0)
    from helpers import models

    model = models.article_cnn()
    assert model.count_params() == 167_562
    # conv 30*30*32*27 + 13*13*64*288 multiply-adds, dense 2304*64 + 64*10
    assert lm.forward_flops(model) == 2 * (777_600 + 3_115_008 + 147_456 + 640)


def test_formatting_for_prose():
    assert lm.sci(3.14e23) == "3.14 × 10²³"
    assert lm.sci(1.28e7, 2) == "1.3 × 10⁷"
    assert lm.short(1.571e12) == "1.57T" and lm.short(60_000) == "60k" and lm.short(float("nan")) == ""
