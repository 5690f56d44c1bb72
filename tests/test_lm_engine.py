"""Tests for sampling, the engine's three schedulers, the KV cache and the load benchmark (toy model).

Nothing here asserts on a timing: the load-benchmark metrics are checked with a fake clock.
"""

from __future__ import annotations

import functools
import itertools
import os

import numpy as np
import pytest

from helpers import env

env.setup(os.environ.get("KERAS_BACKEND", "tensorflow"), 0)

import lm_toy as toy  # noqa: E402

from helpers.lm import bench, sampling  # noqa: E402
from helpers.lm.bench import StepVariant, window_length  # noqa: E402
from helpers.lm.compiled import to_numpy  # noqa: E402
from helpers.lm.data import CharTokenizer  # noqa: E402
from helpers.lm.engine import (  # noqa: E402
    ContextTooLong,
    DecodeFunctions,
    Engine,
    EngineFailed,
    QueueFull,
    Request,
    bucket_length,
    generate,
    kv_cache_bytes,
    kv_cache_waste,
    measured_cache_bytes,
)
from helpers.lm.paged import BLOCK, BlockPool, PagedEngine, PagedFunctions, block_hashes, usage_summary  # noqa: E402
from helpers.lm.sampling import InvalidParams, SamplingParams, StopMatcher, choose_tokens  # noqa: E402
from helpers.lm.train import load_model  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy-ckpt")
    toy.toy_checkpoint(directory, steps=40)
    model, tokenizer, _ = load_model(directory)
    return model, tokenizer


@pytest.fixture(scope="module")
def functions(trained):
    return {s: DecodeFunctions(trained[0], s) for s in (1, 4)}


def engine(trained, functions, scheduler="continuous", slots=4, **kwargs):
    model, tokenizer = trained
    return Engine(
        model,
        tokenizer,
        slots=slots,
        scheduler=scheduler,
        functions=functions[1 if scheduler == "single" else slots],
        **kwargs,
    )


# ---- sampling -------------------------------------------------------------------------------


@pytest.mark.unit
def test_sampling_rules():
    choose_tokens = functools.partial(sampling.choose_tokens, banned=())  # four plain tokens: none banned
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 3))
    rngs = lambda seed: [np.random.default_rng(seed) for _ in range(3)]  # noqa: E731
    greedy = [SamplingParams(temperature=0), SamplingParams(top_k=1), SamplingParams(top_p=0.4)]
    assert choose_tokens(logits, greedy, rngs(0)).tolist() == [0, 0, 0]
    draws = np.array(
        [choose_tokens(logits[:1], [SamplingParams(top_k=2)], [np.random.default_rng(s)])[0] for s in range(300)]
    )
    assert set(draws.tolist()) == {0, 1}
    draws = np.array(
        [choose_tokens(logits[:1], [SamplingParams(top_p=0.7)], [np.random.default_rng(s)])[0] for s in range(300)]
    )
    assert set(draws.tolist()) == {0, 1}  # 0.5 + 0.3 >= 0.7: the smallest such set
    draws = np.array(
        [choose_tokens(logits[:1], [SamplingParams()], [np.random.default_rng(s)])[0] for s in range(2000)]
    )
    assert np.bincount(draws, minlength=4) / 2000 == pytest.approx([0.5, 0.3, 0.15, 0.05], abs=0.04)


@pytest.mark.unit
def test_pad_bos_and_unk_are_never_drawn():
    """Even when the model puts nearly all its weight on them, greedy or sampled, whatever the filters."""
    logits = np.array([[9.0, 9.0, 0.0, 9.0, 1.0, 0.5]] * 4, dtype=np.float32)  # <pad>, <bos>, <eos>, <unk>, a, b
    for params in (SamplingParams(temperature=0), SamplingParams(top_k=2), SamplingParams(top_p=0.5)):
        draws = [choose_tokens(logits[:1], [params], [np.random.default_rng(s)])[0] for s in range(300)]
        assert set(draws) <= {CharTokenizer.EOS, 4, 5}, (params, set(draws))
    rows = choose_tokens(
        logits, [SamplingParams(temperature=2.0, seed=s) for s in range(4)], [np.random.default_rng(0)] * 4
    )
    assert set(rows.tolist()) <= {CharTokenizer.EOS, 4, 5}
    draws = [choose_tokens(logits[:1], [SamplingParams()], [np.random.default_rng(s)])[0] for s in range(300)]
    assert {CharTokenizer.EOS, 4, 5} == set(draws)
    assert choose_tokens(logits[:1], [SamplingParams(temperature=0)], [np.random.default_rng(0)])[0] == 4
    assert choose_tokens(logits[:1], [SamplingParams(temperature=0)], [np.random.default_rng(0)], banned=())[0] == 0
    assert logits[0, 0] == 9.0  # the caller's logits are left as they were


