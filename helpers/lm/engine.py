"""The inference engine: a KV cache of fixed size, one compiled decode step, and three schedulers over it.

The cache holds, per layer, keys and values of (slots, heads, max_len, head_dim), allocated once and
written in place; a sequence owns one slot from its prefill to its last token (:mod:`helpers.lm.paged`
hands out blocks instead). ``decode`` has one shape (traced once); ``prefill`` pads a prompt to a
bucket length (one trace per bucket). Schedulers: ``single`` (one request at a time), ``static``
(a batch runs until its longest member finishes) and ``continuous`` (Orca, vLLM: before every step
finished sequences leave and waiting ones join). An exception in the engine's thread finishes every
request with ``error`` and refuses new ones (:class:`EngineFailed`); the engine is not restarted,
as its state cannot be trusted: the service reports itself unhealthy for a supervisor to restart it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from keras import ops

from helpers.lm import compiled
from helpers.lm.data import CharTokenizer
from helpers.lm.model import PoetLM, cache_index
from helpers.lm.sampling import SamplingParams, StopMatcher, choose_tokens

log = logging.getLogger("maas.lm")
SCHEDULERS = ("single", "static", "continuous")
BUCKET = 8  # prompts are padded to this many tokens, or a power of two above it, to bound retracing


class QueueFull(RuntimeError):
    """Too many requests are waiting for a slot; try again later (the service answers 429)."""


class EngineFailed(RuntimeError):
    """The engine's thread stopped on an unexpected error; it accepts no more requests (the service answers 503)."""


class ContextTooLong(ValueError):
    """Prompt plus completion do not fit in the model's context."""


def bucket_length(n: int, max_len: int) -> int:
    """The padded length for ``n`` tokens: the next power of two from :data:`BUCKET`, at most ``max_len``."""
    return min(max(BUCKET, 1 << (n - 1).bit_length()), max_len)


