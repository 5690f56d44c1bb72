"""Choosing the next token: temperature, top-k, top-p, a per-request seed; stop strings.

The rules are the OpenAI API's and vLLM's: ``temperature`` 0 is greedy, ``top_k`` 0 or -1 keeps every
token, a ``stop`` string ends the completion and is not returned, ``max_tokens`` counts ``<eos>`` too.
Every request has its own generator and draws one uniform number per token, and a row's logits depend
on its sequence only: the same seed gives the same text alone or beside 63 other requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.lm.data import CharTokenizer

MAX_STOP = 4  # stop strings per request (the OpenAI API's limit)
NEVER_SAMPLED = (CharTokenizer.PAD, CharTokenizer.BOS, CharTokenizer.UNK)  # never chosen: padding, <bos>, unknown


class InvalidParams(ValueError):
    """A sampling parameter out of range; ``param`` names it (the service answers 400)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples (``max_tokens`` counts ``<eos>``); validated on construction (:class:`InvalidParams`)."""

    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # keep going after <eos> (vLLM's extension; load benchmarks use it)

    def __post_init__(self):
        def number(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise InvalidParams(name, f"{name} must be a finite number, got {value!r}")

        def integer(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        number("temperature", self.temperature)
        number("top_p", self.top_p)
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidParams("temperature", f"temperature must be between 0 and 2, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidParams("top_p", f"top_p must be in (0, 1], got {self.top_p}")
        if not integer(self.top_k) or self.top_k < -1:
            raise InvalidParams("top_k", f"top_k must be an integer: -1 or 0 (all tokens) or >= 1, got {self.top_k!r}")
        if not integer(self.max_tokens) or self.max_tokens < 1:
            raise InvalidParams("max_tokens", f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if self.seed is not None and not (integer(self.seed) and -(2**63) <= self.seed < 2**64):
            raise InvalidParams("seed", f"seed must be a 64-bit integer or null, got {self.seed!r}")
        if len(self.stop) > MAX_STOP or any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidParams("stop", f"stop must be up to {MAX_STOP} non-empty strings, got {list(self.stop)!r}")

    def generator(self) -> np.random.Generator:
        """The request's random generator (fresh entropy when ``seed`` is None)."""
        return np.random.default_rng(None if self.seed is None else self.seed % 2**64)


def choose_tokens(
    logits: np.ndarray, params: list[SamplingParams], rngs: list[np.random.Generator], banned: tuple = NEVER_SAMPLED
) -> np.ndarray:
    """One token per row of ``logits`` (R, V), each row with its own parameters and generator; ``banned`` never.

    Each row draws one uniform number, even when greedy (so that its stream does not depend on earlier
    temperatures), and takes the token where it falls in its filtered, unnormalised cumulative distribution.
    """
    logits = np.asarray(logits, dtype=np.float32)
    u = np.array([rng.random() for rng in rngs])
    size = logits.shape[1]
    chosen = np.empty(len(params), dtype=np.int64)
    temperature = np.array([p.temperature for p in params], dtype=np.float32)
    greedy = temperature == 0.0
    banned = [b for b in banned if b < size]
    if greedy.any():
        g = logits[greedy]  # a copy: the caller's logits are left as they are
        g[:, banned] = -np.inf
        chosen[greedy] = np.argmax(g, axis=1)
    rows = np.flatnonzero(~greedy)
    if not rows.size:
        return chosen
    z = logits[rows] / temperature[rows, None]
    z[:, banned] = -np.inf
    top_k = np.array([params[r].top_k for r in rows])
    cut = (top_k > 0) & (top_k < size)
    if cut.any():  # keep the k largest: at least the k-th largest value
        kth = np.sort(z[cut], axis=1)[np.arange(int(cut.sum())), size - top_k[cut]]
        z[cut] = np.where(z[cut] >= kth[:, None], z[cut], -np.inf)
    z -= z.max(axis=1, keepdims=True)
    weights = np.exp(z, out=z)  # unnormalised probabilities
    for i, r in enumerate(rows):
        top_p = params[r].top_p
        if top_p < 1.0:  # the smallest set of most likely tokens reaching top_p
            probs = weights[i] / weights[i].sum()
            order = np.argsort(-probs, kind="stable")
            keep = order[: int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1]
            filtered = np.zeros(size, dtype=np.float32)
            filtered[keep] = probs[keep]
            weights[i] = filtered
    cdf = np.cumsum(weights, axis=1)
    below = (cdf <= (u[rows] * cdf[:, -1])[:, None]).sum(axis=1)  # searchsorted(cdf, u * total, "right")
    chosen[rows] = np.minimum(below, size - 1)
    return chosen


@dataclass
class StopMatcher:
    """Finds stop strings in a growing completion and says how much of it is safe to stream."""

    stops: tuple[str, ...] = ()
    text: str = ""
    stopped: bool = False

    def add(self, piece: str) -> None:
        """Append generated text; cut it at the first stop string, if one now appears."""
        start = max(0, len(self.text) - max((len(s) for s in self.stops), default=0) + 1)
        self.text += piece
        hits = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def safe_length(self) -> int:
        """Characters that can be sent now: all but a tail that could still begin a stop string."""
        if self.stopped:
            return len(self.text)
        hold = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.text)), 0, -1):
                if self.text.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        return len(self.text) - hold
