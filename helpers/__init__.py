"""The package the chapters import; it imports no deep-learning framework (:func:`helpers.env.setup` does)."""

import os as _os

# TensorFlow's C++ logging writes timestamped lines into cell outputs: silence it before anything imports it
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
