"""The conclusion's bookkeeping: every chapter's headline results, read from the same run, in words.

The conclusion reads what the other chapters glued in the same profile run
(:func:`helpers.artifacts.metrics`). This module decides, for each chapter, which values are its
headlines (:data:`HEADLINES`), how each reads (a percentage, a ratio, months, ...) and what it means
in a sentence computed from the chapter's own values; and writes the results table, the wall
times, the list of what did not run, the accuracy figure and the scaling-law forecast, in each
language. A chapter that did not run is said to have not run; nothing is filled in.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from helpers.topics import course
from helpers.topics.course import pick

Words = tuple[str, str]  # (English, Chinese)


def read(raw) -> float | str:
    """A glued value (its plain-text repr in ``summary.json``) as a number where it is one:
    ``"0.734"`` -> 0.734, ``"'73.4%'"`` -> 0.734, ``"'1,234'"`` -> 1234.0; other text as text."""
    try:
        value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        value = raw
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if text.endswith("%"):
            return float(text[:-1].replace(",", "")) / 100
        return float(text.replace(",", ""))
    except ValueError:
        return text


def values_of(stem: str) -> dict:
    """Every value ``stem`` glued in this run, read with :func:`read` ({} when it did not run)."""
    from helpers import artifacts

    return {name: read(raw) for name, raw in artifacts.metrics(stem).items()}


# --------------------------------------------------------------------------------------------
# how a value reads


def shown(value, unit: str, lang: str, v: dict | None = None) -> str:
    """``value`` with its unit, rounded for reading, in ``lang`` ('—' when it is missing)."""
    v = v or {}
    if isinstance(value, str):
        return value or "—"
    if not course.finite(value):
        return "—"
    if unit == "pct":
        return course.pct(value)
    if unit == "times":
        return course.times(value, lang, 2 if value < 10 else 1)
    if unit == "months":
        return pick(lang, f"{value:.1f} months", f"{value:.1f} 个月")
    if unit == "minutes":
        return course.duration(value * 60, lang)
    if unit == "points":
        return pick(lang, f"{value:.1f} percentage points", f"{value:.1f} 个百分点")
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "one":
        return f"{value:.1f}"
    if unit == "whole":
        return f"{value:,.0f}"
    if unit == "lost":
        total = v.get("failover_requests", math.nan)
        if course.finite(total):
            return pick(lang, f"{value:,.0f} of {total:,.0f} requests", f"{total:,.0f} 个请求中丢失 {value:,.0f} 个")
        return f"{value:,.0f}"
    raise ValueError(f"unknown unit {unit!r}")


def _chance(acc: float, chance: float = 0.1) -> Words | None:
    if not course.finite(acc):
        return None
    if acc > chance * 1.1:
        return f"{acc / chance:.1f} times chance ({chance:.0%})", f"是随机猜测（{chance:.0%}）的 {acc / chance:.1f} 倍"
    return f"no better than chance ({chance:.0%})", f"不比随机猜测（{chance:.0%}）好"


def _gain(x: float, en: Words, zh: Words) -> Words | None:
    """(en, zh) sentence for a gain: the first of each pair when it pays (above 1.2), the second otherwise."""
    if not course.finite(x):
        return None
    return (en[0], zh[0]) if x > 1.2 else (en[1], zh[1])


# --------------------------------------------------------------------------------------------
# what each chapter's headlines are


@dataclass(frozen=True)
class Headline:
    """One headline of a chapter: the glued value ``name``, what it measures, how it reads, and what
    it means (a function of the chapter's values returning (en, zh), or None when it cannot say)."""

    chapter: str
    name: str
    measure: Callable[[dict], Words] | Words
    unit: str
    meaning: Callable[[dict], Words | None] = lambda v: None

    def measure_words(self, v: dict, lang: str) -> str:
        words = self.measure(v) if callable(self.measure) else self.measure
        return pick(lang, *words)


def _num(v: dict, name: str, fmt: str = "{:,.0f}") -> str:
    x = v.get(name)
    return fmt.format(x) if course.finite(x) else "?"


HEADLINES: list[Headline] = [
    Headline(
        "large_models",
        "params_doubling_months",
        ("months for landmark models' parameter counts to double", "里程碑模型的参数量翻一番所需的月数"),
        "months",
        lambda v: (
            (
                f"about {v['params_factor']:.1f}× more parameters every year",
                f"参数量每年约增长到原来的 {v['params_factor']:.1f} 倍",
            )
            if course.finite(v.get("params_factor"))
            else None
        ),
    ),
    Headline(
        "servitization",
        "pool_best",
        lambda v: (
            f"speed-up of one job on {_num(v, 'pool_best_k')} worker processes",
            f"同一作业分给 {_num(v, 'pool_best_k')} 个工作进程后的加速比",
        ),
        "times",
        lambda v: (
            (
                f"Amdahl's law allows {v['amdahl_at_cores']:.2f}× on {_num(v, 'cores')} cores",
                f"阿姆达尔定律在 {_num(v, 'cores')} 个核心上允许 {v['amdahl_at_cores']:.2f} 倍",
            )
            if course.finite(v.get("amdahl_at_cores"))
            else None
        ),
    ),
    Headline(
        "servitization",
        "batching_gain",
        lambda v: (
            f"images per second in batches of {_num(v, 'max_batch_size')}, against one at a time",
            f"每批 {_num(v, 'max_batch_size')} 张时每秒处理的图像数，与逐张处理相比",
        ),
        "times",
        lambda v: _gain(
            v.get("batching_gain"),
            ("one model call answers many requests", "batching gained little"),
            ("一次模型调用回答许多请求", "批处理收益甚微"),
        ),
    ),
    Headline(
        "deep_learning_steps",
        "test_acc_best",
        ("test accuracy, the epoch chosen on the validation set", "测试准确率（按验证集选定轮次）"),
        "pct",
        lambda v: _chance(v.get("test_acc_best")),
    ),
    Headline(
        "learning_maths",
        "acc_ours",
        ("test accuracy of softmax regression written in NumPy", "用 NumPy 写的 softmax 回归的测试准确率"),
        "pct",
        lambda v: (
            (
                (
                    f"the same as Keras within {v['accuracy_tolerance'] * 100:.0f} percentage point",
                    f"与 Keras 的结果相差不到 {v['accuracy_tolerance'] * 100:.0f} 个百分点",
                )
                if abs(v["acc_gap"]) <= v["accuracy_tolerance"]
                else (
                    f"{abs(v['acc_gap']) * 100:.1f} percentage points from Keras",
                    f"与 Keras 相差 {abs(v['acc_gap']) * 100:.1f} 个百分点",
                )
            )
            if course.finite(v.get("acc_gap"), v.get("accuracy_tolerance"))
            else None
        ),
    ),
    Headline(
        "cifar10_cnn",
        "article_test_acc",
        ("test accuracy of the article's listing, run as printed", "原文代码照原样运行的测试准确率"),
        "pct",
        lambda v: _chance(v.get("article_test_acc")),
    ),
    Headline(
        "cifar10_cnn",
        "corrected_test_acc",
        ("test accuracy of the corrected CNN", "纠正后的卷积网络的测试准确率"),
        "pct",
        lambda v: (
            lambda d: (
                None
                if not course.finite(d)
                else (
                    f"{d * 100:.1f} percentage points above the listing as printed",
                    f"比照原样运行的代码高 {d * 100:.1f} 个百分点",
                )
                if d > 0.01
                else (
                    f"{-d * 100:.1f} percentage points below the listing as printed, in this run",
                    f"本次运行中比照原样运行的代码低 {-d * 100:.1f} 个百分点",
                )
                if d < -0.01
                else ("within 1 percentage point of the listing as printed", "与照原样运行的代码相差不到 1 个百分点")
            )
        )(
            v.get("corrected_test_acc", math.nan) - v.get("article_test_acc", math.nan)
            if course.finite(v.get("corrected_test_acc"), v.get("article_test_acc"))
            else math.nan
        ),
    ),
    Headline(
        "stronger_cnn",
        "final_acc",
        ("test accuracy of the stronger CNN's final run", "更强的卷积网络最终一次训练的测试准确率"),
        "pct",
        lambda v: _chance(v.get("final_acc")),
    ),
    Headline(
        "stronger_cnn",
        "gpu_best_acc",
        lambda v: (
            f"test accuracy recorded on a GPU ({v.get('gpu_name', '?')})",
            f"在 GPU（{v.get('gpu_name', '?')}）上记录的测试准确率",
        ),
        "pct",
        lambda v: (
            (
                f"after {v['gpu_best_sec']:.0f} s of training, recorded, not run here",
                f"训练 {v['gpu_best_sec']:.0f} 秒；是记录值，并非本次运行所得",
            )
            if course.finite(v.get("gpu_best_sec"))
            else None
        ),
    ),
    Headline(
        "serving",
        "served_acc",
        ("test accuracy of the CNN served over HTTP", "通过 HTTP 提供服务的卷积网络的测试准确率"),
        "pct",
        lambda v: (
            (
                ("the same predictions as the model offline", "与离线模型的预测完全相同")
                if v["n_disagree"] == 0
                else (
                    f"{v['n_disagree']:.0f} predictions differ from the model offline",
                    f"有 {v['n_disagree']:.0f} 个预测与离线模型不同",
                )
            )
            if course.finite(v.get("n_disagree"))
            else None
        ),
    ),
    Headline(
        "serving",
        "article_ratio_b64",
        lambda v: (
            f"requests per second with dynamic batching, against without ({_num(v, 'top_clients')} clients)",
            f"动态批处理与不批处理的每秒请求数之比（{_num(v, 'top_clients')} 个客户端）",
        ),
        "times",
        lambda v: _gain(
            v.get("article_ratio_b64"),
            ("batching requests pays under load", "batching gained little"),
            ("在负载下批处理请求是划算的", "批处理收益甚微"),
        ),
    ),
    Headline(
        "language_model",
        "test_ppl",
        lambda v: (
            f"test perplexity of the transformer ({_num(v, 'params_total')} parameters)",
            f"Transformer 的测试困惑度（{_num(v, 'params_total')} 个参数）",
        ),
        "whole",
        lambda v: (
            lambda p, bi, uni: (
                None
                if not course.finite(p, bi, uni)
                else (f"below both counting baselines (bigram: {bi:,.0f})", f"低于两个计数基线（二元模型：{bi:,.0f}）")
                if p < min(bi, uni)
                else (
                    f"below the unigram model ({uni:,.0f}), not yet the bigram ({bi:,.0f})",
                    f"低于一元模型（{uni:,.0f}），尚未低于二元模型（{bi:,.0f}）",
                )
                if p < uni
                else (
                    f"not below the counting baselines (bigram: {bi:,.0f})",
                    f"没有低于计数基线（二元模型：{bi:,.0f}）",
                )
            )
        )(v.get("test_ppl"), v.get("bigram_ppl"), v.get("unigram_ppl")),
    ),
    Headline(
        "decoding",
        "kv_speedup",
        lambda v: (
            f"tokens per second of greedy decoding with a KV cache, against recomputing the prefix "
            f"({_num(v, 'kv_len')} tokens)",
            f"用 KV 缓存与每步重新计算前缀相比，贪心解码每秒词元数之比（{_num(v, 'kv_len')} 个词元）",
        ),
        "times",
        lambda v: _gain(
            v.get("kv_speedup"),
            ("the cache pays even for short poems", "at these lengths the cache gained little"),
            ("即使对短诗，缓存也是划算的", "在这些长度上缓存收益甚微"),
        ),
    ),
    Headline(
        "llm_serving",
        "gain",
        lambda v: (
            f"tokens per second, continuous batching against one request at a time ({_num(v, 'streams')} streams)",
            f"连续批处理与逐个处理的每秒词元数之比（{_num(v, 'streams')} 个并发流）",
        ),
        "times",
        lambda v: _gain(
            v.get("gain"),
            ("batching tokens, not requests, pays", "no gain at this load"),
            ("按词元而不是按请求组成批量是划算的", "在这个负载下没有收益"),
        ),
    ),
    Headline(
        "distributed_serving",
        "ray2_vs_hand",
        (
            "requests per second, two Ray Serve replicas against the hand-built service",
            "两个 Ray Serve 副本与手写服务的每秒请求数之比",
        ),
        "ratio",
        lambda v: (
            (
                ("the replicas added capacity", "副本增加了服务能力")
                if v["ray2_vs_hand"] >= 1
                else (
                    f"on one machine the replicas share its cores: about {v['breakeven_nodes']:.0f} machines "
                    "to break even",
                    f"在一台机器上副本共用同样的核心：大约要 {v['breakeven_nodes']:.0f} 台机器才能持平",
                )
                if course.finite(v.get("breakeven_nodes"))
                else ("on one machine the replicas share its cores", "在一台机器上副本共用同样的核心")
            )
            if course.finite(v.get("ray2_vs_hand"))
            else None
        ),
    ),
    Headline(
        "distributed_serving",
        "lost",
        ("requests lost while a node was killed, clients retrying", "杀掉一个节点时丢失的请求（客户端会重试）"),
        "lost",
        lambda v: (
            (f"without retries {v['failed']:,.0f} failed", f"不重试时有 {v['failed']:,.0f} 个失败")
            if course.finite(v.get("failed"))
            else None
        ),
    ),
    Headline(
        "trends_challenges",
        "alpha_N",
        ("exponent of test error against parameters", "测试错误率对参数量的幂律指数"),
        "ratio",
        lambda v: (
            (v["verdict_en"], v["verdict_zh"])
            if isinstance(v.get("verdict_en"), str) and isinstance(v.get("verdict_zh"), str)
            else None
        ),
    ),
    Headline(
        "trends_challenges",
        "fed_noniid_acc",
        ("test accuracy of federated averaging on skewed clients", "偏斜客户端上联邦平均的测试准确率"),
        "pct",
        lambda v: (
            (
                f"{v['fed_gap_pp']:.1f} percentage points below central training; no image left its client",
                f"比集中训练低 {v['fed_gap_pp']:.1f} 个百分点；没有一张图像离开客户端",
            )
            if course.finite(v.get("fed_gap_pp"))
            else None
        ),
    ),
    Headline(
        "faq",
        "size_rank_corr",
        lambda v: (
            f"rank correlation of size and accuracy over {_num(v, 'n_ranked')} models",
            f"{_num(v, 'n_ranked')} 个模型的规模与准确率的秩相关系数",
        ),
        "ratio",
        lambda v: (
            (
                ("the larger models were mostly the more accurate", "更大的模型大多更准确")
                if v["size_rank_corr"] > 0.5
                else ("size alone did not order the models by accuracy", "仅凭规模并不能给模型的准确率排序")
            )
            if course.finite(v.get("size_rank_corr"))
            else None
        ),
    ),
    Headline(
        "faq",
        "seed_range_pp",
        lambda v: (
            f"test-accuracy range over {_num(v, 'seed_runs')} seeds",
            f"{_num(v, 'seed_runs')} 个随机种子之间测试准确率的极差",
        ),
        "points",
        lambda v: ("a difference smaller than this is noise", "比这更小的差别只是噪声"),
    ),
]


def headlines(stem: str) -> list[Headline]:
    """``stem``'s headlines: those of :data:`HEADLINES`, else its last glued test accuracy, else none."""
    own = [h for h in HEADLINES if h.chapter == stem]
    if own:
        return own
    names = [name for name in values_of(stem) if "test_acc" in name][-1:]
    return [Headline(stem, name, (name.replace("_", " "), name.replace("_", " ")), "pct") for name in names]


def results(stems: list[str], records: dict) -> list[dict]:
    """One row per headline of each chapter in ``stems``: what it measures, its value and what it means,
    in each language; a chapter that did not run (or failed) has one row that says so."""
    rows = []
    for stem in stems:
        record = records.get(stem) or {}
        v = values_of(stem)
        found = headlines(stem) if record.get("status") == "ok" else []
        if not found:
            rows.append(
                {
                    "chapter": stem,
                    **{
                        f"{k}_{lang}": text
                        for lang in course.LANGS
                        for k, text in (
                            ("measure", "—"),
                            ("value", "—"),
                            (
                                "meaning",
                                pick(lang, "no headline glued", "没有记录关键数字")
                                if record.get("status") == "ok"
                                else pick(
                                    lang,
                                    f"{course.status(record, 'en')} in this run",
                                    f"本次运行中{course.status(record, 'zh')}",
                                ),
                            ),
                        )
                    },
                }
            )
            continue
        for h in found:
            row = {"chapter": stem, "name": h.name}
            meaning = None
            try:
                meaning = h.meaning(v)
            except (KeyError, TypeError, ValueError):
                meaning = None
            for i, lang in enumerate(course.LANGS):
                row[f"measure_{lang}"] = h.measure_words(v, lang)
                row[f"value_{lang}"] = shown(v.get(h.name, math.nan), h.unit, lang, v)
                row[f"meaning_{lang}"] = meaning[i] if meaning else "—"
            rows.append(row)
    return rows


def results_table(rows: list[dict], lang: str) -> pd.DataFrame:
    """The course's results as a reader reads them: chapter (linked), measure, value, what it means."""
    index = pd.MultiIndex.from_tuples(
        [(course.link(r["chapter"], lang), r[f"measure_{lang}"]) for r in rows],
        names=[pick(lang, "chapter", "章"), pick(lang, "measured", "测量的量")],
    )
    return pd.DataFrame(
        {
            pick(lang, "value", "数值"): [r[f"value_{lang}"] for r in rows],
            pick(lang, "what it means", "含义"): [r[f"meaning_{lang}"] for r in rows],
        },
        index=index,
    )


def runs_table(stems: list[str], records: dict, lang: str) -> pd.DataFrame:
    """Each chapter's status and wall time in this run."""
    frame = pd.DataFrame(
        {
            pick(lang, "status", "状态"): [course.status(records.get(s), lang) for s in stems],
            pick(lang, "wall time", "运行时间"): [
                course.duration((records.get(s) or {}).get("seconds", math.nan), lang)
                if (records.get(s) or {}).get("status") == "ok"
                else "—"
                for s in stems
            ],
        },
        index=[course.link(s, lang) for s in stems],
    )
    frame.index.name = pick(lang, "chapter", "章")
    return frame


def missing_words(stems: list[str], records: dict) -> dict:
    """What did not run, or failed, in this run, as a sentence in each language."""
    failed = [s for s in stems if (records.get(s) or {}).get("status") == "failed"]
    absent = [s for s in stems if (records.get(s) or {}).get("status") not in ("ok", "failed")]
    out = {}
    for lang in course.LANGS:
        parts = []
        if absent:
            parts.append(
                pick(lang, "not run: ", "未运行：") + course.listing([course.title(s, lang) for s in absent], lang)
            )
        if failed:
            parts.append(
                pick(lang, "failed: ", "运行失败：") + course.listing([course.title(s, lang) for s in failed], lang)
            )
        if not parts:
            out[lang] = pick(lang, "Every chapter ran.", "每一章都运行了。")
        else:
            out[lang] = pick(lang, "; ".join(parts) + ".", "；".join(parts) + "。")
    return out


# --------------------------------------------------------------------------------------------
# the accuracies of CIFAR-10, side by side

#: (chapter, glued name, English label, Chinese label)
ACCURACIES = (
    ("faq", "linear_acc", "linear classifier (FAQ)", "线性分类器（常见问题）"),
    ("cifar10_cnn", "article_test_acc", "the article's listing, run as printed", "原文代码照原样运行"),
    ("cifar10_cnn", "corrected_test_acc", "corrected CNN", "纠正后的卷积网络"),
    ("stronger_cnn", "final_acc", "stronger CNN, final run", "更强的卷积网络，最终一次训练"),
    ("serving", "served_acc", "CNN served over HTTP", "通过 HTTP 服务的卷积网络"),
    ("trends_challenges", "fed_noniid_acc", "FedAvg, skewed clients", "FedAvg，偏斜客户端"),
    ("trends_challenges", "fed_iid_acc", "FedAvg, IID clients", "FedAvg，独立同分布客户端"),
    ("trends_challenges", "central_acc", "central training (FedAvg's baseline)", "集中训练（FedAvg 的对照）"),
)


def accuracies() -> tuple[dict, list]:
    """The CIFAR-10 test accuracies of this run, by (English, Chinese) label, and the labels of those missing."""
    measured, missing = {}, []
    for stem, name, en, zh in ACCURACIES:
        value = values_of(stem).get(name, math.nan)
        if course.finite(value):
            measured[(en, zh)] = value
        else:
            missing.append((en, zh))
    return measured, missing


def plot_accuracies(measured: dict, lang: str = "en"):
    """Horizontal bars: each CIFAR-10 test accuracy of this run, labelled in ``lang``."""
    import matplotlib.pyplot as plt

    from helpers import plots  # noqa: F401 - the book's figure style

    labels = [pick(lang, *k) for k in measured]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(measured) + 1))
    ax.barh(labels, list(measured.values()))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(pick(lang, "CIFAR-10 test accuracy", "CIFAR-10 测试准确率"))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# the forecast


