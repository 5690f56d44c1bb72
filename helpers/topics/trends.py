"""The trends-and-challenges chapter's bookkeeping: its glued values and its tables, in each language."""

from __future__ import annotations

import functools
import math

import pandas as pd

from helpers import artifacts
from helpers.topics import compute_cost, course, scaling
from helpers.topics.large_models import sci
from helpers.words import glue, glue_values, in_lang

#: published exponents, for the comparison table: (Kaplan et al. 2020, Hoffmann et al. 2022) per axis
PUBLISHED = {"params": ("0.076", "0.34"), "train_size": ("0.095", "0.28"), "train_flops": ("0.050", "—")}


_w = functools.partial(in_lang, topic="trends")  # a term of these pages, in a language


def glue_sweep(sweep: pd.DataFrame, fits: dict, widths, train_sizes, n_test: int) -> dict:
    """Glue what the prose says about the sweep and its fits (the conclusion reads some of them); return the
    verdict (what to add next) in each language."""
    glue_values(widths_text=", ".join(f"{w:g}" for w in widths), sizes_text=", ".join(f"{n:,}" for n in train_sizes))
    glue_values(sweep_epochs=int(sweep.epochs.iloc[0]), n_test=f"{n_test:,}", sweep_runs=len(sweep))
    for column, (symbol, _) in scaling.AXES.items():
        fit = fits.get(column)
        if fit is None:
            glue_values(**{f"alpha_{symbol}": "—", f"E_{symbol}": "—"})
        else:  # fit_*: "E A α" for the conclusion
            glue_values(**{f"alpha_{symbol}": f"{fit.exponent:.2f}", f"E_{symbol}": f"{fit.irreducible:.2f}"})
            glue_values(**{f"fit_{symbol}": f"{fit.irreducible!r} {fit.scale!r} {fit.exponent!r}"})
    best = sweep.loc[sweep.test_error.idxmin()]
    best_params, best_size = f"{int(best.params):,}", f"{int(best.train_size):,}"
    glue_values(best_error=f"{best.test_error:.1%}", best_params=best_params, best_size=best_size)
    params, data = sweep.params, sweep.train_size
    bend_params = scaling.describe_bend(fits["params"], params.min(), params.max(), "parameters")
    bend_data = scaling.describe_bend(fits["train_size"], data.min(), data.max(), "training images")
    advice = scaling.verdict(bend_params["where"], bend_data["where"])
    for name, words in (("bend_params", bend_params), ("bend_data", bend_data), ("verdict", advice)):
        glue(name, words["en"], words["zh"])
    return advice


def fit_table(fits: dict, lang: str) -> pd.DataFrame:
    """The three fits of ``err = E + A·x^-α`` (:func:`helpers.topics.scaling.fit_sweep`), one row each."""
    rows = {}
    for column, (symbol, axis) in scaling.AXES.items():
        fit = fits.get(column)
        name = f"{_w(axis, lang)} {symbol}"
        if fit is None:
            rows[name] = [_w("too few points, or the error does not fall", lang)] + ["—"] * 5
            continue
        bend = sci(fit.bend, 2) if math.isfinite(fit.bend) else _w("none (E = 0)", lang)
        rows[name] = [
            f"{fit.exponent:.3f}",
            f"{fit.irreducible:.1%}",
            f"{fit.scale:.3g}",
            bend,
            f"{fit.r2:.3f}",
            str(fit.n),
        ]
    columns = ["exponent α", "floor E (error)", "scale A", "bend (where A·x^-α = E)", "R² (log-log)", "points"]
    columns = [_w(c, lang) for c in columns]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis(_w("test error against", lang))


def error_table(sweep: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The measured test errors: one row per training-set size, one column per network."""
    frame = sweep.pivot(index="train_size", columns="params", values="test_error").map(lambda e: f"{e:.1%}")
    frame.columns = [_w("{n} parameters", lang).format(n=f"{p:,}") for p in frame.columns]
    frame.index = pd.Index([f"{n:,}" for n in frame.index], name=_w("training images", lang))
    return frame


def published_table(fits: dict, lang: str) -> pd.DataFrame:
    """This chapter's exponents beside the published ones (different tasks, losses and protocols)."""
    rows = {}
    for column, (symbol, axis) in scaling.AXES.items():
        fit = fits.get(column)
        ours = f"{fit.exponent:.2f}" if fit is not None else "—"
        rows[_w("α for {axis} {symbol}", lang).format(axis=_w(axis, lang), symbol=symbol)] = [ours, *PUBLISHED[column]]
    columns = [
        "this chapter (test error, CIFAR-10 CNN)",
        "Kaplan et al. 2020 (test loss, language)",
        "Hoffmann et al. 2022 (test loss, language)",
    ]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[_w(c, lang) for c in columns])


def glue_transfer(moved: dict, words: dict, per_class: int) -> None:
    glue_values(
        tr_source_n=f"{moved['source_images']:,}", tr_per_class=per_class, tr_target_n=f"{moved['target_images']:,}"
    )
    glue_values(tr_transfer=moved["transfer"], tr_scratch=moved["scratch"], tr_chance=moved["chance"])
    glue("tr_verdict", words["en"], words["zh"])


