"""The conclusion's bookkeeping: every chapter's headline results, read from the same run, in words."""

from __future__ import annotations

import functools
import math

import pandas as pd

from helpers import artifacts, headline
from helpers.topics import course, scaling
from helpers.topics.large_models import sci
from helpers.words import both, in_lang, pick, sentence

#: every value the conclusion reads from another chapter by name (its headlines are read whatever
#: their names); a test fails when the ci run lacks one of them
READS: dict[str, list[str]] = {
    "cifar10_cnn": ["article_test_acc", "corrected_test_acc"],
    "stronger_cnn": ["final_acc"],
    "serving": ["served_acc", "article_ratio_b64", "top_clients"],
    "language_model": ["params_total", "test_ppl", "headline_test_ppl"],
    "llm_serving": ["gain", "streams"],
    "distributed_serving": [
        *("ray2_vs_hand", "ray_keeps", "o_ms", "fair_en", "fair_zh", "lost", "failed", "failover_requests"),
    ],
    "trends_challenges": [
        *("alpha_N", "fit_N", "verdict_en", "verdict_zh", "gpt3_vs_sweep", "fed_gap_pp"),
        *("central_acc", "fed_iid_acc", "fed_noniid_acc", "central_acc_raw", "fed_iid_acc_raw", "fed_noniid_acc_raw"),
    ],
    "faq": ["linear_acc", "seed_range_pp"],
}


_w = functools.partial(in_lang, topic="conclusion")  # a term of these pages, in a language


def read(raw) -> float | str:
    """A glued value (its plain-text repr in ``summary.json``) as a number where it is one:
    ``"0.734"`` -> 0.734, ``"'73.4%'"`` -> 0.734, ``"'1,234'"`` -> 1234.0; other text as text."""
    value = artifacts.literal(raw)
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


def glued(stem: str, name: str):
    """One value ``stem`` glued in this run, read with :func:`read` (None when missing); the name must
    be listed in :data:`READS`, so that what this page reads from other chapters is listed in one place."""
    if name not in READS.get(stem, ()):
        raise KeyError(f"the conclusion reads {stem}'s {name!r}: list it in conclusion.READS")
    raw = artifacts.metrics(stem).get(name)
    return None if raw is None else read(raw)


def value(stem: str, name: str, unit: str, lang: str = "en") -> str:
    """A number another chapter glued, as it reads in ``lang`` ('—' when missing)."""
    return shown(glued(stem, name), unit, lang)


def said(stem: str, name: str) -> headline.Words:
    """Words another chapter glued as ``name_en`` and ``name_zh``."""
    en, zh = glued(stem, f"{name}_en"), glued(stem, f"{name}_zh")
    return (en, zh) if isinstance(en, str) and isinstance(zh, str) else both("(not run in this run)", "conclusion")


def text(stem: str, name: str, missing: str = "") -> str:
    """A value another chapter glued, as the string it showed (``missing`` when absent)."""
    glued(stem, name)  # listed in READS
    return artifacts.text(stem, name, missing=missing)


def meaning(stem: str, name: str) -> headline.Words | None:
    """What another chapter's headline ``name`` means, in its words (None when missing)."""
    raw = glued(stem, headline.PREFIX + name)
    return headline.parse(raw)["meaning"] if raw is not None else None


#: how a number reads in each unit of :data:`helpers.headline.UNITS` ("words" and text are shown as they are)
UNIT_FORMATS = {
    "pct": lambda v, lang: course.pct(v),
    "times": lambda v, lang: course.times(v, lang, 2 if v < 10 else 1),
    "months": lambda v, lang: _w("{n} months", lang).format(n=f"{v:.1f}"),
    "minutes": lambda v, lang: course.duration(v * 60, lang),
    "points": lambda v, lang: _w("{n} percentage points", lang).format(n=f"{v:.1f}"),
    "ratio": lambda v, lang: f"{v:.2f}",
    "one": lambda v, lang: f"{v:.1f}",
    "whole": lambda v, lang: f"{v:,.0f}",
}


def shown(value, unit: str, lang: str) -> str:
    """``value`` read in ``unit``, rounded for reading, in ``lang`` ('—' when it is missing)."""
    if unit == "words":
        return pick(lang, *value)
    if isinstance(value, str) or not course.finite(value):
        return (value or "—") if isinstance(value, str) else "—"
    if unit not in UNIT_FORMATS:
        raise ValueError(f"unknown unit {unit!r}")
    return UNIT_FORMATS[unit](value, lang)


def results(stems: list[str], records: dict) -> list[dict]:
    """One row per headline each chapter in ``stems`` glued: what it measures, its value and what it
    means, in each language; a chapter that did not run (or failed, or glued no headline) has one row saying so."""
    rows = []
    for stem in stems:
        record = records.get(stem) or {}
        ok = record.get("status") == "ok"
        found = headline.of(record.get("metrics", {})) if ok else {}
        for name, h in found.items():
            row = {"chapter": stem, "name": name}
            for i, lang in enumerate(course.LANGS):
                row[f"measure_{lang}"] = h["measure"][i]
                row[f"value_{lang}"] = shown(h["value"], h["unit"], lang)
                row[f"meaning_{lang}"] = h["meaning"][i] if h["meaning"] else "—"
            rows.append(row)
        if not found:
            row = {"chapter": stem}
            for lang in course.LANGS:
                status = _w("{status} in this run", lang).format(status=course.status(record, lang))
                meaning = _w("no headline glued", lang) if ok else status
                row |= {f"measure_{lang}": "—", f"value_{lang}": "—", f"meaning_{lang}": meaning}
            rows.append(row)
    return rows


