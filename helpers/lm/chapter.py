"""The language-model chapters' bookkeeping: tables and figures glued once per language (headers and labels
from the ``lm`` section of the vocabulary), number formats, published figures, the service's bad requests."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import numpy as np
import pandas as pd

from helpers.book.bilingual import LANGS
from helpers.topics.course import pct  # a share as a percentage: 0.7341 -> 73.4%
from helpers.topics.large_models import short  # noqa: F401 - parameters for reading: 12.6k, 3.16M, 1.2B
from helpers.words import glue_values, in_lang, pick

_w = partial(in_lang, topic="lm")  # a term of these pages in a language

#: scheduler names on the page
SCHEDULER_NAMES = {"single": "one at a time", "static": "static batches", "continuous": "continuous batching"}

#: published shapes of large models for the KV-cache arithmetic: name, layers, KV heads, head dim, context, bib key
LARGE_MODELS = (
    ("GPT-3 175B", 96, 96, 128, 2048, "brown2020language"),
    ("LLaMA-65B", 80, 64, 128, 2048, "touvron2023llama"),
    ("Llama 2 70B", 80, 8, 128, 4096, "touvron2023llama2"),
)

#: PagedAttention's published figures (Kwon et al., 2023): share of KV-cache memory earlier systems used for
#: tokens (their Figure 2), and vLLM's throughput gain at the same latency (abstract)
PAGED_USED = ("20.4%", "38.2%")
PAGED_GAIN = (2, 4)

#: published scaling exponents: Kaplan et al. (2020), L(N) = (N_c / N) ** alpha_N; Hoffmann et al. (2022),
#: approach 3, L = E + A / N**alpha + B / D**beta
KAPLAN_ALPHA_N = 0.076
CHINCHILLA = {"E": 1.69, "A": 406.4, "alpha": 0.34}


def glue_tables(name: str, make) -> None:
    """``make(lang)`` -> a table, glued as ``name_en`` and ``name_zh``."""
    glue_values(**{f"{name}_{lang}": make(lang) for lang in LANGS})


def glue_figures(name: str, draw) -> None:
    """``draw(lang)`` -> a figure, glued as ``name_en`` and ``name_zh`` (and closed)."""
    import matplotlib.pyplot as plt

    for lang in LANGS:
        fig = draw(lang)
        glue_values(**{f"{name}_{lang}": fig})
        plt.close(fig)


def count(n) -> str:
    return f"{int(round(n)):,}"


def fixed(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def size(n_bytes: float) -> str:
    """Bytes for reading: 8,192 B, 1.3 MB, 84 MB, 2.4 GB (decimal units)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{n_bytes:,.0f} B"


def _view(table: pd.DataFrame, columns: dict, lang: str, index: str | list[str]) -> pd.DataFrame:
    """``table``'s ``columns`` (name: term of the vocabulary) in that order, headers and index names in ``lang``."""
    names = [_w(i, lang) for i in ([index] if isinstance(index, str) else index)]
    return table[list(columns)].rename(columns={k: _w(v, lang) for k, v in columns.items()}).rename_axis(names)


def data_table(facts: dict, lm_facts: dict, lang: str) -> pd.DataFrame:
    """What the package holds, what cleaning removed, and what the model sees."""
    splits = f"{facts['train_poems']:,} / {facts['validation_poems']:,} / {facts['test_poems']:,}"
    rows = [
        ("Tang records in the package", facts["records"]),
        ("listed as doubtful (error/ folder)", facts["doubtful_listed"]),
        ("  of which dropped from the records", facts["doubtful_dropped"]),
        ("exact duplicates dropped", facts["duplicates_dropped"]),
        ("near-duplicates dropped", facts["near_duplicates_dropped"]),
        ("records without text dropped", facts["empty_dropped"]),
        ("poems kept", facts["poems"]),
        ("  training / validation / test", splits),
        ("characters in the kept poems", facts["characters"]),
        ("regulated (4 or 8 lines of 5 or 7)", pct(facts["regulated_share"])),
        ("regulated poems the model trains on", lm_facts["train_poems"]),
        ("training tokens (characters, punctuation, <eos>)", lm_facts["train_tokens"]),
        ("vocabulary (with 4 special tokens)", lm_facts["vocab_size"]),
    ]
    return pd.DataFrame(
        {_w("value", lang): [v if isinstance(v, str) else f"{v:,}" for _, v in rows]},
        index=pd.Index([_w(k, lang) for k, _ in rows], name=_w("data", lang)),
    )


