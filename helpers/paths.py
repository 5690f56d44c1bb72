"""Where things are: the repository's root and its folders."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"  # the chapters (``NN_topic.md``) and their generated ``.ipynb``
PROFILES = ROOT / "profiles"
BOOK = ROOT / "book"  # the hand-written pages, the vocabulary and the glossary
BUILD = ROOT / "build"  # everything a run generates
EXECUTED = BUILD / "executed"  # the executed notebooks, a folder per profile
RESULTS = ROOT / "results"  # recorded runs from machines the build lacks


def python_env(**extra: str) -> dict[str, str]:
    """This process's environment (importing helpers quietened TensorFlow), the repository importable, and ``extra``."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}
