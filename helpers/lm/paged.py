"""A paged KV cache, as vLLM's PagedAttention (Kwon et al., 2023): a pool of blocks, a block table per sequence.

Every layer's cache is one pool of (blocks, heads, BLOCK, head_dim); position p of a sequence is at
``[table[p // BLOCK], :, p % BLOCK]``. Blocks are allocated as a sequence grows and returned when it
ends; a waiting request is admitted when blocks are free for its prompt, first come first served. When
a running sequence needs a block and none is free, the most recently admitted one is preempted: its
blocks are freed and it goes back to the front of the queue, to be prefilled again with its prompt and
output (vLLM's preemption by recomputation), so its output is unchanged. Block 0 is the null block:
never handed out, where empty rows and padding write, and what unused table entries point at.
"""

from __future__ import annotations

import collections

import numpy as np

from helpers.lm import compiled
from helpers.lm.bench import make_workload, run_load, step_ms
from helpers.lm.engine import DecodeFunctions, Engine, bucket_length
from helpers.lm.kvcache import measured_cache_bytes

BLOCK = 16  # positions per block, vLLM's default


class BlockPool:
    """The pool's bookkeeping: the free blocks (a queue: handed out from the front, returned to the end),
    and each row's block table and number of blocks held."""

    def __init__(self, blocks: int, rows: int, max_len: int):
        width = -(-max_len // BLOCK)
        if blocks - 1 < width:
            raise ValueError(f"{blocks} blocks (one of them the null block) cannot hold one sequence of {max_len}")
        self.blocks, self.free = blocks, collections.deque(range(1, blocks))
        self.tables = np.zeros((rows, width), np.int32)  # unused entries: the null block 0
        self.held = np.zeros(rows, np.int64)

    def grow(self, row: int, positions: int) -> bool:
        """Make ``row`` hold ``positions`` positions; False, allocating nothing, if too few blocks are free."""
        need = -(-positions // BLOCK) - int(self.held[row])
        if need > len(self.free):
            return False
        for _ in range(need):
            self.tables[row, self.held[row]] = self.free.popleft()
            self.held[row] += 1
        return True

    def release(self, row: int) -> None:
        """Return ``row``'s blocks to the end of the free queue."""
        self.free.extend(self.tables[row, : self.held[row]].tolist())
        self.tables[row], self.held[row] = 0, 0

    def slot_mapping(self, row: int, n: int) -> np.ndarray:
        """The block of each position 0..n-1 of ``row`` (the null block beyond the blocks it holds)."""
        at = np.arange(n)
        return np.where(
            at < self.held[row] * BLOCK, self.tables[row, np.minimum(at // BLOCK, self.tables.shape[1] - 1)], 0
        )

    @property
    def used(self) -> int:
        return self.blocks - 1 - len(self.free)


class PagedFunctions(DecodeFunctions):
    """:class:`DecodeFunctions` over a pool of ``blocks`` blocks for ``rows`` sequences, through :attr:`pool`'s tables."""

    block = BLOCK

    def __init__(self, model, rows: int, blocks: int):
        self.blocks, self.pool = blocks, BlockPool(blocks, rows, model.config.max_len)
        super().__init__(model, rows)

    @property
    def cache_shape(self) -> tuple[int, int, int, int]:
        return (self.blocks, self.config.n_heads, BLOCK, self.config.head_dim)

    def _decode_function(self):
        model = self.model
        if self.in_place:
            return compiled.compile_function(
                lambda tokens, positions, tables: model.decode(tokens, positions, self._buffers, tables=tables)[0]
            )
        return compiled.compile_function(
            lambda tokens, positions, tables, cache: model.decode(tokens, positions, list(cache), tables=tables),
            donate_argnums=(3,),
        )

    def decode(self, tokens, positions, *cache):
        tables = self.pool.tables
        if self.in_place:
            if self._step is None:
                spec = ((self.slots,), "int32")
                self._step = compiled.specialize(self._decode, [spec, spec, (tables.shape, "int32")])
            return self._step(tokens, positions, tables), self._buffers
        logits, new = self._decode(tokens, positions, tables, list(cache))
        return logits, list(new)

    def prefill(self, tokens, last, slot, *cache):
        mapping = self.pool.slot_mapping(int(slot), tokens.shape[1]).astype(np.int32)
        return super().prefill(tokens, last, mapping, *cache)


class PagedEngine(Engine):
    """Continuous batching over a paged cache: at most ``rows`` sequences per step, ``blocks`` blocks of 16."""

    def __init__(self, model, tokenizer, rows: int, blocks: int, functions: PagedFunctions | None = None, **kwargs):
        if functions is None or (functions.slots, functions.blocks) != (rows, blocks):
            functions = PagedFunctions(model, rows, blocks)
        super().__init__(model, tokenizer, slots=rows, scheduler="continuous", functions=functions, **kwargs)
        self.pool = self.fns.pool = BlockPool(blocks, rows, self.max_len)  # a fresh pool for this engine
        self._admitted = np.zeros(rows, np.int64)  # when each row's sequence was admitted (a step count)
        self._admissions = 0

    def _running_rows(self) -> list[int]:
        return sorted((s for s in range(self.slots) if self.active[s] is not None), key=lambda s: self._admitted[s])

    def _preempt(self, row: int) -> None:
        request = self.active[row]
        self.pool.release(row)
        self.active[row], request.slot = None, None
        with self._lock:
            self.waiting.appendleft(request)  # first in line again; prefilled with its output when readmitted
        self.stats["preempted"] += 1

    def _admit(self) -> None:
        for row in self._running_rows():  # running sequences first: the block their next position needs
            while self.active[row] is not None and not self.pool.grow(row, int(self.positions[row]) + 1):
                self._preempt(self._running_rows()[-1])  # none free: the newest gives its blocks up
        for row in [s for s in range(self.slots) if self.active[s] is None]:
            with self._lock:
                if not self.waiting:
                    return
                request, cancelled = self.waiting[0], self.waiting[0].cancelled
                if not cancelled and not self.pool.grow(row, len(request.prompt_ids) + len(request.output_ids) + 1):
                    return  # too few free blocks: it waits, and those behind it, until some are returned
                self.waiting.popleft()
            if cancelled:
                self._finish(request, "abort")
                continue
            self._admissions += 1
            self._admitted[row] = self._admissions
            self._prefill(request, row)

    def _finish(self, request, reason: str) -> None:
        if request.slot is not None:
            self.pool.release(request.slot)
        super()._finish(request, reason)

    def reserved_positions(self) -> int:
        """Cache positions reserved for the running sequences: their blocks."""
        return self.pool.used * BLOCK


# --------------------------------------------------------------------------------------------
# contiguous slots against blocks, same memory


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


def compare(model, tokenizer, poems, streams, budget_slots, requests_per_stream, min_requests, output_range, seed):
    """Contiguous slots against a paged cache of the same bytes, on the same workload at each number of ``streams``.

    The contiguous engine has ``budget_slots`` slots; the paged engine as many blocks as those slots hold
    positions, and one row per stream. A pandas table, one row per (cache, streams).
    """
    import pandas as pd

    max_len = model.config.max_len
    blocks = budget_slots * -(-max_len // BLOCK)
    contiguous = DecodeFunctions(model, budget_slots)
    rows = []
    for c in streams:
        workload = make_workload(poems, max(min_requests, requests_per_stream * c), seed, output_range)
        buckets = {bucket_length(len(tokenizer.encode(w.prompt)), max_len) for w in workload}
        paged = PagedFunctions(model, c, blocks)
        for name, fns in (("contiguous", contiguous), ("paged", paged)):
            fns.warm_up(buckets)
            if name == "contiguous":
                engine = Engine(model, tokenizer, slots=budget_slots, functions=fns)
            else:
                engine = PagedEngine(model, tokenizer, rows=c, blocks=blocks, functions=fns)
            m = run_load(engine, workload, c)
            rows.append(
                {
                    "cache": name,
                    "streams": c,
                    "kv_bytes": measured_cache_bytes(engine.cache),
                    "output_throughput": m["output_throughput"],
                    "p99_ttft_ms": m["p99_ttft_ms"],
                    **usage_summary({**engine.usage, "in_flight_steps": m["steps"]}),
                    "preempted": engine.stats["preempted"],
                    "steps": m["steps"],
                    "step_ms": paged_step_ms(fns) if name == "paged" else step_ms(fns),
                }
            )
    return pd.DataFrame(rows)


#: the columns of :func:`compare`'s table as the chapter shows them
COLUMNS = {
    "in_flight": "sequences in flight",
    "unused_share": "reserved cache unused",
    "preempted": "preemptions",
    "step_ms": "decode step, ms",
    "output_throughput": "output tok/s",
    "p99_ttft_ms": "TTFT p99 ms",
}


def compare_view(table, lang: str):
    """:func:`compare`'s table with headers in the page's language."""
    from helpers.words import of

    w = of(lang, "lm")
    view = table.set_index(["streams", "cache"])[list(COLUMNS)].copy()
    view["unused_share"] = [f"{x:.1%}" for x in view["unused_share"]]
    view = view.round({"in_flight": 1, "step_ms": 2, "output_throughput": 0, "p99_ttft_ms": 1})
    view.index = view.index.set_levels([w("contiguous slots"), w("blocks")], level=1)
    view.index.names = [w("streams"), w("cache")]
    return view.rename(columns={k: w(v) for k, v in COLUMNS.items()})
