"""What one notebook leaves for another: saved models, result tables, and the values it glued.

The runner sets ``MAAS_ARTIFACT_DIR`` to ``build/executed/<profile>/artifacts`` (by hand in JupyterLab:
``build/artifacts/interactive``). Glued values are read back from ``summary.json`` as plain-text reprs;
a chapter not run has none, and callers say so instead of inventing one.
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

from helpers.paths import BUILD

ENV_VAR = "MAAS_ARTIFACT_DIR"


def artifact_dir() -> Path:
    """This run's artifact folder: ``$MAAS_ARTIFACT_DIR``; else ``artifacts/`` beside a ``summary.json`` in the
    working directory (nbval re-running an executed copy); else ``build/artifacts/interactive``."""
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    elif (Path.cwd() / "summary.json").exists():
        path = Path.cwd() / "artifacts"
    else:
        path = BUILD / "artifacts" / "interactive"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact(name: str) -> Path:
    """The path of one artifact, e.g. ``artifact("cifar10_model.keras")``."""
    return artifact_dir() / name


def run_dir() -> Path:
    """The folder of this profile run: where ``summary.json`` and ``artifacts/`` are (see above)."""
    return artifact_dir().parent


def summary() -> dict:
    """The whole ``summary.json`` of this profile run ({} when there is none yet)."""
    try:
        return json.loads((run_dir() / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def notebook_seconds() -> dict[str, float]:
    """Wall time (s) of every notebook that ran successfully in this profile run, by stem."""
    records = summary().get("notebooks", {})
    return {
        stem: float(r["seconds"]) for stem, r in sorted(records.items()) if r.get("status") == "ok" and "seconds" in r
    }


def number(text) -> float:
    """A glued plain-text repr as a float: ``"0.73"`` -> 0.73, ``"'167,562'"`` -> 167562.0; nan if not a number."""
    if text is None:
        return math.nan
    try:
        value = ast.literal_eval(text) if isinstance(text, str) else text
    except (ValueError, SyntaxError):
        value = text
    if isinstance(value, str):
        value = value.replace(",", "").replace("%", "").strip()
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def metrics(notebook: str) -> dict:
    """Every value ``notebook`` glued in this profile run ({} if it did not run or failed)."""
    record = summary().get("notebooks", {}).get(notebook, {})
    return record.get("metrics", {}) if record.get("status") == "ok" else {}


def metric(notebook: str, name: str) -> float:
    """One glued number of ``notebook`` in this profile run (nan when the chapter or value is missing)."""
    return number(metrics(notebook).get(name))


def text(notebook: str, name: str, missing: str = "") -> str:
    """One glued value of ``notebook`` as the string it showed (``missing`` when absent)."""
    raw = metrics(notebook).get(name)
    if raw is None:
        return missing
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return str(raw)
    if isinstance(value, float):  # a raw float glued for the prose's own formatting: 4 significant digits
        return f"{value:.4g}"
    return str(value)