@pytest.mark.unit
def test_a_row_does_not_depend_on_its_batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 50))
    params = [SamplingParams(temperature=0.8, top_p=0.9, seed=s) for s in range(5)]
    together = choose_tokens(logits, params, [p.generator() for p in params])
    alone = [choose_tokens(logits[i : i + 1], [params[i]], [params[i].generator()])[0] for i in range(5)]
    assert together.tolist() == alone


@pytest.mark.unit
@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": 1.5}, "seed"),
        ({"stop": ("",)}, "stop"),
        ({"stop": ("a", "b", "c", "d", "e")}, "stop"),
    ],
)
def test_out_of_range_sampling_values_name_the_parameter(kwargs, param):
    with pytest.raises(InvalidParams) as info:
        SamplingParams(**kwargs)
    assert info.value.param == param


@pytest.mark.unit
def test_stop_strings_cut_and_hold_back():
    m = StopMatcher(("。春",))
    m.add("明月")
    assert m.safe_length() == 2
    m.add("。")
    assert m.safe_length() == 2  # "。" may begin the stop string: held back
    m.add("秋")
    assert not m.stopped and m.safe_length() == 4
    m.add("。")
    m.add("春風")
    assert m.stopped and m.text == "明月。秋"


# ---- engine ---------------------------------------------------------------------------------


def run_all(eng, prompts, seeds, max_tokens=30, **kw):
    reqs = [
        eng.submit(Request(eng.tokenizer.encode(p), SamplingParams(max_tokens=max_tokens, seed=s, **kw)))
        for p, s in zip(prompts, seeds)
    ]
    eng.run_until_idle()
    return reqs


@pytest.mark.slow
@pytest.mark.unit
def test_the_three_schedulers_give_each_seed_the_same_text(trained, functions):
    prompts = ["春", "月明", "山", "江水", "秋風", "", "雲", "夜"]
    seeds = list(range(8))
    texts = {}
    for scheduler in ("single", "static", "continuous"):
        reqs = run_all(engine(trained, functions, scheduler), prompts, seeds)
        assert all(r.finish_reason in ("stop", "length") for r in reqs)
        texts[scheduler] = [(r.text, r.output_ids) for r in reqs]
    assert texts["single"] == texts["static"] == texts["continuous"]


@pytest.mark.slow
@pytest.mark.unit
def test_continuous_batching_admits_at_every_step_and_static_waits(trained, functions):
    for scheduler, expect_join in (("continuous", True), ("static", False)):
        eng = engine(trained, functions, scheduler, slots=4)
        reqs = [
            eng.submit(Request(eng.tokenizer.encode("春"), SamplingParams(max_tokens=n, seed=i, ignore_eos=True)))
            for i, n in enumerate([3, 12, 12, 12, 5])
        ]
        admitted_at = {}
        step = 0
        while eng.step():
            step += 1
            for r in reqs:
                if r.output_ids and r.request_id not in admitted_at:
                    admitted_at[r.request_id] = step
        fifth = admitted_at[reqs[4].request_id]
        # continuous: the 5th joins as soon as the first (3 tokens) has left; static: after the whole batch
        assert (fifth <= 4) == expect_join, (scheduler, admitted_at)
        assert [len(r.output_ids) for r in reqs] == [3, 12, 12, 12, 5]


