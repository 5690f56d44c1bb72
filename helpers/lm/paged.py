"""A paged KV cache, as vLLM's PagedAttention (Kwon et al., 2023): a pool of blocks, a block table per sequence.

Each layer's cache is one pool of (blocks, heads, BLOCK, head_dim); position p of a sequence is at
``[table[p // BLOCK], :, p % BLOCK]``. Blocks are taken as a sequence grows and given back when it ends; a waiting
request is admitted when its prompt's blocks are free, first come first served. When a running sequence needs a
block and none is free, the newest is preempted and prefilled again later with its prompt and output (vLLM's
recomputation), so its output is unchanged. Block 0 is the null block: padding writes there, unused entries point at it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from helpers.lm import compiled
from helpers.lm.bench import WorkItem, make_workload, run_load, step_ms
from helpers.lm.engine import DecodeFunctions, Engine, bucket_length, measured_cache_bytes

BLOCK = 16  # positions per block, vLLM's default


def block_hashes(ids: list[int], block: int = BLOCK) -> list[int]:
    """The hash of each full block of ``ids``, chained: a block's hash names its tokens and every token before them."""
    hashes, h = [], None
    for i in range(0, len(ids) - block + 1, block):
        h = hash((h, tuple(ids[i : i + block])))
        hashes.append(h)
    return hashes


