"""Measuring decoding and serving: KV cache against recomputation, and a load benchmark of the schedulers.

The serving metrics are those of vLLM's serving benchmark (``benchmarks/benchmark_serving.py``),
times measured from when a request was sent: TTFT (to the first token), TPOT (``(E2EL - TTFT) /
(output tokens - 1)``), ITL (every gap between two tokens, pooled), E2EL (to the last token), and
throughputs over the whole run; mean, p50 and p99 of each. The load is closed-loop (vLLM's
``--max-concurrency``): ``concurrency`` streams each send a request, wait for its last token and send
the next; output lengths are fixed and ``<eos>`` ignored, so every scheduler produces the same tokens.
:func:`run_load` drives the engine in-process; :func:`run_load_http` sends the same workload to the
service as streamed completions: the difference is what HTTP costs.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

import httpx
import numpy as np
import orjson
import pandas as pd
from keras import ops

from helpers import timing
from helpers.lm import compiled
from helpers.lm.data import CharTokenizer, Poem
from helpers.lm.engine import BUCKET, SCHEDULERS, DecodeFunctions, Engine, Request, bucket_length
from helpers.lm.model import PoetLM
from helpers.lm.sampling import SamplingParams

PERCENTILES = (50, 99)
PROMPT_CHARS = (1, 12)  # a benchmark prompt is the opening of a held-out poem, this many characters


def decode_speed(
    model: PoetLM, new_tokens=(16, 32, 64, 128), repeats: int = 1, functions: DecodeFunctions | None = None
):
    """Tokens per second of greedy decoding with the KV cache (a prefill, n - 1 decode steps) and by recomputing
    the whole prefix n times, as nanoGPT's ``generate`` without a cache (padded to a multiple of BUCKET). A pandas
    table: new_tokens, cached_tok_s, recompute_tok_s, speedup (best of ``repeats``), same_tokens."""
    prompt = [CharTokenizer.BOS]
    max_len = model.config.max_len
    if len(prompt) + max(new_tokens) > max_len:
        raise ValueError(f"prompt ({len(prompt)}) + {max(new_tokens)} new tokens exceed max_len={max_len}")
    fns = functions if functions is not None and functions.slots == 1 else DecodeFunctions(model, 1)
    whole = compiled.compile_function(
        lambda tokens, last: model.logits(ops.take(model.hidden(tokens)[0], last, axis=0))
    )

    def cached(n: int) -> list[int]:
        cache = fns.new_cache()
        padded = np.zeros((1, bucket_length(len(prompt), max_len)), np.int32)
        padded[0, : len(prompt)] = prompt
        logits, cache = fns.prefill(padded, np.int32(len(prompt) - 1), np.int32(0), *cache)
        out = [int(np.argmax(compiled.to_numpy(logits)))]
        for t in range(n - 1):
            logits, cache = fns.decode(np.array([out[-1]], np.int32), np.array([len(prompt) + t], np.int32), *cache)
            out.append(int(np.argmax(compiled.to_numpy(logits)[0])))
        return out

    def recompute(n: int) -> list[int]:
        seq = list(prompt)
        for _ in range(n):
            padded = np.zeros((1, min(-(-len(seq) // BUCKET) * BUCKET, max_len)), np.int32)
            padded[0, : len(seq)] = seq
            seq.append(int(np.argmax(compiled.to_numpy(whole(padded, np.int32(len(seq) - 1))))))
        return seq[len(prompt) :]

    def tok_s(fn, n: int) -> float:
        """``n`` tokens over the shortest of ``repeats`` runs of ``fn(n)``."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(n)
            times.append(time.perf_counter() - start)
        return n / min(times)

    longest = max(new_tokens)
    same = cached(longest) == recompute(longest)  # warms every shape up, and checks they agree
    rows = []
    for n in new_tokens:
        c, r = tok_s(cached, n), tok_s(recompute, n)
        rows.append({"new_tokens": n, "cached_tok_s": c, "recompute_tok_s": r, "speedup": c / r, "same_tokens": same})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class WorkItem:
    """One benchmark request: a prompt (text) and exactly how many tokens to generate."""

    prompt: str
    output_tokens: int
    seed: int