def transfer_table(moved: dict, lang: str) -> pd.DataFrame:
    rows = {
        _w("reused features (frozen convolutions, new head)", lang): moved["transfer"],
        _w("the same network from scratch", lang): moved["scratch"],
        _w("chance", lang): moved["chance"],
    }
    header = _w("accuracy among the vehicles ({n} test images)", lang).format(n=f"{moved['test_images']:,}")
    return pd.DataFrame({header: [course.pct(v) for v in rows.values()]}, index=list(rows))


def cifar_chapter_images() -> float:
    """Training images the CIFAR-10 chapter's four runs went through in this profile run (nan if it did not run)."""
    n_train, n_fit, article, demo, corrected = (
        artifacts.metric("cifar10_cnn", name)
        for name in ("n_train", "n_fit", "article_epochs", "demo_epochs", "corrected_epochs_run")
    )
    return n_train * article + n_fit * (article + demo + corrected)


def flops_table(course_flops: dict, lang: str) -> pd.DataFrame:
    """Training FLOPs of the course's runs: ``{key: flops}`` with keys "sweep" and "cifar10_cnn"."""
    names = {
        "sweep": _w("scaling sweep (this chapter)", lang),
        "cifar10_cnn": _w("{chapter}: its four training runs", lang).format(chapter=course.title("cifar10_cnn", lang)),
    }
    header = _w("training FLOPs", lang)
    return pd.DataFrame({header: [sci(v) for v in course_flops.values()]}, index=[names[k] for k in course_flops])


def cost_table(seconds: dict, watts: float, lang: str) -> pd.DataFrame:
    """Wall time and energy at the assumed power: ``seconds`` by chapter id ("sweep": this chapter's sweep)."""
    seconds = course.in_book_order(seconds)
    index = [_w("scaling sweep (this chapter)", lang) if k == "sweep" else course.title(k, lang) for k in seconds]
    wh = [f"{compute_cost.energy_kwh(s, watts) * 1000:.2f}" for s in seconds.values()]
    energy = _w("energy at an assumed {watts} W", lang).format(watts=f"{watts:g}")
    columns = {
        _w("wall time", lang): [course.duration(s, lang) for s in seconds.values()],
        energy: [_w("{e} Wh", lang).format(e=e) for e in wh],
    }
    return pd.DataFrame(columns, index=index)


def large_model_costs(
    landmarks: pd.DataFrame, peak_tflops: float, utilization: float, watts: float, pue: float
) -> pd.DataFrame:
    """6ND FLOPs, accelerator-hours and energy of every dense model trained on a known number of tokens."""
    dense = landmarks[landmarks.training_data.notna() & (landmarks.data_unit == "tokens")]
    dense = dense[dense.architecture != "mixture of experts"]
    rows = [
        dict(model=r.model, parameters=r.parameters, tokens=r.training_data)
        | compute_cost.large_model_cost(r.parameters, r.training_data, peak_tflops * 1e12, utilization, watts, pue)
        for r in dense.itertuples()
    ]
    return pd.DataFrame(rows).set_index("model")


def large_model_table(large: pd.DataFrame, lang: str) -> pd.DataFrame:
    columns = {
        _w("parameters", lang): large.parameters.map(sci),
        _w("training tokens", lang): large.tokens.map(sci),
        _w("training FLOPs (6ND)", lang): large.flops.map(sci),
        _w("accelerator-years", lang): large.accelerator_hours.map(lambda h: f"{h / 8766:,.1f}"),
        _w("energy", lang): large.energy_mwh.map(lambda e: _w("{e} MWh", lang).format(e=f"{e:,.0f}")),
    }
    return pd.DataFrame(columns).rename_axis(_w("model", lang))


def rounds_table(skewed: list, iid: list, central: list, lang: str) -> pd.DataFrame:
    """Test accuracy after each round (FedAvg) and after each pass (central training)."""
    n = max(len(skewed), len(iid), len(central))
    names = ("FedAvg, skewed shards", "FedAvg, IID shards", "central training")
    columns = {  # a curve shorter than the longest ends in '—'
        _w(name, lang): [course.pct(v) for v in values] + ["—"] * (n - len(values))
        for name, values in zip(names, (skewed, iid, central))
    }
    return pd.DataFrame(columns, index=range(1, n + 1)).rename_axis(_w("round (pass)", lang))


def explanation_titles(true, predicted, confidence, class_names: dict) -> dict:
    """Column titles "true→predicted" and the confidence, in each language (``class_names[lang]``)."""
    return {
        lang: [f"{names[t]}→{names[p]}\n{c:.2f}" for t, p, c in zip(true, predicted, confidence)]
        for lang, names in class_names.items()
    }


def centre_table(sal_right, sal_wrong, cam_right, cam_wrong, lang: str) -> pd.DataFrame:
    columns = {
        _w("saliency in the centre", lang): [course.pct(sal_right, 0), course.pct(sal_wrong, 0)],
        _w("Grad-CAM in the centre", lang): [course.pct(cam_right, 0), course.pct(cam_wrong, 0)],
    }
    return pd.DataFrame(columns, index=[_w("confident right answers", lang), _w("confident wrong answers", lang)])
