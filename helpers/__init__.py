"""The package the chapters of "AI large models as a service" (人工智能大模型即服务) import.

Arranged by role, in the manner of d2l's ``d2l`` package:

- what chapters import, one module per job: :mod:`~helpers.data` (CIFAR-10: fetch, verify,
  cache, load), :mod:`~helpers.fetch` (verified downloads), :mod:`~helpers.models` (every
  network, defined once), :mod:`~helpers.training` (timed fit, evaluation),
  :mod:`~helpers.timing` (throughput and latency), :mod:`~helpers.plots` (the figures' style),
  :mod:`~helpers.processes` (child processes, started and always stopped),
  :mod:`~helpers.artifacts` (what one chapter leaves for another), :mod:`~helpers.env`
  (backend, seeds, hardware), :mod:`~helpers.paths` (where things are);
- :mod:`helpers.topics`: one module per chapter topic (large models, servitization, optimisation,
  the training recipe, data parallelism, scaling laws, federated learning, interpretability,
  compute cost, Keras backends);
- :mod:`helpers.serving`: the model service (request format, model, batcher, app, process, load test);
- :mod:`helpers.lm`: the small language model and its OpenAI-compatible service;
- :mod:`helpers.book`: the machinery that turns chapters into a book (sources and their
  notebooks, runner, parameters, bilingual pages, site, status page, PDF, browser checks,
  Colab cell, Sphinx extensions).

Importing :mod:`helpers` imports no deep-learning framework; the framework is chosen by
:func:`helpers.env.setup` before Keras is first imported.
"""

import os as _os

# TensorFlow's C++ logging writes timestamped lines into cell outputs (oneDNN notice, CPU
# features, CUDA stubs); silence it before anything can import TensorFlow.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["__version__"]
__version__ = "0.1.0"
