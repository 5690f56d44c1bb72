"""One place for what one notebook leaves for another: saved models, result tables.

The runner (``python -m helpers.run``) sets ``MAAS_ARTIFACT_DIR`` to
``build/executed/<profile>/artifacts`` before it starts a kernel, so notebooks executed with the
same profile see each other's outputs (nbval, re-executing an executed copy from its folder, finds
the same run). Opened by hand in JupyterLab, a notebook uses ``build/artifacts/interactive``. ``summary_metrics`` reads the values another notebook glued in
the same profile's run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "MAAS_ARTIFACT_DIR"


def artifact_dir() -> Path:
    """The folder for this run's artifacts (created on first use).

    ``$MAAS_ARTIFACT_DIR`` when the runner set it; else, when the working directory holds a
    ``summary.json`` (nbval re-executes an executed copy from ``build/executed/<profile>/``), that
    run's ``artifacts/``; else ``build/artifacts/interactive``.
    """
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    elif (Path.cwd() / "summary.json").exists():
        path = Path.cwd() / "artifacts"
    else:
        path = ROOT / "build" / "artifacts" / "interactive"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact(name: str) -> Path:
    """The path of one artifact, e.g. ``artifact("cifar10_cnn.keras")``."""
    return artifact_dir() / name


def summary_metrics(notebook: str) -> dict:
    """The glued values of ``notebook`` (stem) from the same profile's ``summary.json``; {} if none."""
    summary = artifact_dir().parent / "summary.json"
    if not summary.exists():
        return {}
    try:
        record = json.loads(summary.read_text()).get("notebooks", {}).get(notebook, {})
    except json.JSONDecodeError:
        return {}
    return record.get("metrics", {}) if record.get("status") == "ok" else {}