def results_table(rows: list[dict], lang: str) -> pd.DataFrame:
    """The course's results as a reader reads them: chapter (linked), measure, value, what it means."""
    index = pd.MultiIndex.from_tuples(
        [(course.link(r["chapter"], lang), r[f"measure_{lang}"]) for r in rows],
        names=[_w("chapter", lang), _w("measured", lang)],
    )
    columns = {
        _w("value", lang): [r[f"value_{lang}"] for r in rows],
        _w("what it means", lang): [r[f"meaning_{lang}"] for r in rows],
    }
    return pd.DataFrame(columns, index=index)


def runs_table(stems: list[str], records: dict, lang: str) -> pd.DataFrame:
    """Each chapter's status and wall time in this run."""
    runs = [records.get(s) or {} for s in stems]
    times = [course.duration(r.get("seconds", math.nan), lang) if r.get("status") == "ok" else "—" for r in runs]
    frame = pd.DataFrame({_w("status", lang): [course.status(r, lang) for r in runs], _w("wall time", lang): times})
    return frame.set_axis([course.link(s, lang) for s in stems]).rename_axis(_w("chapter", lang))


def missing_words(stems: list[str], records: dict) -> dict:
    """What did not run, or failed, in this run, as a sentence in each language."""
    failed = [s for s in stems if (records.get(s) or {}).get("status") == "failed"]
    absent = [s for s in stems if (records.get(s) or {}).get("status") not in ("ok", "failed")]
    out = {}
    for lang in course.LANGS:
        parts = [
            _w(label, lang) + course.listing([course.title(s, lang) for s in stems], lang)
            for label, stems in (("not run: ", absent), ("failed: ", failed))
            if stems
        ]
        separator, stop = pick(lang, ("; ", "."), ("；", "。"))
        out[lang] = separator.join(parts) + stop if parts else _w("Every chapter ran.", lang)
    return out


#: (chapter, glued name, label: a term of the vocabulary's ``conclusion`` section)
ACCURACIES = (
    ("faq", "linear_acc", "linear classifier (FAQ)"),
    ("cifar10_cnn", "article_test_acc", "the article's listing, run as printed"),
    ("cifar10_cnn", "corrected_test_acc", "corrected CNN"),
    ("stronger_cnn", "final_acc", "stronger CNN, final run"),
    ("serving", "served_acc", "CNN served over HTTP"),
    ("trends_challenges", "fed_noniid_acc", "FedAvg, skewed clients"),
    ("trends_challenges", "fed_iid_acc", "FedAvg, IID clients"),
    ("trends_challenges", "central_acc", "central training (FedAvg's baseline)"),
)


def accuracies() -> tuple[dict, list]:
    """The CIFAR-10 test accuracies of this run, by (English, Chinese) label, and the labels of those missing."""
    values = {both(label, "conclusion"): glued(stem, name) for stem, name, label in ACCURACIES}
    return {k: v for k, v in values.items() if course.finite(v)}, [k for k, v in values.items() if not course.finite(v)]


def plot_accuracies(measured: dict, lang: str = "en"):
    """Horizontal bars: each CIFAR-10 test accuracy of this run, labelled in ``lang``."""
    from helpers.plots import plt  # pyplot in the book's figure style

    labels = [pick(lang, *k) for k in measured]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(measured) + 1))
    ax.barh(labels, list(measured.values()))
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel=_w("CIFAR-10 test accuracy", lang))
    fig.tight_layout()
    return fig


def forecast(fit_text: str, sweep: pd.DataFrame | None, target: float) -> dict:
    """How wide the CNN would have to be for ``target`` test accuracy, from the trends chapter's fit
    of error against parameters (``fit_text``: "E A alpha" as glued; "" when missing) and its sweep."""
    if not fit_text:
        return sentence("no forecast: the trends chapter did not run in this run, or its fit failed", "conclusion")
    floor, scale, alpha = (float(x) for x in fit_text.split())
    need = scaling.PowerLawFit(alpha, scale, floor, math.nan, 0).x_for_error(1 - target)
    if math.isinf(need):
        words = "out of reach by width alone: the fitted floor is {floor} error ({accuracy} accuracy), so more data or "
        words += "epochs are needed"
        return sentence(words, "conclusion", floor=f"{floor:.1%}", accuracy=f"{1 - floor:.1%}")
    about = sci(need, 2)
    if sweep is None:
        return sentence("about {need} parameters (the sweep's table is missing, so no width)", "conclusion", need=about)
    widths = sweep.drop_duplicates("width")
    width = scaling.width_for_params(widths.width, widths.params, need)
    if not math.isfinite(width):
        return sentence("about {need} parameters, which no width of this network gives", "conclusion", need=about)
    widest = float(widths.width.max())
    if width > 8 * widest:
        words = "about {need} parameters, a width multiplier near {width}: far beyond the widest network swept "
        words += "({widest}), so the forecast is an extrapolation"
        return sentence(words, "conclusion", need=about, width=f"{width:,.0f}", widest=f"{widest:g}")
    words = "about {need} parameters, a width multiplier near {width}"
    return sentence(words, "conclusion", need=about, width=f"{width:.1f}")
