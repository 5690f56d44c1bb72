"""What one notebook leaves for another: saved models, result tables, its glued values (``summary.json``'s reprs)."""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

from helpers.paths import BUILD

ENV_VAR = "MAAS_ARTIFACT_DIR"


def artifact_dir() -> Path:
    """``$MAAS_ARTIFACT_DIR``; else ``artifacts/`` beside a ``summary.json`` here (nbval); else an interactive one."""
    here = Path.cwd() / "artifacts" if (Path.cwd() / "summary.json").exists() else BUILD / "artifacts" / "interactive"
    path = Path(os.environ.get(ENV_VAR) or here)
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact(name: str) -> Path:
    """The path of one artifact, e.g. ``artifact("cifar10_model.keras")``."""
    return artifact_dir() / name


def run_dir() -> Path:
    """The folder of this profile run: where ``summary.json`` and ``artifacts/`` are."""
    return artifact_dir().parent


def summary() -> dict:
    """The whole ``summary.json`` of this profile run ({} when there is none yet)."""
    try:
        return json.loads((run_dir() / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def notebook_seconds() -> dict[str, float]:
    """Wall time (s) of every notebook that ran successfully in this profile run, by stem."""
    records = sorted(summary().get("notebooks", {}).items())
    return {stem: float(r["seconds"]) for stem, r in records if r.get("status") == "ok" and "seconds" in r}


def literal(raw):
    """A glued plain-text repr as the Python value it shows (the text itself if it is not a literal)."""
    try:
        return ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        return raw


def number(text) -> float:
    """A glued plain-text repr as a float: ``"0.73"`` -> 0.73, ``"'167,562'"`` -> 167562.0; nan if not a number."""
    value = literal(text)
    try:
        return float(value.replace(",", "").replace("%", "").strip() if isinstance(value, str) else value)
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
    """One glued value of ``notebook`` as the string it showed (a raw float to 4 digits; ``missing`` if absent)."""
    if (raw := metrics(notebook).get(name)) is None:
        return missing
    value = literal(raw)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
