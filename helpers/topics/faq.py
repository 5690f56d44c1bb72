"""The FAQ chapter's bookkeeping: its comparison of models, its timings and its tables, in each language."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pandas as pd

from helpers.topics import course
from helpers.topics.large_models import sci
from helpers.topics.recipe import CHANGES
from helpers.words import in_lang, pick, sentence

#: the models of the comparison, by key (in Chinese: the vocabulary's ``faq`` section)
MODEL_NAMES = {
    "centroid": "nearest centroid",
    "linear": "linear softmax",
    "article": "article CNN",
    "corrected": "corrected CNN",
}
#: the landmark models drawn beside the course's
LANDMARKS = ("LeNet-5", "AlexNet", "ResNet-1202 (CIFAR-10)", "BERT-Large", "GPT-3", "Chinchilla", "Llama 3.1 405B")


_w = functools.partial(in_lang, topic="faq")  # a term of these pages, in a language


def model_name(key: str, lang: str) -> str:
    """A model of the comparison by name: a key of :data:`MODEL_NAMES`, or ``width:<w>`` for the sweep's CNNs."""
    if key.startswith("width:"):
        return _w("CNN, width {width}", lang).format(width=f"{float(key.removeprefix('width:')):g}")
    return _w(MODEL_NAMES[key], lang)


def comparison(
    own: list[dict], sweep: pd.DataFrame | None, corrected_acc: float, corrected_params: int
) -> pd.DataFrame:
    """The models compared, by key: kind, parameters, training FLOPs, test accuracy, source (a chapter id or "")."""
    rows = [{"source": "", **row} for row in own]
    fields = ("key", "kind", "parameters", "training_flops", "test_accuracy", "source")
    for r in [] if sweep is None else sweep[sweep.train_size == sweep.train_size.max()].itertuples():
        values = (f"width:{r.width:g}", "deep", r.params, r.train_flops, 1 - r.test_error, "trends_challenges")
        rows.append(dict(zip(fields, values)))
    if course.finite(corrected_acc):
        rows.append(dict(zip(fields, ("corrected", "deep", corrected_params, np.nan, corrected_acc, "cifar10_cnn"))))
    return pd.DataFrame(rows).set_index("key")


def comparison_table(models: pd.DataFrame, lang: str) -> pd.DataFrame:
    columns = {
        _w("kind", lang): [_w(k, lang) for k in models.kind],
        _w("parameters", lang): [f"{p:,.0f}" for p in models.parameters],
        _w("training FLOPs", lang): [sci(f) if course.finite(f) else "—" for f in models.training_flops],
        _w("test accuracy", lang): [course.pct(a) for a in models.test_accuracy],
        _w("measured in", lang): [course.link(s, lang) if s else _w("this page", lang) for s in models.source],
    }
    return pd.DataFrame(columns, index=[model_name(k, lang) for k in models.index]).rename_axis(_w("model", lang))


def size_and_accuracy(models: pd.DataFrame) -> dict:
    """How parameter count and test accuracy go together: the rank correlation and a sentence in each language."""
    ranked = models.dropna(subset=["parameters", "test_accuracy"])
    rho = float(ranked.parameters.rank().corr(ranked.test_accuracy.rank())) if len(ranked) > 1 else math.nan
    best, largest = ranked.test_accuracy.idxmax(), ranked.parameters.idxmax()
    size_best, size_top = int(ranked.parameters[best]), int(ranked.parameters.max())
    words = "the most accurate model, the {best}, has {size} parameters, fewer than the largest, the {top} ({top_size})"
    if size_best == size_top:
        words = "the most accurate model, the {best}, is also among the largest ({size} parameters)"
    names = {key: {lang: model_name(k, lang) for lang in course.LANGS} for key, k in (("best", best), ("top", largest))}
    said = sentence(words, "faq", size=f"{size_best:,}", top_size=f"{size_top:,}", **names)
    return {"rho": rho, "n": len(ranked)} | said


def plot_size_accuracy(models: pd.DataFrame, landmarks: pd.DataFrame, lang: str = "en"):
    """Accuracy against parameters of the course's models, and their sizes beside ``landmarks`` (model, parameters)."""
    from helpers.plots import plt  # pyplot in the book's figure style

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    where = dict(textcoords="offset points", xytext=(4, -3), fontsize=7)
    for kind, marker in (("traditional", "s"), ("deep", "o")):
        part = models[models.kind == kind]
        left.scatter(part.parameters, part.test_accuracy, marker=marker, label=_w(kind, lang))
        for key, r in part.iterrows():
            left.annotate(model_name(key, lang), (r.parameters, r.test_accuracy), **where)
    left.set(xscale="log", xlabel=_w("parameters", lang), ylabel=_w("CIFAR-10 test accuracy", lang))
    left.legend(fontsize=8)
    ours = pd.Series(models.parameters.values, index=[model_name(k, lang) for k in models.index])
    bars = pd.concat([ours, landmarks.set_index("model").parameters]).sort_values()
    right.barh(bars.index, bars.values, color=["C1" if n in ours.index else "C0" for n in bars.index])
    right.set(xscale="log", xlabel=_w("parameters (log scale)", lang))
    right.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def backend_status(status: str, lang: str) -> str:
    """A timing's status in words: timed, not installed, failed, timed out."""
    if status.startswith("timed out"):
        return _w("timed out", lang)
    return _w({"ok": "timed", "not installed": "not installed"}.get(status, "failed"), lang)