@dataclass
class Request:
    """One generation request and, as it runs, its output and timings. ``prompt_ids`` start with ``<bos>``;
    ``on_event(request, new_text, finished)`` is called from the engine's thread as text is ready, and at the end."""

    prompt_ids: list[int]
    params: SamplingParams
    request_id: str = ""
    on_event: Callable | None = None
    arrival: float = 0.0
    output_ids: list[int] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    finish_reason: str | None = None  # stop | length | abort (cancelled) | error (engine failed)
    sent: int = 0  # characters of the text already handed to on_event
    cancelled: bool = False
    slot: int | None = None
    _rng: np.random.Generator | None = None
    _stop: StopMatcher | None = None

    @property
    def text(self) -> str:
        return self._stop.text if self._stop else ""

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class DecodeFunctions:
    """The compiled ``prefill`` and ``decode`` of a model for ``slots`` sequences, and their cache. Both return the
    logits and the cache to use next: the buffers written in place (TensorFlow) or the donated arrays (JAX)."""

    copies_cache = False  # True in a subclass measuring the cache written functionally (copied every step)
    block = 0  # positions per block of a paged cache (:mod:`helpers.lm.paged`); 0: one contiguous slot per sequence

    def __init__(self, model: PoetLM, slots: int):
        self.model, self.slots, self.config = model, slots, model.config
        self.in_place = compiled.in_place() and not self.copies_cache
        self._steps = {}  # in place: the decode step's trace for each tuple of static arguments, looked up once
        if self.in_place:  # variables captured, not passed: TensorFlow matches each argument against the traces
            # on every call, and for variables that costs about as much as the step itself at one slot
            self._buffers = [compiled.new_buffer(self.cache_shape) for _ in range(2 * self.config.n_layers)]
        self._prefill = self._compile(self._prefill_step, 1)
        self._decode = self._decode_function()

    def _prefill_step(self, tokens, last, slot, cache):
        """Write a padded prompt's (1, n) keys and values at ``[slot, :, :n]`` (with ``block`` > 0, ``slot`` holds
        each position's block); return the logits at ``last`` and the cache."""
        logits, kv = self.model.prefill(tokens)
        n, at = tokens.shape[1], ops.arange(tokens.shape[1], dtype="int32")
        rows, cols = (slot, at % self.block) if self.block else (ops.full((n,), slot, dtype="int32"), at)
        index = cache_index(rows, cols, self.config.n_heads)
        # buffer j holds layer j // 2's keys (j even) or values: (1, n, H, Dh) go to [slot, :, :n]
        out = [compiled.write_rows(buffer, index, kv[j // 2][j % 2][0]) for j, buffer in enumerate(cache)]
        return ops.take(logits[0], last, axis=0), out

    def _compile(self, fn: Callable, extra: int = 0, static_argnums: tuple[int, ...] = ()) -> Callable:
        """``fn(tokens, positions, <extra arguments>, cache)`` compiled: in place, over the own buffers and returning
        the logits only; otherwise taking the cache last, its buffers donated (JAX) unless ``copies_cache``."""
        if self.in_place:
            return compiled.compile_function(lambda *args: fn(*args, self._buffers)[0])
        donate = () if self.copies_cache else (2 + extra,)
        return compiled.compile_function(fn, static_argnums=static_argnums, donate_argnums=donate)

    def _run(self, fn: Callable, args: tuple, cache) -> tuple:
        """``fn(*args)``, with the cache last unless in place: the logits and the cache to use next."""
        if self.in_place:
            return fn(*args), self._buffers
        logits, new = fn(*args, list(cache))
        return logits, list(new)

    @property
    def cache_shape(self) -> tuple[int, int, int, int]:
        return (self.slots, self.config.n_heads, self.config.max_len, self.config.head_dim)

    def _decode_function(self) -> Callable:
        return self._compile(lambda tokens, positions, cache: self.model.decode(tokens, positions, list(cache)))

    def _decode_with(self, args: tuple, cache, *static) -> tuple:
        """The decode step on the int32 arrays ``args`` and the ``static`` values; in place, through the trace
        for ``static``, looked up once."""
        if not self.in_place:
            return self._run(self._decode, (*args, *static), cache)
        if static not in self._steps:
            self._steps[static] = compiled.specialize(self._decode, [(np.shape(a), "int32") for a in args], *static)
        return self._run(self._steps[static], args, cache)

    def decode(self, tokens, positions, *cache):
        return self._decode_with((tokens, positions), cache)

    def prefill(self, tokens, last, slot, *cache):
        return self._run(self._prefill, (tokens, last, slot), cache)

    def new_cache(self) -> list:
        """2 * n_layers buffers of (slots, H, max_len, Dh): in place, the functions' own (one engine at a time;
        a position is written before it is read, so they need no clearing); otherwise zeroed arrays."""
        if self.in_place:
            return self._buffers
        return [ops.zeros(self.cache_shape, dtype="float32") for _ in range(2 * self.config.n_layers)]

    def warm_up(self, prompt_buckets=None) -> None:
        """Compile the decode step and the prefill of every prompt bucket (default: all of them)."""
        max_len = self.config.max_len
        if prompt_buckets is None:
            prompt_buckets = {bucket_length(n, max_len) for n in range(1, max_len + 1)}
        cache = self.new_cache()
        for b in sorted(set(prompt_buckets)):
            _, cache = self.prefill(np.zeros((1, b), np.int32), np.int32(0), np.int32(0), *cache)
        positions = np.zeros(self.slots, np.int32)
        positions[0] = max_len - 1
        logits, cache = self.decode(np.zeros(self.slots, np.int32), positions, *cache)
        compiled.to_numpy(logits)


class Engine:
    """Runs requests with one of :data:`SCHEDULERS`, by :meth:`step` or in a thread (:meth:`start`, :meth:`stop`);
    ``submit`` and ``cancel`` are thread-safe; ``max_waiting`` bounds the queue (:class:`QueueFull` beyond)."""

    def __init__(
        self,
        model: PoetLM,
        tokenizer: CharTokenizer,
        slots: int = 32,
        scheduler: str = "continuous",
        max_waiting: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        functions: DecodeFunctions | None = None,
    ):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose from {SCHEDULERS}")
        if scheduler == "single":
            slots = 1
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.model, self.tokenizer, self.scheduler, self.clock = model, tokenizer, scheduler, clock
        self.slots, self.max_len, self.max_waiting = slots, model.config.max_len, max_waiting
        self.fns = functions if functions is not None and functions.slots == slots else DecodeFunctions(model, slots)
        self.cache = self.fns.new_cache()
        self.active: list[Request | None] = [None] * slots
        self.positions = np.zeros(slots, np.int32)  # where each slot's next token goes
        self.next_tokens = np.zeros(slots, np.int32)
        self.waiting: collections.deque[Request] = collections.deque()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.failure: BaseException | None = None  # the exception that stopped the engine's thread
        self._ids = itertools.count()
        self.stats = collections.Counter()
        self.timings = collections.Counter()  # seconds in prefill, decode (logits back on the host), sample, steps
        self.usage = collections.Counter()  # over decode steps: sequences in flight, positions read, reserved

    def validate(self, prompt_ids: list[int], params: SamplingParams) -> None:
        """Raise :class:`ContextTooLong` when the prompt and ``max_tokens`` do not fit the context."""
        if not prompt_ids or prompt_ids[0] != CharTokenizer.BOS:
            raise ValueError("prompt_ids must start with <bos>")
        if len(prompt_ids) + params.max_tokens > self.max_len:
            raise ContextTooLong(
                f"this model's maximum context length is {self.max_len} tokens; the prompt has "
                f"{len(prompt_ids)} (with <bos>) and max_tokens is {params.max_tokens}, "
                f"{len(prompt_ids) + params.max_tokens} in all: shorten the prompt or "
                f"lower max_tokens to at most {self.max_len - len(prompt_ids)}"
            )

    def submit(self, request: Request) -> Request:
        """Queue a request (thread-safe). Raises QueueFull, ContextTooLong or EngineFailed."""
        self.validate(request.prompt_ids, request.params)
        with self._work:
            if self.failure is not None:
                raise EngineFailed(f"the engine stopped on an error: {self.failure!r}")
            if self.max_waiting is not None and len(self.waiting) >= self.max_waiting:
                self.stats["rejected"] += 1
                raise QueueFull(f"{len(self.waiting)} requests are already waiting for one of {self.slots} slots")
            request.request_id = request.request_id or f"req-{next(self._ids)}"
            request.arrival = request.arrival or self.clock()
            request._rng = request.params.generator()
            request._stop = StopMatcher(tuple(request.params.stop))
            self.waiting.append(request)
            self.stats["submitted"] += 1
            self._work.notify()
        return request

    def cancel(self, request: Request) -> None:
        """Mark a request cancelled (thread-safe); it leaves before the next step and frees its slot."""
        with self._work:
            request.cancelled = True
            self._work.notify()

    def load(self) -> dict:
        """Running and waiting requests, and counters."""
        with self._lock:
            state = {"running": sum(r is not None for r in self.active), "waiting": len(self.waiting)}
            return {**state, "slots": self.slots, "scheduler": self.scheduler, **self.stats}

    def _finish(self, request: Request, reason: str) -> None:
        request.finish_reason = reason
        if request.slot is not None:
            self.active[request.slot] = None
            request.slot = None
        self.stats[f"finished_{reason}"] += 1
        if request.on_event:
            request.on_event(request, request.text[request.sent :], True)
        request.sent = len(request.text)

    def _accept(self, request: Request, token: int, now: float) -> None:
        """Record a generated token; finish the request if it is done."""
        request.output_ids.append(token)
        request.token_times.append(now)
        self.stats["tokens"] += 1
        if token == CharTokenizer.EOS and not request.params.ignore_eos:
            self._finish(request, "stop")
            return
        request._stop.add(self.tokenizer.token_text(token))
        if request._stop.stopped:
            self._finish(request, "stop")
        elif len(request.output_ids) >= request.params.max_tokens:
            self._finish(request, "length")
        elif (safe := request._stop.safe_length()) > request.sent and request.on_event:
            request.on_event(request, request.text[request.sent : safe], False)
            request.sent = safe

    def _prompt_logits(self, ids: list[int], slot: int) -> np.ndarray:
        """Write the keys and values of ``ids`` into ``slot``'s cache; the logits at its last position."""
        padded = np.zeros((1, bucket_length(len(ids), self.max_len)), np.int32)
        padded[0, : len(ids)] = ids
        logits, self.cache = self.fns.prefill(padded, np.int32(len(ids) - 1), np.int32(slot), *self.cache)
        self.stats["prefill_tokens"] += len(ids)
        return compiled.to_numpy(logits)

    def _prefill(self, request: Request, slot: int) -> None:
        ids = request.prompt_ids + request.output_ids  # its output too when it resumes after a preemption
        start = time.perf_counter()
        logits = self._prompt_logits(ids, slot)
        chosen = time.perf_counter()
        self.stats["prefills"] += 1
        token = int(choose_tokens(logits[None], [request.params], [request._rng])[0])
        self.timings["prefill"] += chosen - start
        self.timings["sample"] += time.perf_counter() - chosen
        request.slot = slot
        self.active[slot] = request
        self.positions[slot] = len(ids)
        self.next_tokens[slot] = token
        self._accept(request, token, self.clock())

    def _admit(self) -> None:
        free = [s for s in range(self.slots) if self.active[s] is None]
        if self.scheduler == "static" and len(free) < self.slots:
            return  # a static batch runs until its last member has finished
        for slot in free:
            with self._lock:
                if not self.waiting:
                    return
                request, cancelled = self.waiting[0], self.waiting[0].cancelled
                if not cancelled and not self._allocate(slot, request):
                    return  # too few free blocks (paged): it waits, and those behind it, until some are returned
                self.waiting.popleft()
            if cancelled:
                self._finish(request, "abort")
                continue
            self._prefill(request, slot)

    def _allocate(self, slot: int, request: Request) -> bool:
        """Reserve the cache ``request`` needs in ``slot``; False if it must wait (a contiguous slot holds any)."""
        return True

    def step(self) -> bool:
        """Drop cancelled requests, admit waiting ones, run one decode step. False when there was nothing to do."""
        start = time.perf_counter()
        try:
            return self._step()
        finally:
            self.timings["step"] += time.perf_counter() - start

    def _step(self) -> bool:
        with self._lock:
            gone = [r for r in self.active if r is not None and r.cancelled]
            waiting_gone = [r for r in self.waiting if r.cancelled]
            for r in waiting_gone:
                self.waiting.remove(r)
        for r in gone + waiting_gone:
            self._finish(r, "abort")
        self._admit()
        busy = np.array([r is not None for r in self.active])
        slots = np.flatnonzero(busy)
        running = [self.active[s] for s in slots]
        if not running:
            return bool(gone or waiting_gone)
        cached = int(self.positions[busy].sum()) + len(running)
        self.usage.update(in_flight=len(running), cached=cached, reserved=self.reserved_positions())
        tokens = np.where(busy, self.next_tokens, CharTokenizer.PAD).astype(np.int32)
        positions = np.where(busy, self.positions, 0).astype(np.int32)
        decoding = time.perf_counter()
        logits, self.cache = self.fns.decode(tokens, positions, *self.cache)
        logits = compiled.to_numpy(logits)
        sampling = time.perf_counter()
        self.stats["steps"] += 1
        chosen = choose_tokens(logits[slots], [r.params for r in running], [r._rng for r in running])
        self.timings["decode"] += sampling - decoding
        self.timings["sample"] += time.perf_counter() - sampling
        now = self.clock()
        for s, request, token in zip(slots, running, chosen):
            self.positions[s] += 1
            self.next_tokens[s] = token
            self._accept(request, int(token), now)
        return True

    def reserved_positions(self) -> int:
        """Cache positions reserved for the running sequences: the whole context each."""
        return sum(r is not None for r in self.active) * self.max_len

    def run_until_idle(self) -> None:
        while self.step():
            pass

    def start(self) -> None:
        """Run the engine in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="lm-engine", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._work:
                while not self._stopping and not self.waiting and not any(self.active):
                    self._work.wait()
                if self._stopping:
                    return
            try:
                self.step()
            except Exception as exc:  # any error: fail the requests rather than leave them waiting
                self._fail(exc)
                return

    def _fail(self, exc: Exception) -> None:
        """Record the engine's failure, refuse new requests, and finish every request with ``error``."""
        log.error("engine failed", exc_info=exc, extra={"fields": {"event": "engine_failed", "error": repr(exc)}})
        with self._work:
            self.failure = exc
            requests = [r for r in self.active if r is not None] + list(self.waiting)
            self.waiting.clear()
        for r in requests:
            if not r.finished:
                with contextlib.suppress(Exception):  # finish the others whatever one of them raises
                    self._finish(r, "error")

    def stop(self) -> None:
        """Stop the thread after its current step; requests still running or waiting are cancelled."""
        if self._thread is not None:
            with self._work:
                self._stopping = True
                self._work.notify()
            self._thread.join()
            self._thread = None
        for r in [r for r in self.active if r is not None] + list(self.waiting):
            self._finish(r, "abort")
        self.waiting.clear()


def generate(engine: Engine, prompt: str, params: SamplingParams) -> Request:
    """Run one prompt to completion on an idle engine (not running in a thread); returns the finished request."""
    request = engine.submit(Request(engine.tokenizer.encode(prompt), params))
    engine.run_until_idle()
    return request


def sample_poems(engine: Engine, n: int = 100, seed: int = 0, temperature: float = 0.8) -> list[str]:
    """``n`` poems from ``<bos>`` (at most the whole context), seeds ``seed..seed+n-1``, on an idle engine."""
    params = [SamplingParams(max_tokens=engine.max_len - 1, temperature=temperature, seed=seed + i) for i in range(n)]
    requests = [engine.submit(Request([CharTokenizer.BOS], p)) for p in params]
    engine.run_until_idle()
    return [r.text for r in requests]


def kv_cache_bytes(config, slots: int = 1) -> dict:
    """The engine's float32 KV cache (:func:`helpers.topics.large_models.kv_cache_bytes`): per token, per sequence
    (``max_len`` positions) and for ``slots``."""
    from helpers.topics.large_models import kv_cache_bytes as cache_bytes

    per_token = int(cache_bytes(config.n_layers, config.n_heads, config.head_dim, 1, "fp32"))
    per_sequence = per_token * config.max_len
    return {"per_token": per_token, "per_sequence": per_sequence, "total": per_sequence * slots}


def measured_cache_bytes(cache) -> int:
    """Bytes actually allocated by a cache (the sum of its buffers' sizes)."""
    return int(sum(compiled.nbytes(t) for t in cache))


def kv_cache_waste(lengths, max_len: int) -> dict:
    """Share of a fixed ``max_len``-per-sequence cache that sequences of these lengths leave unused,
    and the share blocks of 16 positions would (only each sequence's last block is partly empty)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.size == 0 or np.any(lengths < 1) or np.any(lengths > max_len):
        raise ValueError(f"lengths must be between 1 and max_len={max_len}")
    blocks = np.ceil(lengths / 16) * 16
    return {
        "sequences": int(lengths.size),
        "mean_length": float(lengths.mean()),
        "max_len": max_len,
        "unused_share": float(1 - lengths.sum() / (max_len * lengths.size)),
        "unused_share_paged16": float(1 - lengths.sum() / blocks.sum()),
    }
