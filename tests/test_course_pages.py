"""The bookkeeping of the trends, FAQ and conclusion chapters: chapters named in the reader's language,
values with their units, tables without raw floats, figures labelled per language, verdicts in words."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import zh_prose

from helpers import headline, words
from helpers.topics import conclusion, course, faq, federated, scaling, trends


def _run_dir(tmp_path, monkeypatch, notebooks: dict):
    run_dir = tmp_path / "run"
    (run_dir / "artifacts").mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"profile": "ci", "notebooks": notebooks}))
    monkeypatch.setenv("MAAS_ARTIFACT_DIR", str(run_dir / "artifacts"))
    return run_dir


# ------------------------------------------------------------------------------------- course


def test_chapters_are_named_by_number_and_title_in_each_language(monkeypatch):
    chapters = course.chapters()
    assert list(chapters)[:2] == ["large_models", "servitization"] and "conclusion" in chapters
    assert course.title("serving", "en") == f"Chapter {chapters['serving']['number']}. Model as a service"
    assert course.title("serving", "zh") == f"第 {chapters['serving']['number']} 章 模型即服务"
    assert course.title("serving", "zh", number=False, full=True).startswith("模型即服务：")
    assert course.link("faq", "zh").startswith('<a href="faq.html">第 ')
    monkeypatch.setenv("MAAS_LANG", "zh")  # a readers' edition links the notebooks
    assert course.href("faq") == f"{chapters['faq']['file']}.ipynb"
    assert course.title("no_such_chapter", "en") == "no_such_chapter"
    assert list(course.in_book_order({"faq": 1, "x": 2, "large_models": 3})) == ["large_models", "faq", "x"]


def test_values_read_with_their_units():
    assert course.pct(np.float32(0.7341)) == "73.4%" and course.pct(float("nan")) == "—"
    assert course.points(0.042, "zh") == "4.2 个百分点" and course.points(0.042, "en") == "4.2 percentage points"
    assert course.times(4.66, "en") == "4.7×" and course.times(4.66, "zh") == "4.7 倍"
    assert course.duration(42, "en") == "42 s" and course.duration(300, "zh") == "5.0 分钟"
    assert course.listing(["a", "b", "c"], "en") == "a, b and c" and course.listing(["a", "b"], "zh") == "a 和 b"
    assert not course.finite(None, 1.0) and not course.finite(True) and course.finite(np.int64(3), 2.5)
    with pytest.raises(ValueError):
        words.pick("fr", "a", "b")


# ------------------------------------------------------------------------------------- trends


def _sweep():
    rows = []
    for width, params in ((0.25, 10_000), (0.5, 40_000), (1.0, 160_000)):
        for n in (400, 800, 1600):
            err = 0.2 + 3.0 * params**-0.2 + 2.0 * n**-0.3
            rows.append(
                {
                    "width": width,
                    "params": params,
                    "train_size": n,
                    "epochs": 1,
                    "test_error": err,
                    "test_loss": 1.0,
                    "train_flops": 3.0 * params * n,
                    "seconds": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_fit_sweep_fits_each_axis_and_the_tables_read_in_each_language():
    sweep = _sweep()
    fits = scaling.fit_sweep(sweep)
    largest = sweep[sweep.train_size == 1600]
    assert fits["params"] == scaling.try_fit(largest.params, largest.test_error)
    zh = trends.fit_table({**fits, "train_size": None}, "zh")
    assert zh.index.name == "测试错误率对" and "点太少" in zh.iloc[1, 0]
    errors = trends.error_table(sweep, "zh")
    assert (
        errors.index.name == "训练图像数" and errors.columns[0] == "10,000 个参数" and errors.iloc[0, 0].endswith("%")
    )
    published = trends.published_table(fits, "en")
    assert published.shape == (3, 3)


@pytest.mark.parametrize("lang, word", [("en", "test error"), ("zh", "测试错误率")])
def test_sweep_figure_is_labelled_in_the_pages_language(lang, word):
    import matplotlib.pyplot as plt

    sweep = _sweep()
    fig = scaling.plot_sweep(sweep, scaling.fit_sweep(sweep), lang=lang)
    assert fig.axes[0].get_ylabel() == word
    plt.close(fig)


def test_federated_figures_are_labelled_in_the_pages_language():
    import matplotlib.pyplot as plt

    fig = federated.plot_shards(np.array([[5, 1], [0, 7]]), ("飞机", "汽车"), lang="zh")
    assert fig.axes[0].get_xlabel() == "客户端"
    plt.close(fig)
    fig = federated.plot_rounds(
        {"skewed": [1, 2], "central": [1, 2]}, {"skewed": [0.2, 0.3], "central": [0.3, 0.4]}, lang="zh"
    )
    assert fig.axes[0].get_ylabel() == "测试准确率"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "FedAvg，偏斜分片",
        "集中训练（图像汇集在一起）",
    ]
    plt.close(fig)


def test_trends_tables_hold_no_raw_floats():
    frame = trends.rounds_table([0.13, 0.2], [0.16], [0.21, 0.3], "zh")
    assert frame.iloc[1, 1] == "—" and frame.iloc[0, 0] == "13.0%"
    table = trends.transfer_table({"transfer": 0.383, "scratch": 0.3, "chance": 0.25, "test_images": 120}, "zh")
    assert list(table.iloc[:, 0]) == ["38.3%", "30.0%", "25.0%"]
    titles = trends.explanation_titles(
        [3], [5], [0.91], {"en": ("a",) * 3 + ("cat", "x", "dog"), "zh": ("甲",) * 3 + ("猫", "乙", "狗")}
    )
    assert titles == {"en": ["cat→dog\n0.91"], "zh": ["猫→狗\n0.91"]}


# ---------------------------------------------------------------------------------------- faq


def test_faq_comparison_names_models_in_each_language():
    own = [
        {"key": "centroid", "kind": "traditional", "parameters": 30720, "training_flops": 6e6, "test_accuracy": 0.26},
        {"key": "article", "kind": "deep", "parameters": 167562, "training_flops": 2e10, "test_accuracy": 0.19},
    ]
    models = faq.comparison(own, _sweep(), corrected_acc=0.33, corrected_params=167562)
    assert list(models.index) == ["centroid", "article", "width:0.25", "width:0.5", "width:1", "corrected"]
    table = faq.comparison_table(models, "zh")
    assert table.index[2] == "宽度 0.25 的卷积网络" and table.iloc[0, -1] == "本页"
    assert table.iloc[-1, 3] == "33.0%" and "cifar10_cnn.html" in table.iloc[-1, -1]
    words = faq.size_and_accuracy(models)
    assert words["n"] == 6 and "纠正后的卷积网络" in words["zh"] and "corrected CNN" in words["en"]


def test_faq_ladder_and_backends_read_in_words(tmp_path):
    path = tmp_path / "ablation.csv"
    pd.DataFrame(
        {
            "rung": ["article", "augment", "brand_new"],
            "change": ["the article's", "flips", "something new"],
            "test_accuracy": [0.5, 0.6, 0.58],
            "epochs": [1, 1, 1],
        }
    ).to_csv(path, index=False)
    ladder = faq.read_ladder(path)
    words = faq.ladder_words(ladder)
    assert "10.0 percentage points" in words["en"] and "flips" in words["en"] and "随机翻转" in words["zh"]
    assert faq.ladder_table(ladder, "zh").iloc[2, 0] == "brand_new"  # an unknown rung keeps its id
    timings = pd.DataFrame(
        [
            {"backend": "tensorflow", "status": "ok", "train_images_per_s": 1000.0},
            {"backend": "torch", "status": "not installed"},
        ]
    ).set_index("backend")
    said = faq.backends_words(timings)
    assert said["backends_missing_zh"] == "torch（未安装）" and said["fastest_ips"] == "1,000"
    assert faq.backends_table(timings, "zh").iloc[1, 0] == "未安装"


def test_a_rejected_parameter_is_explained_in_chinese():
    from helpers.book import run
    from helpers.book.params import ParameterError

    with pytest.raises(ParameterError) as info:
        run.plan("cpu", ["cifar10_cnn"], [run.parse_override("epochs=0")])
    words = faq.rejection(info.value)
    assert words["en"].startswith("rejected before any compute") and "参数 epochs = 0：应大于或等于 1" in words["zh"]


# --------------------------------------------------------------------------------- conclusion


def test_glued_values_are_read_as_numbers_where_they_are_numbers():
    assert conclusion.read("'73.4%'") == pytest.approx(0.734)
    assert conclusion.read("'1,234'") == 1234.0 and conclusion.read("0.5") == 0.5
    assert conclusion.read("'the same'") == "the same" and conclusion.read("True") == "True"


def test_results_read_every_headline_a_chapter_glued_and_say_what_did_not_run(tmp_path, monkeypatch):
    def glued(*args) -> str:  # a headline as the run's summary holds it: the repr of its JSON text
        return repr(headline.payload(*args))

    corrected = ("test accuracy of the corrected CNN", "纠正后的卷积网络的测试准确率")
    above = ("22.8 percentage points above the listing as printed", "比照原样运行的代码高 22.8 个百分点")
    metrics = {
        "cifar10_cnn": {
            "article_test_acc": "0.372",
            "headline_corrected_test_acc": glued(0.6, "pct", corrected, above),
        },
        "llm_serving": {"headline_gain": glued(2.2, "times", ("tokens per second", "每秒词元数"))},
        "distributed_serving": {
            "headline_lost": glued(("0 of 460 requests", "460 个请求中丢失 0 个"), "words", ("lost", "丢失的请求"))
        },
        "decoding": {"kv_speedup": "'1.7'"},  # no headline
    }
    notebooks = {stem: {"status": "ok", "seconds": 30.0, "metrics": m} for stem, m in metrics.items()}
    _run_dir(tmp_path, monkeypatch, notebooks | {"serving": {"status": "failed", "seconds": 3.0, "metrics": {}}})
    stems = ["cifar10_cnn", "serving", "decoding", "llm_serving", "distributed_serving", "faq"]
    records = json.loads((tmp_path / "run" / "summary.json").read_text())["notebooks"]
    rows = conclusion.results(stems, records)
    by = {(r["chapter"], r.get("name")): r for r in rows}
    assert [r["chapter"] for r in rows] == stems
    assert by[("cifar10_cnn", "corrected_test_acc")]["meaning_zh"] == above[1]
    assert by[("cifar10_cnn", "corrected_test_acc")]["measure_en"] == corrected[0]
    assert by[("llm_serving", "gain")]["value_zh"] == "2.20 倍" and by[("llm_serving", "gain")]["meaning_en"] == "—"
    assert by[("distributed_serving", "lost")]["value_en"] == "0 of 460 requests"
    assert by[("decoding", None)]["meaning_zh"] == "没有记录关键数字"
    assert by[("serving", None)]["meaning_en"] == "failed in this run"
    assert by[("faq", None)]["meaning_zh"] == "本次运行中未运行"
    for lang in course.LANGS:
        table = conclusion.results_table(rows, lang)
        cells = [str(c) for c in table.to_numpy().ravel()]
        assert not any(re.fullmatch(r"-?\d+\.\d{3,}", c) for c in cells), "no raw floats"
        assert all('<a href="' in name for name, _ in table.index)
    zh = conclusion.results_table(rows, "zh")
    assert not any(zh_prose.latin_words(m) for _, m in zh.index), "measures in Chinese (names excepted)"
    missing = conclusion.missing_words(stems, records)
    assert missing["en"].startswith("not run: Chapter") and "运行失败：第" in missing["zh"]
    assert conclusion.missing_words(["cifar10_cnn"], records)["zh"] == "每一章都运行了。"
    # what the page reads by name from another chapter is listed in READS, and read from this run only
    assert conclusion.value("cifar10_cnn", "article_test_acc", "pct") == "37.2%"
    assert conclusion.value("cifar10_cnn", "corrected_test_acc", "pct", "zh") == "—"  # glued only as a headline
    assert conclusion.said("trends_challenges", "verdict") == ("(not run in this run)", "（本次运行未运行）")
    with pytest.raises(KeyError, match="READS"):
        conclusion.glued("decoding", "kv_speedup")


def test_the_forecast_says_when_width_cannot_reach_the_target():
    sweep = pd.DataFrame({"width": [0.5, 1.0, 2.0], "params": [42_314, 167_562, 667_018]})
    beyond = conclusion.forecast("0.3 1.5 0.05", sweep, target=0.8)
    assert beyond["en"].startswith("out of reach by width alone") and "30.0%" in beyond["zh"]
    reach = conclusion.forecast("0.0 4.0 0.2", sweep, target=0.4)
    assert "width multiplier near" in reach["en"] and "宽度倍数约为" in reach["zh"]
    assert conclusion.forecast("", None, 0.8)["zh"].startswith("无法预测")
    assert math.isfinite(scaling.width_for_params(sweep.width, sweep.params, 300_000))
