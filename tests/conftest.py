"""Shared fixtures: the repository root and the notebooks executed once with the ci profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_EXECUTED = ROOT / "build" / "executed" / "ci"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def executed_ci() -> Path:
    """Execute every notebook with the ci profile (once per test session) through the real runner."""
    env = {**os.environ, "MAAS_NO_PROGRESS": "1"}
    result = subprocess.run([sys.executable, "-m", "helpers.run", "--profile", "ci", "--force"], cwd=ROOT,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"ci run failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    summary = json.loads((CI_EXECUTED / "summary.json").read_text())
    assert summary["profile"] == "ci"
    return CI_EXECUTED