@pytest.mark.unit
def test_stop_eos_and_length(trained, functions):
    eng = engine(trained, functions)
    r = generate(eng, "春", SamplingParams(max_tokens=7, seed=0, ignore_eos=True))
    assert r.finish_reason == "length" and len(r.output_ids) == 7
    full = generate(eng, "春", SamplingParams(max_tokens=20, seed=3, ignore_eos=True)).text
    stop = full[4:6]
    cut = generate(eng, "春", SamplingParams(max_tokens=20, seed=3, ignore_eos=True, stop=(stop,)))
    assert cut.finish_reason == "stop" and cut.text == full[: full.find(stop)]
    ends = [generate(eng, "", SamplingParams(max_tokens=60, seed=s)) for s in range(4)]
    for r in ends:
        if r.finish_reason == "stop":
            assert r.output_ids[-1] == CharTokenizer.EOS


@pytest.mark.unit
def test_queue_limit_context_limit_and_cancellation(trained, functions):
    eng = engine(trained, functions, slots=4, max_waiting=2)
    params = SamplingParams(max_tokens=20, ignore_eos=True, seed=0)
    a, b = (eng.submit(Request(eng.tokenizer.encode("春"), params)) for _ in range(2))
    with pytest.raises(QueueFull):
        eng.submit(Request(eng.tokenizer.encode("春"), params))
    with pytest.raises(ContextTooLong, match="maximum context length"):
        eng.submit(Request(eng.tokenizer.encode("春"), SamplingParams(max_tokens=eng.max_len)))
    eng.step()
    assert eng.load()["running"] == 2
    eng.cancel(a)
    eng.step()  # a leaves before this step: its slot is free again
    assert a.finish_reason == "abort" and eng.load()["running"] == 1
    assert len(a.output_ids) == 2 and a.slot is None
    eng.run_until_idle()
    assert b.finish_reason == "length"


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_an_engine_failure_fails_its_requests_and_refuses_new_ones(trained, functions, monkeypatch):
    import threading

    eng = engine(trained, functions, slots=4)
    events, done = [], threading.Event()

    def on_event(req, text, finished):
        if finished:
            events.append(req.request_id)
            if len(events) == 5:
                done.set()

    params = SamplingParams(max_tokens=20, ignore_eos=True, seed=0)
    requests = [eng.submit(Request(eng.tokenizer.encode("春"), params, on_event=on_event)) for _ in range(5)]
    eng.step()  # four running, one waiting

    def broken():
        raise RuntimeError("device lost")

    monkeypatch.setattr(eng, "_step", broken)
    eng.start()
    try:
        assert done.wait(60)  # every request is told, none waits forever
    finally:
        eng.stop()
    assert [r.finish_reason for r in requests] == ["error"] * 5
    assert isinstance(eng.failure, RuntimeError) and eng.load()["running"] == eng.load()["waiting"] == 0
    with pytest.raises(EngineFailed, match="device lost"):
        eng.submit(Request(eng.tokenizer.encode("春"), params))


@pytest.mark.unit
def test_engine_thread_serves_and_stops(trained, functions):
    import threading

    eng = engine(trained, functions)
    done = threading.Event()
    eng.start()
    try:
        r = eng.submit(
            Request(
                eng.tokenizer.encode("春"),
                SamplingParams(max_tokens=5, seed=1),
                on_event=lambda req, text, finished: finished and done.set(),
            )
        )
        assert done.wait(60)
    finally:
        eng.stop()
    assert r.finish_reason in ("stop", "length")


# ---- KV cache -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.unit
def test_the_engines_step_equals_the_copied_and_the_windowed_steps(trained):
    """The engine's decode step (cache written in place, every position read) gives the logits of the
    measured alternatives (a new cache every step; only the used window read), step after step, at mixed positions."""
    model, _ = trained
    rng = np.random.default_rng(7)
    seqs = rng.integers(4, model.config.vocab_size, size=(3, 40)).astype(np.int32)
    outputs = {}
    for name, make in (
        ("engine", lambda: DecodeFunctions(model, 3)),
        ("copied", lambda: StepVariant(model, 3, in_place=False)),
        ("windowed", lambda: StepVariant(model, 3, windowed=True)),
    ):
        fns = make()
        cache, logits = fns.new_cache(), []
        for slot, n in enumerate((3, 9, 17)):
            padded = np.zeros((1, 32), np.int32)
            padded[0, :n] = seqs[slot, :n]
            first, cache = fns.prefill(padded, np.int32(n - 1), np.int32(slot), *cache)
            logits.append(np.asarray(first))
        pos = np.array([3, 9, 17], np.int32)
        for _ in range(20):
            step, cache = fns.decode(seqs[np.arange(3), pos], pos, *cache)
            logits.append(np.asarray(step))
            pos = pos + 1
        outputs[name] = logits
    for other in ("copied", "windowed"):
        for ours, theirs in zip(outputs["engine"], outputs[other]):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)