def backends_table(timings: pd.DataFrame, lang: str) -> pd.DataFrame:
    """One row per backend: status, version, start-up time and images per second (training, prediction)."""

    def column(name, fmt):
        return [fmt(v) if course.finite(v) else "—" for v in timings.get(name, pd.Series(np.nan, index=timings.index))]

    columns = {
        _w("status", lang): [backend_status(s, lang) for s in timings.status],
        _w("version", lang): [v if isinstance(v, str) else "—" for v in timings.get("version", [None] * len(timings))],
        _w("build and compile", lang): column("startup_s", lambda s: pick(lang, f"{s:.1f} s", f"{s:.1f} 秒")),
        _w("training, images/s", lang): column("train_images_per_s", lambda v: f"{v:,.0f}"),
        _w("prediction, images/s", lang): column("predict_images_per_s", lambda v: f"{v:,.0f}"),
    }
    return pd.DataFrame(columns, index=timings.index).rename_axis(_w("backend", lang))


def backends_words(timings: pd.DataFrame) -> dict:
    """The timed and untimed backends and the fastest, as glued words and numbers."""
    ok, untimed = timings[timings.status == "ok"], timings.status[timings.status != "ok"]
    out = {}
    for lang in course.LANGS:
        missing = [pick(lang, f"{b} ({s})", f"{b}（{backend_status(s, 'zh')}）") for b, s in untimed.items()]
        out[f"backends_ok_{lang}"] = course.listing(list(ok.index), lang) or _w("none", lang)
        out[f"backends_missing_{lang}"] = course.listing(missing, lang) or _w("none", lang)
    fastest = (ok.train_images_per_s.idxmax(), f"{ok.train_images_per_s.max():,.0f}") if len(ok) else ("—", "—")
    return out | dict(zip(("fastest_backend", "fastest_ips"), fastest))


def plot_backends(timings: pd.DataFrame, lang: str = "en"):
    """Training images per second of each backend that was timed."""
    from helpers.plots import plt  # pyplot in the book's figure style

    ok = timings[timings.status == "ok"]
    fig, ax = plt.subplots(figsize=(6, 0.5 * max(len(ok), 1) + 1.2))
    ax.barh(list(ok.index), list(ok.train_images_per_s))
    ax.set_xlabel(_w("training images per second (article CNN)", lang))
    fig.tight_layout()
    return fig


def rung_change(row, lang: str) -> str:
    """What a rung changed, in ``lang`` (the Chinese from the vocabulary; an unknown rung keeps its id)."""
    rung = str(row["rung"])
    return pick(lang, str(row["change"]), in_lang(CHANGES[rung], "zh", "stronger_cnn") if rung in CHANGES else rung)


def read_ladder(path) -> pd.DataFrame:
    """The ladder the stronger-CNN chapter wrote, with each rung's gain over the one before (a share)."""
    return pd.read_csv(path).assign(gain=lambda ladder: ladder.test_accuracy.diff().fillna(0.0))


def ladder_table(ladder: pd.DataFrame, lang: str) -> pd.DataFrame:
    gains = ["—" if i == 0 else course.points(g, lang) for i, g in enumerate(ladder.gain)]
    columns = {
        _w("change", lang): [rung_change(r, lang) for _, r in ladder.iterrows()],
        _w("test accuracy", lang): [course.pct(a) for a in ladder.test_accuracy],
        _w("gain over the rung before", lang): gains,
        _w("epochs", lang): [f"{e:g}" for e in ladder.epochs],
    }
    return pd.DataFrame(columns, index=range(1, len(ladder) + 1)).rename_axis(_w("rung", lang))


def ladder_words(ladder: pd.DataFrame) -> dict:
    """The ladder in one sentence per language: its span and its largest single gain."""
    best = ladder.loc[ladder.gain.idxmax()]
    first, last = course.pct(ladder.test_accuracy.iloc[0]), course.pct(ladder.test_accuracy.iloc[-1])
    gain = {lang: course.points(best.gain, lang) for lang in course.LANGS}
    change = {lang: rung_change(best, lang) for lang in course.LANGS}
    words = "{n} rungs, from {first} to {last}; the largest single gain, {gain}, came from: {change}"
    return sentence(words, "faq", n=len(ladder), first=first, last=last, gain=gain, change=change)


def seconds_table(seconds: dict, lang: str) -> pd.DataFrame:
    """Each chapter's wall time in this run, by chapter title, in the book's order."""
    seconds = course.in_book_order(seconds)
    return pd.DataFrame(
        {_w("wall time", lang): [course.duration(s, lang) for s in seconds.values()]},
        index=[course.link(stem, lang) for stem in seconds],
    ).rename_axis(_w("chapter", lang))


def seeds_table(accs: dict, lang: str) -> pd.DataFrame:
    frame = pd.DataFrame({_w("test accuracy", lang): [course.pct(a) for a in accs.values()]}, index=list(accs))
    return frame.rename_axis(_w("seed", lang))


def rejection(exc: Exception) -> dict:
    """A :class:`~helpers.book.params.ParameterError` in words: the runner's message; in Chinese, each rule broken."""
    lines = []
    for name, given, rule in re.findall(r"parameter '([^']+)'(?: = ([^:]+))?: (.+)", str(exc)):
        words = rule.strip()
        match = re.fullmatch(r"Input should be ((?:greater|less) than(?: or equal to)?) (\S+)", words)
        words = f"应{in_lang(match[1], 'zh', 'faq')} {match[2]}" if match else f"不合法（{words}）"
        lines.append(f"参数 {name}" + (f" = {given.strip()}" if given else "") + f"：{words}")
    zh = "在任何计算开始之前就被拒绝：\n" + "\n".join(lines)
    return {"en": "rejected before any compute:\n" + str(exc), "zh": zh}
