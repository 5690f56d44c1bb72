"""A small language model trained and served the way large ones are: Tang poems, character by character.

Data (:mod:`~helpers.lm.data`), counting baselines (:mod:`~helpers.lm.baselines`), the transformer
(:mod:`~helpers.lm.model`) and its training (:mod:`~helpers.lm.train`), sampling and the inference engine
(:mod:`~helpers.lm.sampling`, :mod:`~helpers.lm.engine`, :mod:`~helpers.lm.paged`), measurements
(:mod:`~helpers.lm.bench`, :mod:`~helpers.lm.scaling`) and the OpenAI-compatible service
(:mod:`~helpers.lm.server`, :mod:`~helpers.lm.serve`). Each module imports Keras only where it needs it.
"""