def make_workload(poems: list[Poem], n: int, seed: int = 0, output_range: tuple = (16, 128)) -> list[WorkItem]:
    """``n`` requests: openings of held-out poems (1 to 12 characters) and output lengths drawn uniformly."""
    if not poems:
        raise ValueError("make_workload needs poems to take prompts from")
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        poem = poems[int(rng.integers(len(poems)))]
        k = int(rng.integers(PROMPT_CHARS[0], PROMPT_CHARS[1] + 1))
        output_tokens = int(rng.integers(output_range[0], output_range[1] + 1))
        items.append(WorkItem(poem.text[:k], output_tokens, seed * 100_003 + i))
    return items


def serving_metrics(requests: list[Request], duration: float) -> dict:
    """vLLM's serving-benchmark metrics of finished requests, timed from their arrival (seconds in, milliseconds out):
    TTFT, TPOT, ITL (every gap between two tokens, pooled), E2EL, throughputs; mean, p50 and p99."""
    done = [r for r in requests if r.finish_reason in ("stop", "length") and r.token_times]
    ttft = np.array([r.token_times[0] - r.arrival for r in done])
    e2el = np.array([r.token_times[-1] - r.arrival for r in done])
    tpot = np.array(
        [(r.token_times[-1] - r.token_times[0]) / (len(r.output_ids) - 1) for r in done if len(r.output_ids) > 1]
    )
    itl = np.concatenate([np.diff(r.token_times) for r in done] or [np.array([])])
    out_tokens = int(sum(len(r.output_ids) for r in done))
    in_tokens = int(sum(len(r.prompt_ids) for r in done))
    metrics = {
        "completed": len(done),
        "failed": len(requests) - len(done),
        "duration_s": duration,
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "request_throughput": len(done) / duration,
        "output_throughput": out_tokens / duration,
        "total_token_throughput": (in_tokens + out_tokens) / duration,
    }
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el)):
        ms = values * 1000.0
        metrics[f"mean_{name}_ms"] = float(ms.mean()) if ms.size else float("nan")
        for p in PERCENTILES:
            metrics[f"p{p}_{name}_ms"] = float(np.percentile(ms, p)) if ms.size else float("nan")
    return metrics


def run_load(engine: Engine, workload: list[WorkItem], concurrency: int) -> dict:
    """Closed-loop load on an engine driven in this thread; returns :func:`serving_metrics` plus the requests."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    pending = collections.deque(workload)
    finished: list[Request] = []
    in_flight = 0

    def on_event(request, text, done):
        nonlocal in_flight
        if done:
            in_flight -= 1
            finished.append(request)

    engine.timings.clear()
    engine.usage.clear()
    steps_before = engine.stats["steps"]
    start = time.perf_counter()
    while pending or in_flight:
        while pending and in_flight < concurrency:
            item = pending.popleft()
            params = SamplingParams(max_tokens=item.output_tokens, seed=item.seed, ignore_eos=True)  # temperature 1
            engine.submit(Request(engine.tokenizer.encode(item.prompt), params, on_event=on_event))
            in_flight += 1
        engine.step()
    duration = time.perf_counter() - start
    # where the time went, in seconds: decode, prefill, sample, the engine's other work, the load generator
    seconds = {k: engine.timings.get(k, 0.0) for k in ("decode", "prefill", "sample")}
    in_engine = engine.timings.get("step", 0.0)
    seconds |= {"engine_other": in_engine - sum(seconds.values()), "load_generator": duration - in_engine}
    steps = engine.stats["steps"] - steps_before
    return serving_metrics(finished, duration) | {"requests": finished, "steps": steps, "seconds": seconds}


def run_load_http(base_url: str, model: str, workload: list[WorkItem], concurrency: int) -> dict:
    """Closed-loop load over HTTP: :func:`serving_metrics` of streamed completions from the service at ``base_url``
    (a token's time: when the chunk holding its text arrived; output tokens: the reply's ``usage``). Runs its own
    event loop in a worker thread (a notebook's kernel already runs one)."""
    from helpers.serving.loadtest import run_in_thread

    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    url = f"{base_url.rstrip('/')}/v1/completions"

    async def one(client: httpx.AsyncClient, item: WorkItem) -> Request:
        body = {"model": model, "prompt": item.prompt, "max_tokens": item.output_tokens, "seed": item.seed}
        body |= {"temperature": 1.0, "top_k": 0, "ignore_eos": True}  # the engine's sampling in run_load
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        record = Request([], SamplingParams(max_tokens=item.output_tokens), arrival=time.perf_counter())
        async with client.stream(
            "POST", url, content=orjson.dumps(body), headers={"content-type": "application/json"}
        ) as reply:
            if reply.status_code != 200:
                await reply.aread()
                record.finish_reason = f"http {reply.status_code}"
                return record
            async for line in reply.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = orjson.loads(line[6:])
                if event["choices"]:
                    if event["choices"][0]["text"]:
                        record.token_times.append(time.perf_counter())
                    record.finish_reason = event["choices"][0]["finish_reason"] or record.finish_reason
                if usage := event.get("usage"):
                    record.prompt_ids = [0] * usage["prompt_tokens"]
                    record.output_ids = [0] * usage["completion_tokens"]
        return record

    async def main() -> tuple[list[Request], float]:
        pending = collections.deque(workload)
        done: list[Request] = []
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=300.0, limits=limits) as client:

            async def stream():
                while pending:
                    done.append(await one(client, pending.popleft()))

            start = time.perf_counter()
            await asyncio.gather(*(stream() for _ in range(concurrency)))
            return done, time.perf_counter() - start

    requests, duration = run_in_thread(main(), "lm-load-generator")
    return serving_metrics(requests, duration) | {"requests": requests}