@pytest.mark.unit
def test_the_window_covers_every_position_in_use_and_few_more():
    for max_len in (64, 160, 512):
        windows = {window_length(n, max_len) for n in range(1, max_len + 1)}
        assert max(windows) == max_len and len(windows) <= 9
        for n in range(1, max_len + 1):
            w = window_length(n, max_len)
            assert n <= w <= max_len and w - n < max(32, max_len // 8 + 16)


@pytest.mark.unit
def test_kv_cache_memory_computed_equals_measured(trained, functions):
    model, _ = trained
    c = model.config
    computed = kv_cache_bytes(c, slots=4)
    assert computed["per_token"] == 2 * c.n_layers * c.d_model * 4
    assert computed["per_sequence"] == computed["per_token"] * c.max_len
    assert measured_cache_bytes(functions[4].new_cache()) == computed["total"]


@pytest.mark.unit
def test_kv_cache_waste():
    w = kv_cache_waste([16, 48, 64], max_len=64)
    assert w["unused_share"] == pytest.approx(1 - 128 / 192)
    assert w["unused_share_paged16"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        kv_cache_waste([65], max_len=64)


@pytest.mark.unit
def test_decode_speed_table_and_agreement(trained, functions):
    table = bench.decode_speed(trained[0], new_tokens=(4, 8), functions=functions[1])
    assert list(table["new_tokens"]) == [4, 8] and table["same_tokens"].all()
    assert (table["cached_tok_s"] > 0).all() and (table["recompute_tok_s"] > 0).all()


# ---- load benchmark -------------------------------------------------------------------------


class FakeClock:
    """Advances by one second each time it is read."""

    def __init__(self):
        self.t = itertools.count()

    def __call__(self):
        return float(next(self.t))


@pytest.mark.unit
def test_serving_metrics_follow_vllms_definitions():
    r = Request([1, 5], SamplingParams(max_tokens=4), arrival=10.0)
    r.output_ids, r.token_times, r.finish_reason = [5, 6, 7, 8], [12.0, 13.0, 15.0, 16.0], "length"
    q = Request([1], SamplingParams(max_tokens=1), arrival=11.0)
    q.output_ids, q.token_times, q.finish_reason = [5], [14.0], "length"
    m = bench.serving_metrics([r, q], duration=8.0)
    assert m["completed"] == 2 and m["output_tokens"] == 5 and m["output_throughput"] == 5 / 8
    assert m["mean_ttft_ms"] == pytest.approx(2500)  # (2 + 3) / 2 s
    assert m["mean_tpot_ms"] == pytest.approx(4000 / 3)  # (16 - 12) / 3, only r has more than one token
    assert m["mean_itl_ms"] == pytest.approx(4000 / 3) and m["p50_itl_ms"] == pytest.approx(1000)
    assert m["mean_e2el_ms"] == pytest.approx((6 + 3) / 2 * 1000)


@pytest.mark.slow
@pytest.mark.unit
def test_load_benchmark_with_a_fake_clock(trained, functions):
    model, tokenizer = trained
    poems = toy.toy_corpus(40).test
    work = bench.make_workload(poems, 6, seed=0, output_range=(3, 6))
    eng = Engine(model, tokenizer, slots=4, functions=functions[4], clock=FakeClock())
    m = bench.run_load(eng, work, concurrency=4)
    assert m["completed"] == 6 and m["failed"] == 0
    assert m["output_tokens"] == sum(w.output_tokens for w in work)  # ignore_eos: exact lengths
    assert all(r.token_times == sorted(r.token_times) for r in m["requests"])
    table = bench.scheduler_table(model, tokenizer, poems, concurrencies=(1, 4), min_requests=4, output_range=(2, 4))
    assert len(table) == 6 and (table["failed"] == 0).all()
    assert set(table["scheduler"]) == {"single", "static", "continuous"}
    assert {"p99_ttft_ms", "p50_tpot_ms", "p99_itl_ms", "p99_e2el_ms", "output_throughput"} <= set(table.columns)


@pytest.mark.unit
def test_the_engine_says_where_its_time_goes(trained, functions):
    model, tokenizer = trained
    poems = toy.toy_corpus(40).test
    turns = bench.batching_gain(
        model,
        tokenizer,
        poems,
        4,
        repeats=2,
        requests_per_stream=2,
        min_requests=4,
        output_range=(3, 6),
        functions=functions,
    )
    assert len(turns) == 2 and (turns["ratio"] > 0).all()
    assert list(turns["first"]) == ["single", "continuous"]  # the order alternates
    parts = bench.where_time_goes(turns)
    assert list(parts.index) == ["single", "continuous"]
    # a request's first token comes from its prefill, so one slot yields a little over one token per decode step
    assert 1.0 <= parts.loc["single", "tokens_per_step"] < parts.loc["continuous", "tokens_per_step"]
    for engine in parts.index:
        row = parts.loc[engine]
        assert row["decode_ms_per_step"] > 0 and row["total_ms_per_step"] >= row["decode_ms_per_step"]
        named = ("decode", "prefill", "sample", "engine_other", "load_generator")
        assert row["total_ms_per_step"] == pytest.approx(sum(row[f"{p}_ms_per_step"] for p in named))


# ---- paged KV cache -------------------------------------------------------------------------


def paged_engine(trained, blocks, rows=4):
    model, tokenizer = trained
    return PagedEngine(model, tokenizer, rows=rows, blocks=blocks)


def serve(eng, prompts, max_tokens, temperature=0.0, cancel_after=None):
    """Run requests to the end (cancelling request ``cancel_after[0]`` after ``cancel_after[1]`` steps)."""
    reqs = [
        eng.submit(
            Request(
                eng.tokenizer.encode(p), SamplingParams(max_tokens=n, temperature=temperature, seed=i, ignore_eos=True)
            )
        )
        for i, (p, n) in enumerate(zip(prompts, max_tokens))
    ]
    steps = 0
    while eng.step():
        steps += 1
        if cancel_after and steps == cancel_after[1]:
            eng.cancel(reqs[cancel_after[0]])
    return reqs


def all_returned(eng):
    pool = eng.pool
    return sorted(pool.free) == list(range(1, pool.blocks)) and not pool.tables.any() and not pool.held.any()


@pytest.mark.unit
def test_block_pool_allocates_as_a_sequence_grows_and_frees_at_the_end():
    pool = BlockPool(blocks=6, rows=2, max_len=64)  # 5 blocks to hand out (0 is the null block), 4 per sequence at most
    assert pool.grow(0, 1) and list(pool.tables[0]) == [1, 0, 0, 0]
    assert pool.grow(0, 16) and pool.held[0] == 1  # still one block
    assert pool.grow(0, 17) and list(pool.tables[0]) == [1, 2, 0, 0]
    assert pool.grow(1, 40) and list(pool.tables[1]) == [3, 4, 5, 0] and pool.used == 5
    assert not pool.grow(0, 33) and pool.held[0] == 2  # none free: nothing allocated
    assert list(pool.slot_mapping(0, 40)) == [1] * 16 + [2] * 16 + [0] * 8  # beyond its blocks: the null block
    pool.release(1)
    assert list(pool.free) == [3, 4, 5] and pool.used == 2 and pool.grow(0, 64) and list(pool.tables[0]) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot hold one sequence"):
        BlockPool(blocks=4, rows=1, max_len=64)


@pytest.mark.unit
def test_block_pool_shares_cached_full_blocks_and_hands_them_out_again_only_when_free():
    ids = list(range(1, 41))  # 2 full blocks of 16, and 8 positions
    hashes = block_hashes(ids)
    assert len(hashes) == 2 and block_hashes(ids[:16]) == hashes[:1] and block_hashes([9] + ids[1:])[1] != hashes[1]
    assert len(block_hashes(ids, block=8)) == 5
    pool = BlockPool(blocks=7, rows=3, max_len=64)  # 6 blocks to hand out
    assert pool.share(0, hashes) == 0 and pool.grow(0, 41) and list(pool.tables[0]) == [1, 2, 3, 0]
    pool.register(0, hashes)
    assert pool.cached == {hashes[0]: 1, hashes[1]: 2}
    assert pool.share(1, hashes) == 2 and list(pool.users[1:4]) == [2, 2, 1]  # two sequences hold blocks 1 and 2
    assert pool.grow(1, 33) and list(pool.tables[1]) == [1, 2, 4, 0] and pool.used == 4
    pool.release(0)
    assert list(pool.free) == [5, 6, 3] and pool.users[1] == 1  # block 3 comes back; 1 and 2 are still held
    pool.release(1)
    assert list(pool.free) == [5, 6, 3, 1, 2, 4] and pool.cached  # free, and still found by their hashes
    assert pool.share(2, hashes) == 2 and list(pool.free) == [5, 6, 3, 4]  # taken back out of the free list
    pool.release(2)
    assert pool.grow(0, 64) and list(pool.tables[0]) == [5, 6, 3, 4] and pool.grow(1, 16)
    assert list(pool.tables[1][:1]) == [1] and hashes[0] not in pool.cached and pool.cached == {hashes[1]: 2}
    small = BlockPool(blocks=9, rows=1, max_len=64, block=8)
    assert small.grow(0, 9) and list(small.tables[0][:3]) == [1, 2, 0] and small.tables.shape == (1, 8)


@pytest.mark.unit
def test_prefix_caching_prefills_only_what_is_not_cached_and_writes_the_same_tokens(trained):
    model, tokenizer = trained
    opening = "春風花月山水雲天江雨夜秋日人心歸山水雲天江雨夜秋日人心歸春風花"  # 32 tokens with <bos>: 2 full blocks
    prompts, lengths = [opening + c for c in "月明山江水秋"], [20, 28, 26, 24, 18, 22]
    full = sum(len(tokenizer.encode(p)) for p in prompts)
    enough = 4 * -(-model.config.max_len // BLOCK) + 1
    compiled_for = {blocks: PagedFunctions(model, 4, blocks) for blocks in (enough, 6)}  # compiled once for all runs
    for temperature in (1.0, 0.0):
        runs = {}
        for caching, blocks in ((False, enough), (True, enough), (True, 6)):  # 6: so few that some are preempted
            eng = PagedEngine(model, tokenizer, 4, blocks, functions=compiled_for[blocks], prefix_caching=caching)
            runs[caching, blocks] = [r.output_ids for r in serve(eng, prompts, lengths, temperature)]
            assert all_returned(eng) and not eng.pool.users.any(), (caching, blocks)
            if blocks == enough:  # the first prefills all, each later one all but the opening's 32 positions
                assert eng.stats["prefill_tokens"] == (full - 32 * 5 if caching else full)
                assert eng.stats["cached_tokens"] == (32 * 5 if caching else 0)
            else:
                assert eng.stats["preempted"] > 0
        assert runs[True, enough] == runs[False, enough] == runs[True, 6], temperature
    # the rest of a prompt, prefilled through the decode step, gives the logits of the whole prompt's prefill
    fns = compiled_for[enough]  # its pool: the last engine's, every block free
    ids = tokenizer.encode(opening + "月明")
    cache = fns.new_cache()
    for row in (0, 1):
        fns.pool.grow(row, len(ids))
    padded = np.zeros((1, bucket_length(len(ids), model.config.max_len)), np.int32)
    padded[0, : len(ids)] = ids
    whole, cache = fns.prefill(padded, np.int32(len(ids) - 1), np.int32(0), *cache)
    whole = to_numpy(whole)
    _, cache = fns.prefill(padded[:, :32], np.int32(31), np.int32(1), *cache)
    rest, cache = fns.extend(ids[32:], 32, 1, *cache)
    np.testing.assert_allclose(to_numpy(rest), whole, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.unit
def test_paged_decode_gives_the_tokens_of_the_contiguous_engine_and_of_the_full_forward_pass(trained, functions):
    model, tokenizer = trained
    prompts, lengths = ["春", "月明", "山", "江水", "秋風", "", "雲", "夜"], [20, 23, 26, 29, 32, 35, 38, 41]
    enough = 8 * -(-model.config.max_len // BLOCK) + 1  # a whole context for each of 8 rows, and the null block
    for temperature in (1.0, 0.0):  # sampled with fixed seeds, then greedy
        ours = [r.output_ids for r in serve(engine(trained, functions), prompts, lengths, temperature)]
        for blocks, rows in ((enough, 8), (6, 4)):  # enough blocks; so few that sequences are preempted
            eng = paged_engine(trained, blocks, rows)
            assert [r.output_ids for r in serve(eng, prompts, lengths, temperature)] == ours, (temperature, blocks)
            assert (eng.stats["preempted"] > 0) == (blocks < enough) and all_returned(eng)
    for prompt, out in zip(prompts[:3], ours[:3]):  # greedy: each token is the argmax of the full forward pass
        seq = tokenizer.encode(prompt)
        for _ in range(len(out)):
            seq.append(int(np.argmax(np.asarray(model(np.array([seq], np.int32)))[0, -1])))
        assert seq[-len(out) :] == out


@pytest.mark.unit
def test_paged_admission_waits_for_free_blocks_and_every_block_comes_back(trained):
    prompt = "春風花月山水雲天江雨夜秋日人心歸"  # 17 tokens with <bos>: two blocks from the start
    eng = paged_engine(trained, blocks=5, rows=4)  # 4 blocks: two such requests
    reqs = [
        eng.submit(Request(eng.tokenizer.encode(prompt), SamplingParams(max_tokens=n, ignore_eos=True, seed=0)))
        for n in (4, 10, 10)
    ]
    eng.step()
    assert [r.slot is not None for r in reqs] == [True, True, False] and eng.load()["waiting"] == 1
    assert eng.pool.used == 4 and not eng.pool.free  # rows are free, blocks are not: the third waits
    for _ in range(3):
        eng.step()
    assert reqs[0].finish_reason == "length" and reqs[2].slot is not None  # the first's blocks let the third in
    eng.run_until_idle()
    assert all(r.finish_reason == "length" for r in reqs) and eng.stats["preempted"] == 0 and all_returned(eng)
    # cancelled while running and while waiting: their blocks come back too
    reqs = serve(eng, [prompt] * 3, [10, 10, 10], cancel_after=(0, 2))
    assert [r.finish_reason for r in reqs] == ["abort", "length", "length"] and all_returned(eng)
    waiting = serve(eng, [prompt] * 3, [10, 10, 10], cancel_after=(2, 1))
    assert waiting[2].finish_reason == "abort" and not waiting[2].output_ids and all_returned(eng)


@pytest.mark.unit
def test_unused_share_of_the_reserved_cache_on_a_made_up_workload(trained, functions):
    """Two requests of known lengths: the engines' counters equal the shares computed by hand."""
    model, _ = trained
    max_len, prompts, max_tokens = model.config.max_len, ["春", "月明"], [5, 20]  # prompts of 2 and 3 tokens
    # decode steps run while a request has tokens left; a step reads position + 1 positions of each running one
    cached = reserved = in_flight = 0
    steps = max(max_tokens) - 1
    for k in range(steps):
        for p, n in zip((2, 3), max_tokens):
            if k < n - 1:
                cached, reserved, in_flight = cached + p + k + 1, reserved + -(-(p + k + 1) // 16) * 16, in_flight + 1
    contiguous, paged = engine(trained, functions), paged_engine(trained, blocks=9)
    for eng, expect in ((contiguous, in_flight * max_len), (paged, reserved)):
        serve(eng, prompts, max_tokens)
        assert dict(eng.usage) == {"in_flight": in_flight, "cached": cached, "reserved": expect}
        summary = usage_summary({**eng.usage, "in_flight_steps": steps})
        assert summary["unused_share"] == pytest.approx(1 - cached / expect)
        assert summary["in_flight"] == pytest.approx(in_flight / steps)