#: the models of the cross-entropy table, in its order
MODEL_NAMES = {
    "unigram": "unigram (add-k)",
    "bigram_interpolated": "bigram (interpolated)",
    "kn_bigram": "Kneser–Ney bigram",
    "kn_trigram": "Kneser–Ney trigram",
    "transformer": "transformer (this chapter)",
}

BASELINE_COLUMNS = {
    "characters": "characters, nats",
    "ppl": "perplexity per character",
    "punctuation": "punctuation, nats",
    "eos": "end of poem (<eos>), nats",
    "all": "all tokens mixed, nats",
}


def baseline_table(scores: dict[str, dict], lang: str) -> pd.DataFrame:
    """Test cross-entropy by kind of target (:func:`helpers.lm.baselines.by_kind`), one row per model of ``scores``."""
    table = pd.DataFrame(list(scores.values()), index=[_w(MODEL_NAMES[k], lang) for k in scores])
    table["ppl"] = np.exp(table["characters"]).round().astype(int)
    return _view(table.round(3), BASELINE_COLUMNS, lang, "model")


DECODE_COLUMNS = {"cached_tok_s": "KV cache, tokens/s", "recompute_tok_s": "recompute, tokens/s", "speedup": "speed-up"}


def decode_table(speed: pd.DataFrame, lang: str) -> pd.DataFrame:
    table = speed.set_index("new_tokens").round({"cached_tok_s": 0, "recompute_tok_s": 0, "speedup": 2})
    return _view(table, DECODE_COLUMNS, lang, "new tokens")


STEP_NAMES = {
    "copied": "cache copied every step",
    "in_place": "written in place",
    "in_place_window": "in place, used window only",
}


def step_table(steps: pd.DataFrame, lang: str) -> pd.DataFrame:
    table = steps.pivot(index="variant", columns="slots", values="ms_per_step").loc[list(STEP_NAMES)]
    table.index = [_w(STEP_NAMES[v], lang) for v in table.index]
    table.columns = [pick(lang, f"{s} slot(s), ms/step", f"{s} 个槽位 毫秒/步") for s in table.columns]
    return table.round(2).rename_axis(_w("decode step", lang))


TIME_PARTS = {
    "tokens_per_step": "tokens per step",
    "decode_ms_per_step": "decode, ms/step",
    "prefill_ms_per_step": "prefill, ms/step",
    "sample_ms_per_step": "sampling, ms/step",
    "engine_other_ms_per_step": "engine's other work, ms/step",
    "load_generator_ms_per_step": "load generator, ms/step",
    "total_ms_per_step": "total, ms/step",
    "total_ms_per_token": "total, ms/token",
}