def scheduler_table(
    model: PoetLM,
    tokenizer: CharTokenizer,
    poems: list[Poem],
    concurrencies=(1, 8, 32, 64),
    requests_per_stream: int = 4,
    min_requests: int = 32,
    output_range: tuple[int, int] = (16, 128),
    seed: int = 0,
    functions: dict | None = None,
):
    """The load benchmark: every scheduler at every concurrency C (C slots, ``single`` one), one row each; each
    level sends ``max(min_requests, requests_per_stream * C)`` requests drawn with the same seed. ``functions``
    (slots -> :class:`DecodeFunctions`) reuses compiled functions and receives the new ones."""
    rows = []
    functions = {} if functions is None else functions
    for c in concurrencies:
        workload = make_workload(poems, max(min_requests, requests_per_stream * c), seed, output_range)
        for name in SCHEDULERS:
            slots = 1 if name == "single" else c
            if slots not in functions:
                functions[slots] = DecodeFunctions(model, slots)
            engine = Engine(model, tokenizer, slots=slots, scheduler=name, functions=functions[slots])
            engine.fns.warm_up({bucket_length(len(tokenizer.encode(w.prompt)), model.config.max_len) for w in workload})
            run_load(engine, make_workload(poems, min(slots, 4), seed + 1, (2, 2)), slots)  # warm-up
            m = run_load(engine, workload, c)
            m.pop("requests")
            rows.append({"scheduler": name, "concurrency": c, "slots": slots, **m})
    return pd.DataFrame(rows)


