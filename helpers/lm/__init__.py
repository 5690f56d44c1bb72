"""A small language model trained and served the way large ones are: Tang poems, character by character.

The modules, in the order the chapter uses them (each imports Keras only where it needs it):

* :mod:`helpers.lm.data` — the 全唐诗 from npm ``chinese-poetry@2.0.1``: verified fetch and cache,
  doubtful records and near-duplicates dropped, split by poem, the form test (:func:`~helpers.lm.data.poem_form`,
  :func:`~helpers.lm.data.form_score`), the character tokenizer, packed training rows and one
  held-out poem a row;
* :mod:`helpers.lm.baselines` — unigram, interpolated bigram and Kneser–Ney models fitted by
  counting, and cross-entropy split into characters, punctuation and ``<eos>``;
* :mod:`helpers.lm.model` — the decoder-only transformer (Keras 3, ``keras.ops`` only), its NumPy
  attention reference and parameter counts;
* :mod:`helpers.lm.train` — AdamW with warm-up and cosine decay, learning curve, checkpoints and
  resumption, presets (``python -m helpers.lm.train --preset cpu --checkpoint-dir DIR``);
* :mod:`helpers.lm.sampling` — temperature, top-k, top-p, stop strings, per-request seeds;
* :mod:`helpers.lm.engine` — the KV cache, the compiled decode step and the three schedulers
  (one at a time, static batches, continuous batching);
* :mod:`helpers.lm.bench` — KV cache against recomputation, and the load benchmark with vLLM's metrics;
* :mod:`helpers.lm.server`, :mod:`helpers.lm.serve` — the OpenAI-compatible HTTP service
  (``python -m helpers.lm.serve --checkpoint DIR --port N``) and :func:`~helpers.lm.serve.running_server`;
* :mod:`helpers.lm.scaling` — size and compute sweeps, and the fitted power law;
* :mod:`helpers.lm.compiled` — the one place that knows the Keras backends (``tf.function`` / ``jax.jit``).
"""