def time_view(parts: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Where each engine's time went (:func:`helpers.lm.bench.where_time_goes`), headers in the page's language."""
    view = parts.round(3).round({"tokens_per_step": 1}).rename(index=lambda name: _w(SCHEDULER_NAMES[name], lang))
    return _view(view, TIME_PARTS, lang, "engine")


#: the columns of :func:`helpers.lm.paged.compare`'s table
PAGED_COLUMNS = {
    "in_flight": "sequences in flight",
    "unused_share": "reserved cache unused",
    "preempted": "preemptions",
    "step_ms": "decode step, ms",
    "output_throughput": "output tok/s",
    "p99_ttft_ms": "TTFT p99 ms",
}


def paged_view(table: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Contiguous slots against blocks (:func:`helpers.lm.paged.compare`), one row per (streams, cache)."""
    caches = [
        _w("blocks of {n}", lang).format(n=b) if c == "paged" else _w("contiguous slots", lang)
        for c, b in zip(table["cache"], table["block"])
    ]
    view = table.assign(cache=caches, unused_share=[f"{x:.1%}" for x in table["unused_share"]])
    digits = {"in_flight": 1, "step_ms": 2, "output_throughput": 0, "p99_ttft_ms": 1}
    return _view(view.set_index(["streams", "cache"]).round(digits), PAGED_COLUMNS, lang, ["streams", "cache"])


#: the columns of :func:`helpers.lm.paged.prefix_compare`'s table
PREFIX_COLUMNS = {
    "prompt_tokens": "prompt tokens",
    "prefilled_tokens": "tokens prefilled",
    "prefill_ms": "prefill per request, ms",
    "mean_ttft_ms": "TTFT mean ms",
    "p99_ttft_ms": "TTFT p99 ms",
    "output_throughput": "output tok/s",
    "same_output": "same tokens as without",
}


def prefix_view(table: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Without and with prefix caching (:func:`helpers.lm.paged.prefix_compare`), one row each."""
    view = table.assign(prefix_caching=[_w("yes" if x else "no", lang) for x in table["prefix_caching"]])
    digits = {"prefill_ms": 2, "mean_ttft_ms": 1, "p99_ttft_ms": 1, "output_throughput": 0}
    return _view(view.set_index("prefix_caching").round(digits), PREFIX_COLUMNS, lang, "prefix caching")


#: vLLM's serving-benchmark metrics as the chapter shows them: output tok/s, then p50 and p99 of each latency
METRICS = {"output_throughput": "output tok/s"} | {
    f"p{q}_{key}_ms": f"{name} p{q} ms"
    for key, name in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2E"))
    for q in (50, 99)
}
METRIC_DIGITS = {k: 0 if k == "output_throughput" else 1 for k in METRICS}


def scheduler_view(table: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The load benchmark, one row per scheduler and number of streams, vLLM's metrics as columns."""
    view = table.assign(scheduler=[_w(SCHEDULER_NAMES[s], lang) for s in table["scheduler"]])
    view = view.set_index(["concurrency", "scheduler"]).round(METRIC_DIGITS)
    return _view(view, METRICS, lang, ["streams", "scheduler"])


def http_view(in_process: dict, over_http: dict, lang: str) -> pd.DataFrame:
    view = pd.DataFrame(
        [{m: v[m] for m in METRICS} for v in (in_process, over_http)],
        index=[_w("in-process engine", lang), _w("over HTTP (service)", lang)],
    )
    return _view(view.round(METRIC_DIGITS), METRICS, lang, "measured")


#: the KV-cache table's columns
KV_COLUMNS = {
    "layers": "layers",
    "kv_heads": "key/value heads",
    "head_dim": "head dimension",
    "token": "per token",
    "context": "context",
    "sequence": "per sequence",
}


def kv_view(ours: dict, config, large: list[dict], lang: str) -> pd.DataFrame:
    """KV-cache bytes per token and per sequence: this model (float32) and large models (16-bit)."""
    shape = (config.n_layers, config.n_heads, config.head_dim)
    rows = [(_w("this chapter's model (fp32)", lang), *shape, ours["per_token"], config.max_len, ours["per_sequence"])]
    shapes = {name: (layers, heads, dim) for name, layers, heads, dim, _, _ in LARGE_MODELS}
    rows += [
        (f"{m['model']} (fp16)", *shapes[m["model"]], m["per token"], m["context"], m["per sequence"]) for m in large
    ]
    table = pd.DataFrame(rows, columns=["model", *KV_COLUMNS]).set_index("model")
    table[["token", "sequence"]] = table[["token", "sequence"]].map(size)
    return _view(table, KV_COLUMNS, lang, "model")


SCALING_COLUMNS = {
    "n_layers": "layers",
    "params_non_embedding": "non-embedding params",
    "params_embedding": "embedding params",
    "tokens": "tokens",
    "flops": "6ND FLOPs",
    "val_loss": "val nats/token",
    "train_seconds": "training s",
}


def scaling_view(table: pd.DataFrame, lang: str) -> pd.DataFrame:
    view = table.assign(flops=[f"{f:.2e}" for f in table["flops"]]).round({"val_loss": 3, "train_seconds": 0})
    return _view(view.set_index("d_model"), SCALING_COLUMNS, lang, "width")


def _subplots(n: int, figsize: tuple[float, float]):
    """A figure of ``n`` axes side by side, in the book's style."""
    from helpers.plots import plt  # pyplot in the book's figure style

    return plt.subplots(1, n, figsize=figsize)


def plot_learning_curve(history: list[dict], baselines: dict[str, float], lang: str):
    """Training and validation loss (all tokens mixed) against tokens seen, the counting baselines' as horizontal lines."""
    fig, ax = _subplots(1, figsize=(6.4, 3.6))
    tokens = [h["tokens"] / 1e6 for h in history]
    ax.plot(tokens, [h["train_loss"] for h in history], "o-", ms=3, label=_w("training", lang))
    ax.plot(tokens, [h["val_loss"] for h in history], "s-", ms=3, label=_w("validation", lang))
    for (name, value), style in zip(baselines.items(), (":", "--", "-.")):
        ax.axhline(value, color="grey", ls=style, lw=1)
        ax.text(tokens[-1], value, f" {name}", va="bottom", ha="right", fontsize=8, color="dimgrey")
    ax.set(
        xlabel=_w("training tokens seen (millions)", lang), ylabel=_w("cross-entropy, all tokens (nats/token)", lang)
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_schedulers(table: pd.DataFrame, lang: str):
    """Output tokens per second and p99 time to first token against concurrent streams, per scheduler."""
    fig, (left, right) = _subplots(2, figsize=(8.4, 3.4))
    for name, part in table.groupby("scheduler", sort=False):
        label = _w(SCHEDULER_NAMES[name], lang)
        left.plot(part["concurrency"], part["output_throughput"], "o-", label=label)
        right.plot(part["concurrency"], part["p99_ttft_ms"], "o-", label=label)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(_w("concurrent streams", lang))
    left.set_ylabel(_w("output tokens per second", lang))
    right.set(yscale="log", ylabel=_w("p99 time to first token (ms)", lang))
    left.legend()
    fig.tight_layout()
    return fig


def plot_scaling(sizes: pd.DataFrame, fit, compute: pd.DataFrame, lang: str):
    """Validation loss against non-embedding parameters (with the fitted law) and against training compute."""
    fig, (left, right) = _subplots(2, figsize=(8.4, 3.4))
    n = sizes["params_non_embedding"].to_numpy(float)
    left.plot(n, sizes["val_loss"], "o", label=in_lang("measured", lang))
    if fit is not None:
        grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 100)
        law = f"$L = {fit.irreducible:.2f} + {fit.scale:.3g}/N^{{{fit.exponent:.3f}}}$"
        left.plot(grid, fit.predict(grid), "-", lw=1, label=law)
    left.set(
        xscale="log", xlabel=_w("non-embedding parameters N", lang), ylabel=_w("validation loss (nats/token)", lang)
    )
    left.legend(fontsize=8)
    right.plot(sizes["flops"], sizes["val_loss"], "o-", label=_w("sizes, same tokens", lang))
    width = int(compute["d_model"].iloc[0])
    more = pick(lang, f"width {width}, more steps", f"宽度 {width}，更多步数")
    right.plot(compute["flops"], compute["val_loss"], "s-", label=more)
    right.set(xscale="log", xlabel=_w("training compute 6ND (FLOPs)", lang))
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def bad_requests(url: str, max_len: int) -> list[tuple[str, str, str, bytes, int]]:
    """Requests the service at ``url`` must refuse: ``(case, method, url, body, expected status)``, as
    :func:`helpers.serving.loadtest.bad_requests` gives its own."""
    ok = {"model": "tang-poet", "prompt": "春風", "max_tokens": 8, "seed": 1}
    completions = url + "/v1/completions"

    def post(case, body, status, target=completions):
        return case, "POST", target, body if isinstance(body, bytes) else json.dumps(body).encode(), status

    return [
        post("malformed JSON", b"{not json", 400),
        post("unknown model", {**ok, "model": "gpt-4"}, 404),
        post("temperature 3", {**ok, "temperature": 3}, 400),
        post("two choices (n = 2)", {**ok, "n": 2}, 400),
        post("an unknown parameter", {**ok, "frobnicate": 1}, 400),
        post("empty prompt", {**ok, "prompt": ""}, 400),
        post("simplified characters", {**ok, "prompt": "春风"}, 400),
        post("prompt + max_tokens over the context", {**ok, "max_tokens": max_len}, 400),
        post("chat without messages", {"model": "tang-poet", "messages": []}, 400, url + "/v1/chat/completions"),
    ]


def send_bad_requests(url: str, max_len: int) -> list[dict]:
    """:func:`bad_requests` sent to ``url``, each followed by a good one (:func:`helpers.serving.loadtest.refusals`)."""
    from helpers.serving.loadtest import refusals

    good = json.dumps({"model": "tang-poet", "prompt": "春", "max_tokens": 4}).encode()
    return refusals(bad_requests(url, max_len), ("POST", url + "/v1/completions", good))


def burst(url: str, n: int, max_tokens: int = 40) -> list:
    """``n`` completions of ``max_tokens`` sent at once to the service at ``url``; their httpx replies."""
    body = {"model": "tang-poet", "prompt": "春", "max_tokens": max_tokens, "ignore_eos": True}
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: httpx.post(url + "/v1/completions", json=body, timeout=120), range(n)))


#: the refusal table's columns, each its own term but the message
REFUSAL_COLUMNS = {k: k for k in ("status", "expected", "param", "message", "next good request")}
REFUSAL_COLUMNS["message"] = "message (first 70 characters)"


def refusal_table(rows: list[dict], lang: str) -> pd.DataFrame:
    table = pd.DataFrame(rows).assign(
        case=[_w(r["case"], lang) for r in rows],
        param=[r["param"] or "" for r in rows],
        message=[r["message"][:70] for r in rows],
    )
    # the service's messages are in English: shown on the English page only
    columns = {k: v for k, v in REFUSAL_COLUMNS.items() if lang == "en" or k != "message"}
    return _view(table.set_index("case"), columns, lang, "request")