def window_length(n: int, max_len: int) -> int:
    """The cache positions a windowed step reads when the furthest slot is at ``n - 1``: a multiple of an
    eighth of the context (a handful of compiled shapes), at most ``max_len``."""
    grain = max(32, 16 * -(-max_len // 128))  # an eighth of max_len, rounded up to a multiple of 16
    return min(max_len, -(-max(n, 1) // grain) * grain)


class StepVariant(DecodeFunctions):
    """A decode step the engine does not take, for :func:`step_times`. ``in_place=False``: the cache written
    functionally, a copy every step (nothing donated); ``windowed``: reads :func:`window_length` positions only."""

    def __init__(self, model: PoetLM, slots: int, windowed: bool = False, in_place: bool = True):
        self.copies_cache, self.windowed = not in_place, windowed
        super().__init__(model, slots)

    def _decode_function(self):
        if not self.windowed:
            return super()._decode_function()
        step = lambda tokens, positions, window, cache: self.model.decode(tokens, positions, list(cache), window)
        return self._compile(step, 1, static_argnums=(2,))

    def decode(self, tokens, positions, *cache):
        if not self.windowed:
            return super().decode(tokens, positions, *cache)
        window = window_length(int(np.max(positions)) + 1, self.config.max_len)
        return self._decode_with((tokens, positions), cache, window)


#: decode steps for :func:`step_times` (:class:`StepVariant` options; none: the engine's own)
STEP_VARIANTS = {"copied": {"in_place": False}, "in_place": {}, "in_place_window": {"windowed": True}}


def step_ms(fns: DecodeFunctions, seconds: float = 0.5) -> float:
    """Median milliseconds of one decode step, every row at half the context (logits back on the host)."""
    state = {"cache": fns.new_cache()}
    tokens, positions = np.zeros(fns.slots, np.int32), np.full(fns.slots, fns.config.max_len // 2, np.int32)

    def step(_):
        logits, state["cache"] = fns.decode(tokens, positions, *state["cache"])
        compiled.to_numpy(logits)

    return timing.median_ms(step, None, seconds=seconds)


def step_times(model: PoetLM, slot_counts=(1, 32), functions: dict | None = None):
    """:func:`step_ms` per slot count and variant; ``functions`` as in :func:`scheduler_table` (for the engine's own)."""
    functions = {} if functions is None else functions
    rows = []
    for slots in slot_counts:
        for name, kwargs in STEP_VARIANTS.items():
            if kwargs:
                fns = StepVariant(model, slots, **kwargs)
            else:  # the engine's own step
                fns = functions.setdefault(slots, DecodeFunctions(model, slots))
            ms = step_ms(fns)
            rows.append({"slots": slots, "variant": name, "ms_per_step": ms, "ms_per_token": ms / slots})
    return pd.DataFrame(rows)


def batching_gain(
    model: PoetLM,
    tokenizer: CharTokenizer,
    poems: list[Poem],
    concurrency: int,
    repeats: int = 3,
    requests_per_stream: int = 4,
    min_requests: int = 32,
    output_range: tuple[int, int] = (16, 128),
    seed: int = 0,
    functions: dict | None = None,
):
    """Continuous batching against one request at a time at ``concurrency`` streams, one row per turn. The engines
    take turns on one workload, the first alternating, and the throughput ratio is read within each turn, so that a
    slow spell of a shared machine touches both terms."""
    functions = {} if functions is None else functions
    workload = make_workload(poems, max(min_requests, requests_per_stream * concurrency), seed, output_range)
    buckets = {bucket_length(len(tokenizer.encode(w.prompt)), model.config.max_len) for w in workload}
    engines = (("single", 1), ("continuous", concurrency))
    rows = []
    for turn in range(repeats):
        order = engines[turn % 2 :] + engines[: turn % 2]  # alternating: neither always runs on a warmer machine
        row = {"turn": turn + 1, "first": order[0][0]}
        for name, slots in order:
            if slots not in functions:
                functions[slots] = DecodeFunctions(model, slots)
                functions[slots].warm_up(buckets)
            engine = Engine(model, tokenizer, slots=slots, scheduler=name, functions=functions[slots])
            m = run_load(engine, workload, concurrency)
            row |= {name: m["output_throughput"], f"{name}_steps": m["steps"], f"{name}_tokens": m["output_tokens"]}
            row |= {f"{name}_{part}_s": seconds for part, seconds in m["seconds"].items()}
        row["ratio"] = row["continuous"] / row["single"]
        rows.append(row)
    return pd.DataFrame(rows)


def where_time_goes(turns):
    """From :func:`batching_gain`'s turns: ms per step and per output token of each part (medians), per engine."""
    parts = ("decode", "prefill", "sample", "engine_other", "load_generator")
    rows = []
    for name in ("single", "continuous"):
        steps, tokens = turns[f"{name}_steps"], turns[f"{name}_tokens"]
        row = {"engine": name, "tokens_per_step": float((tokens / steps).median())}
        for part in parts:
            for per, count in (("step", steps), ("token", tokens)):
                row[f"{part}_ms_per_{per}"] = float((turns[f"{name}_{part}_s"] / count).median() * 1000)
        for per in ("step", "token"):
            row[f"total_ms_per_{per}"] = sum(row[f"{part}_ms_per_{per}"] for part in parts)
        rows.append(row)
    return pd.DataFrame(rows).set_index("engine")
