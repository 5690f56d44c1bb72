"""Decode steps the engine does not take, measured against its own (:func:`helpers.lm.bench.step_times`):
the cache written functionally (a copy every step), and a step reading only the window of positions in use."""

from __future__ import annotations

import numpy as np

from helpers.lm import compiled
from helpers.lm.engine import DecodeFunctions
from helpers.lm.model import PoetLM


def window_length(n: int, max_len: int) -> int:
    """The cache positions a windowed step reads when the furthest slot is at ``n - 1``: a multiple of an
    eighth of the context (a handful of compiled shapes), at most ``max_len``."""
    grain = max(32, 16 * -(-max_len // 128))  # an eighth of max_len, rounded up to a multiple of 16
    return min(max_len, -(-max(n, 1) // grain) * grain)


class StepVariant(DecodeFunctions):
    """``in_place=False``: the cache written functionally, nothing donated (a copy of the whole cache every step);
    ``windowed=True``: a step reads only :func:`window_length` positions (one trace per window)."""

    def __init__(self, model: PoetLM, slots: int, windowed: bool = False, in_place: bool = True):
        self.copies_cache, self.windowed, self._steps = not in_place, windowed, {}
        super().__init__(model, slots)

    def _decode_function(self):
        model = self.model
        if not self.windowed:
            return super()._decode_function()
        if self.in_place:
            return compiled.compile_function(
                lambda tokens, positions, window: model.decode(tokens, positions, self._buffers, window)[0]
            )
        return compiled.compile_function(
            lambda tokens, positions, window, cache: model.decode(tokens, positions, list(cache), window),
            static_argnums=(2,),
            donate_argnums=() if self.copies_cache else (3,),
        )

    def decode(self, tokens, positions, *cache):
        if not self.windowed:
            return super().decode(tokens, positions, *cache)
        window = window_length(int(np.max(positions)) + 1, self.config.max_len)
        if self.in_place:
            if window not in self._steps:  # the trace for this window, looked up once
                spec = ((self.slots,), "int32")
                self._steps[window] = compiled.specialize(self._decode, [spec, spec], window)
            return self._steps[window](tokens, positions), self._buffers
        logits, new = self._decode(tokens, positions, window, list(cache))
        return logits, list(new)