class BlockPool:
    """The pool's bookkeeping: the free blocks (handed out from the front, returned to the end), each row's block
    table and number of blocks held; for prefix caching, each block's users and the full blocks by hash."""

    def __init__(self, blocks: int, rows: int, max_len: int, block: int = BLOCK):
        width = -(-max_len // block)
        if blocks - 1 < width:
            raise ValueError(f"{blocks} blocks (one of them the null block) cannot hold one sequence of {max_len}")
        self.blocks, self.block, self.free = blocks, block, dict.fromkeys(range(1, blocks))  # an ordered set
        self.tables = np.zeros((rows, width), np.int32)  # unused entries: the null block 0
        self.held = np.zeros(rows, np.int64)
        self.users = np.zeros(blocks, np.int64)  # the sequences whose tables hold each block
        self.cached: dict[int, int] = {}  # a full block's hash -> the block that holds it
        self.hash_of: dict[int, int] = {}

    def _take(self, row: int, b: int) -> None:
        self.tables[row, self.held[row]] = b
        self.held[row] += 1
        self.users[b] += 1

    def grow(self, row: int, positions: int) -> bool:
        """Make ``row`` hold ``positions`` positions; False, allocating nothing, if too few blocks are free."""
        need = -(-positions // self.block) - int(self.held[row])
        if need > len(self.free):
            return False
        for _ in range(need):
            b = next(iter(self.free))
            del self.free[b]
            self.cached.pop(self.hash_of.pop(b, None), None)  # what it held as a cached block is overwritten
            self._take(row, b)
        return True

    def share(self, row: int, hashes: list[int]) -> int:
        """Start ``row``'s empty table with the cached blocks of the leading ``hashes``; how many it got."""
        for h in hashes:
            if h not in self.cached:
                break
            b = self.cached[h]
            self.free.pop(b, None)  # a cached block no sequence holds waits in the free list until reused
            self._take(row, b)
        return int(self.held[row])

    def register(self, row: int, hashes: list[int]) -> None:
        """Record ``row``'s first blocks as the cached blocks of these full-block ``hashes``."""
        for h, b in zip(hashes, self.tables[row, : len(hashes)].tolist()):
            if h not in self.cached and b not in self.hash_of:
                self.cached[h], self.hash_of[b] = b, h

    def release(self, row: int) -> None:
        """Return ``row``'s blocks that no other sequence holds to the end of the free list."""
        for b in self.tables[row, : self.held[row]].tolist():
            self.users[b] -= 1
            if not self.users[b]:
                self.free[b] = None
        self.tables[row], self.held[row] = 0, 0

    def slot_mapping(self, row: int, n: int) -> np.ndarray:
        """The block of each position 0..n-1 of ``row`` (the null block beyond the blocks it holds)."""
        at = np.arange(n)
        width = self.tables.shape[1]
        return np.where(at < self.held[row] * self.block, self.tables[row, np.minimum(at // self.block, width - 1)], 0)

    @property
    def used(self) -> int:
        return self.blocks - 1 - len(self.free)


class PagedFunctions(DecodeFunctions):
    """:class:`DecodeFunctions` over a pool of ``blocks`` blocks of ``block`` positions for ``rows`` sequences."""

    def __init__(self, model, rows: int, blocks: int, block: int = BLOCK):
        self.blocks, self.block = blocks, block
        self.pool = BlockPool(blocks, rows, model.config.max_len, block)
        super().__init__(model, rows)

    @property
    def cache_shape(self) -> tuple[int, int, int, int]:
        return (self.blocks, self.config.n_heads, self.block, self.config.head_dim)

    def _decode_function(self):
        return self._compile(lambda t, p, tables, cache: self.model.decode(t, p, list(cache), tables=tables), 1)

    def decode(self, tokens, positions, *cache, tables=None):
        """The decode step over the pool's tables, or over one sequence's ``tables`` (:meth:`extend`)."""
        if tables is not None:  # an extension: a trace per bucket
            return self._run(self._decode, (tokens, positions, tables), cache)
        return self._decode_with((tokens, positions, self.pool.tables), cache)

    def prefill(self, tokens, last, slot, *cache):
        mapping = self.pool.slot_mapping(int(slot), tokens.shape[1]).astype(np.int32)
        return super().prefill(tokens, last, mapping, *cache)

    def extend(self, ids: list[int], start: int, row: int, *cache):
        """Prefill the rest of a prompt whose first ``start`` positions ``row``'s blocks already hold: the decode
        step with one row per new position, all reading ``row``'s one table (within a layer every row writes
        before any reads, so each position sees those before it). Padding rows write past the prompt, where
        the decode steps write before they read."""
        n, max_len = len(ids), self.config.max_len
        b = bucket_length(n, max_len)
        tokens, positions = np.zeros(b, np.int32), np.minimum(start + np.arange(b), max_len - 1).astype(np.int32)
        tokens[:n] = ids
        logits, cache = self.decode(tokens, positions, *cache, tables=self.pool.tables[row : row + 1])
        return logits[n - 1], cache

    def warm_up(self, prompt_buckets=None, extend_buckets=()) -> None:
        super().warm_up(prompt_buckets)
        cache = self.new_cache()
        for b in sorted(set(extend_buckets)):
            logits, cache = self.extend([0] * b, 0, 0, *cache)
            compiled.to_numpy(logits)


class PagedEngine(Engine):
    """Continuous batching over a paged cache: at most ``rows`` sequences per step, ``blocks`` blocks of ``block``
    positions; with ``prefix_caching``, sequences whose prompts begin alike share the blocks of that beginning."""

    def __init__(
        self, model, tokenizer, rows: int, blocks: int, functions: PagedFunctions | None = None,
        block: int = BLOCK, prefix_caching: bool = False, **kwargs,
    ):  # fmt: skip
        if functions is None or (functions.slots, functions.blocks, functions.block) != (rows, blocks, block):
            functions = PagedFunctions(model, rows, blocks, block)
        super().__init__(model, tokenizer, slots=rows, scheduler="continuous", functions=functions, **kwargs)
        self.block, self.prefix_caching = block, prefix_caching
        self.pool = self.fns.pool = BlockPool(blocks, rows, self.max_len, block)  # a fresh pool for this engine
        self._admitted = np.zeros(rows, np.int64)  # when each row's sequence was admitted (an admission count)
        self._admissions = itertools.count(1)
        self._cached = np.zeros(rows, np.int64)  # positions of each row's prompt found in shared blocks

    def _running_rows(self) -> list[int]:
        return sorted((s for s in range(self.slots) if self.active[s] is not None), key=lambda s: self._admitted[s])

    def _preempt(self, row: int) -> None:
        request = self.active[row]
        self.pool.release(row)
        self.active[row], request.slot = None, None
        with self._lock:
            self.waiting.appendleft(request)  # first in line again; prefilled with its output when readmitted
        self.stats["preempted"] += 1

    def _allocate(self, row: int, request) -> bool:
        """Blocks for a request's prompt and first output position: shared ones first, with prefix caching (never
        its last prompt token, whose logits must be computed); False, holding nothing, if too few are free."""
        ids = request.prompt_ids + request.output_ids
        hashes = block_hashes(ids[:-1], self.block) if self.prefix_caching else []
        self._cached[row] = self.pool.share(row, hashes) * self.block
        if self.pool.grow(row, len(ids) + 1):
            self._admitted[row] = next(self._admissions)  # admitted: it is prefilled next
            return True
        self.pool.release(row)
        return False

    def _admit(self) -> None:
        for row in self._running_rows():  # running sequences first: the block their next position needs
            while self.active[row] is not None and not self.pool.grow(row, int(self.positions[row]) + 1):
                self._preempt(self._running_rows()[-1])  # none free: the newest gives its blocks up
        super()._admit()

    def _prompt_logits(self, ids: list[int], row: int) -> np.ndarray:
        start = int(self._cached[row])
        if start:
            logits, self.cache = self.fns.extend(ids[start:], start, row, *self.cache)
            self.stats["prefill_tokens"] += len(ids) - start
            self.stats["cached_tokens"] += start
            logits = compiled.to_numpy(logits)
        else:
            logits = super()._prompt_logits(ids, row)
        if self.prefix_caching:
            self.pool.register(row, block_hashes(ids, self.block))
        return logits

    def _finish(self, request, reason: str) -> None:
        if request.slot is not None:
            self.pool.release(request.slot)
        super()._finish(request, reason)

    def reserved_positions(self) -> int:
        """Cache positions reserved for the running sequences: their blocks."""
        return self.pool.used * self.block


def usage_summary(usage: dict) -> dict:
    """From an engine's :attr:`~Engine.usage`: mean sequences in flight per step, share of reserved positions unused."""
    steps = max(usage.get("in_flight_steps", 0), 1)
    return {
        "in_flight": usage.get("in_flight", 0) / steps,
        "unused_share": 1 - usage.get("cached", 0) / max(usage.get("reserved", 0), 1),
    }


def paged_step_ms(fns: PagedFunctions) -> float:
    """:func:`~helpers.lm.bench.step_ms` with every row holding whole-context blocks (reused, as many as there are)."""
    tables = fns.pool.tables
    tables[:] = 1 + np.arange(tables.size).reshape(tables.shape) % (fns.blocks - 1)
    ms = step_ms(fns)
    tables[:] = 0
    return ms


def compare(
    model, tokenizer, poems, streams, budget_slots, requests_per_stream, min_requests, output_range, seed,
    block_sizes=(BLOCK, BLOCK // 2),
):  # fmt: skip
    """Contiguous slots (``budget_slots``) against paged caches of the same bytes, blocks of each of ``block_sizes``
    positions and a row per stream, on one workload at each number of ``streams``; a row per (streams, cache, block).
    """
    max_len = model.config.max_len
    contiguous = DecodeFunctions(model, budget_slots)
    rows = []
    for c in streams:
        workload = make_workload(poems, max(min_requests, requests_per_stream * c), seed, output_range)
        buckets = {bucket_length(len(tokenizer.encode(w.prompt)), max_len) for w in workload}
        for block in (0, *block_sizes):  # 0: the contiguous slots
            if block:
                engine = PagedEngine(model, tokenizer, rows=c, blocks=budget_slots * -(-max_len // block), block=block)
            else:
                engine = Engine(model, tokenizer, slots=budget_slots, functions=contiguous)
            engine.fns.warm_up(buckets)
            m = run_load(engine, workload, c)
            rows.append(
                {
                    "cache": "paged" if block else "contiguous",
                    "block": block or max_len,
                    "streams": c,
                    "kv_bytes": measured_cache_bytes(engine.cache),
                    "output_throughput": m["output_throughput"],
                    "p99_ttft_ms": m["p99_ttft_ms"],
                    **usage_summary({**engine.usage, "in_flight_steps": m["steps"]}),
                    "preempted": engine.stats["preempted"],
                    "steps": m["steps"],
                    "step_ms": paged_step_ms(engine.fns) if block else step_ms(engine.fns),
                }
            )
    return pd.DataFrame(rows)


def shared_prefix_workload(opening: str, poems, n: int, seed: int, output_range) -> list[WorkItem]:
    """``n`` requests that begin with one long ``opening`` and go on with an opening of a poem of their own,
    as requests do after a shared system prompt or a chat template."""
    return [WorkItem(opening + w.prompt, w.output_tokens, w.seed) for w in make_workload(poems, n, seed, output_range)]


def prefix_compare(model, tokenizer, workload, streams: int, blocks: int):
    """The paged engine without and with prefix caching, on one ``workload`` at ``streams`` streams:
    prompt tokens prefilled, prefill time per request, time to first token, output tokens per second,
    and how many requests wrote the same tokens both ways. A pandas table, one row per setting."""
    max_len = model.config.max_len
    lengths = [len(tokenizer.encode(w.prompt)) for w in workload]
    fns = PagedFunctions(model, streams, blocks)
    fns.warm_up(
        {bucket_length(n, max_len) for n in lengths},
        {bucket_length(n - (n - 1) // BLOCK * BLOCK, max_len) for n in lengths},
    )
    rows, written = [], []
    for caching in (False, True):
        engine = PagedEngine(model, tokenizer, rows=streams, blocks=blocks, functions=fns, prefix_caching=caching)
        m = run_load(engine, workload, streams)
        written.append({r.request_id: r.output_ids for r in m["requests"]})
        rows.append(
            {
                "prefix_caching": caching,
                "prompt_tokens": sum(lengths),
                "prefilled_tokens": engine.stats["prefill_tokens"],
                "prefill_ms": 1000 * engine.timings["prefill"] / engine.stats["prefills"],
                "mean_ttft_ms": m["mean_ttft_ms"],
                "p99_ttft_ms": m["p99_ttft_ms"],
                "output_throughput": m["output_throughput"],
            }
        )
    table = pd.DataFrame(rows)
    table["same_output"] = sum(written[0][k] == written[1].get(k) for k in written[0])
    return table
