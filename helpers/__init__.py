"""The package the chapters of "AI large models as a service" (人工智能大模型即服务) import.

Top-level modules do one job each (data, fetch, models, training, timing, plots, processes, artifacts,
env, paths); :mod:`helpers.topics` holds one module per chapter topic, :mod:`helpers.serving` the model
service, :mod:`helpers.lm` the small language model, :mod:`helpers.book` the book machinery. Importing
:mod:`helpers` imports no deep-learning framework (:func:`helpers.env.setup` chooses it).
"""

import os as _os

# TensorFlow's C++ logging writes timestamped lines into cell outputs (oneDNN notice, CPU
# features, CUDA stubs); silence it before anything can import TensorFlow.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["__version__"]
__version__ = "0.1.0"
