"""The language-model chapter's bookkeeping: bilingual tables and figures, and the bigram's poems."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import lm_toy as toy  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from helpers import words  # noqa: E402
from helpers.lm import baselines, chapter  # noqa: E402
from helpers.lm.data import CharTokenizer, form_score  # noqa: E402
from helpers.lm.train import prepare  # noqa: E402


@pytest.fixture(scope="module")
def toy_data():
    return prepare(toy.toy_corpus(200), seq_len=64, min_count=1)


def _scheduler_rows() -> pd.DataFrame:
    rows = []
    for c in (1, 4):
        for name in ("single", "static", "continuous"):
            row = {"scheduler": name, "concurrency": c, **{k: float(c) for k in chapter.METRICS}}
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.unit
def test_tables_have_headers_in_each_language(toy_data):
    fitted = baselines.fit_baselines(toy_data.train, toy_data.validation, toy_data.tokenizer, toy_data.test)
    scores = {**{k: b.test for k, b in fitted.items()}, "transformer": {**fitted["unigram"].test, "characters": 2.1}}
    en, zh = chapter.baseline_table(scores, "en"), chapter.baseline_table(scores, "zh")
    assert en.shape == zh.shape == (5, 5) and "perplexity per character" in en.columns and "每字困惑度" in zh.columns
    assert en.iloc[-1]["perplexity per character"] == pytest.approx(np.exp(2.1), abs=0.5)
    assert list(zh.index) == [words.zh(chapter.MODEL_NAMES[k], "lm") for k in scores]
    view = chapter.scheduler_view(_scheduler_rows(), "zh")
    assert view.index.names == ["并发流", "调度方式"] and "连续批处理" in view.index.get_level_values(1)
    assert list(chapter.scheduler_view(_scheduler_rows(), "en").columns)[0] == "output tok/s"
    parts = pd.DataFrame([{k: 1.0 for k in chapter.TIME_PARTS} for _ in range(2)], index=["single", "continuous"])
    assert list(chapter.time_view(parts, "zh").index) == ["逐个处理", "连续批处理"]
    assert "total, ms/token" in chapter.time_view(parts, "en").columns


@pytest.mark.unit
def test_figures_are_drawn_once_per_language():
    import matplotlib.pyplot as plt

    history = [{"tokens": 1000 * i, "train_loss": 5 - i / 10, "val_loss": 5.1 - i / 10} for i in range(1, 5)]
    for lang in chapter.LANGS:
        fig = chapter.plot_learning_curve(history, {"bigram": 4.8}, lang)
        labels = [fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()]
        assert any(("词元" in t) == (lang == "zh") for t in labels)
        plt.close(fig)
        fig = chapter.plot_schedulers(_scheduler_rows(), lang)
        assert len(fig.axes) == 2
        plt.close(fig)


@pytest.mark.unit
def test_sizes_and_words_read_well():
    assert (
        chapter.size(8192) == "8.2 kB"
        and chapter.size(1_310_720) == "1.3 MB"
        and chapter.size(84e6) == "84.0 MB"
        and chapter.size(2.4e9) == "2.4 GB"
    )
    assert chapter.short(12_600) == "12.6k" and chapter.short(3_155_456) == "3.16M"
    cases = chapter.bad_requests("http://127.0.0.1:8000", 64)
    assert len({case for case, *_ in cases}) == len(cases) and all(status in (400, 404) for *_, status in cases)
    assert all(words.zh(case, "lm") for case, *_ in cases)


@pytest.mark.unit
def test_the_bigram_writes_poems_that_end(toy_data):
    bigram = baselines.fit_baselines(toy_data.train, toy_data.validation, toy_data.tokenizer)["bigram_interpolated"]
    texts = baselines.bigram_poems(bigram.model, toy_data.tokenizer, 5, seed=0, max_len=64)
    again = baselines.bigram_poems(bigram.model, toy_data.tokenizer, 5, seed=0, max_len=64)
    assert texts == again and len(texts) == 5 and all(texts)
    assert all(set(t) <= set(toy_data.tokenizer.chars) for t in texts)
    assert 0.0 <= form_score(texts) <= 1.0
    assert CharTokenizer.EOS not in toy_data.tokenizer.encode(texts[0], bos=False)