def forecast(fit_text: str, sweep: pd.DataFrame | None, target: float) -> dict:
    """How wide the CNN would have to be for ``target`` test accuracy, from the trends chapter's fit
    of error against parameters (``fit_text``: "E A alpha" as glued; "" when missing) and its sweep."""
    from helpers.topics import scaling
    from helpers.topics.large_models import sci

    if not fit_text:
        return {
            "en": "no forecast: the trends chapter did not run in this run, or its fit failed",
            "zh": "无法预测：本次运行没有运行“趋势与挑战”一章，或其拟合失败",
        }
    floor, scale, alpha = (float(x) for x in fit_text.split())
    need = scaling.PowerLawFit(alpha, scale, floor, math.nan, 0).x_for_error(1 - target)
    if math.isinf(need):
        return {
            "en": f"out of reach by width alone: the fitted floor is {floor:.1%} error ({1 - floor:.1%} accuracy), "
            "so more data or epochs are needed",
            "zh": f"仅靠宽度无法达到：拟合的下限是 {floor:.1%} 的错误率（{1 - floor:.1%} 的准确率），需要更多数据或更多轮次",
        }
    if sweep is None:
        return {
            "en": f"about {sci(need, 2)} parameters (the sweep's table is missing, so no width)",
            "zh": f"约 {sci(need, 2)} 个参数（扫描的表格缺失，无法给出宽度）",
        }
    widths = sweep.drop_duplicates("width")
    width = scaling.width_for_params(widths.width, widths.params, need)
    if not math.isfinite(width):
        return {
            "en": f"about {sci(need, 2)} parameters, which no width of this network gives",
            "zh": f"约 {sci(need, 2)} 个参数，这个网络的任何宽度都达不到",
        }
    widest = float(widths.width.max())
    if width > 8 * widest:
        return {
            "en": f"about {sci(need, 2)} parameters, a width multiplier near {width:,.0f}: far beyond the "
            f"widest network swept ({widest:g}), so the forecast is an extrapolation",
            "zh": f"约 {sci(need, 2)} 个参数，宽度倍数约为 {width:,.0f}：远远超出扫描过的最宽网络（{widest:g}），"
            "所以这个预测是外推",
        }
    return {
        "en": f"about {sci(need, 2)} parameters, a width multiplier near {width:.1f}",
        "zh": f"约 {sci(need, 2)} 个参数，宽度倍数约为 {width:.1f}",
    }
