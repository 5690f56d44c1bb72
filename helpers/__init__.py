"""Helpers for the course "AI large models as a service" (人工智能大模型即服务).

One obvious place for each thing, in the manner of d2l's ``d2l`` package:

- :mod:`helpers.fetch`     verified downloads (npm registry tarballs, plain URLs), with progress
- :mod:`helpers.data`      CIFAR-10: fetch, verify, cache, load, subset
- :mod:`helpers.assets`    offline web assets for the book (MathJax)
- :mod:`helpers.params`    parameter schemas and validation for every notebook
- :mod:`helpers.env`       Keras backend selection, seeds, hardware and version reports
- :mod:`helpers.cnn`       the article's CNN, its corrected version, training and evaluation
- :mod:`helpers.plots`     the figures the chapters draw
- :mod:`helpers.large_models` the cited table of landmark models; compute, memory and serving estimates
- :mod:`helpers.servitization` one job run serially, on a process pool and on local HTTP worker services
- :mod:`helpers.run`       the papermill runner (``python -m helpers.run``)
- :mod:`helpers.bilingual` splits one executed notebook into English and Chinese pages

Importing :mod:`helpers` imports no deep-learning framework; the framework is chosen by
:func:`helpers.env.setup` before Keras is first imported.
"""

import os as _os

# TensorFlow's C++ logging writes timestamped lines into cell outputs (oneDNN notice, CPU
# features, CUDA stubs); silence it before anything can import TensorFlow.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["__version__"]
__version__ = "0.1.0"
