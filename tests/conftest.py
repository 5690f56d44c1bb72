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


@pytest.fixture(scope="session")
def site(executed_ci, root, tmp_path_factory) -> Path:
    """Build the book in a scratch copy, from the ci-profile notebooks; return the html folder.

    Built once per session and shared by test_book.py (the HTML) and test_site.py (links, PDFs,
    headless Chromium, accessibility)."""
    import shutil

    from helpers import bilingual

    book = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(root / name, book / name)
    shutil.copytree(root / "book", book / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", "status.md", "pdf_cover.md"))
    assert (book / "book" / "_static" / "mathjax" / "tex-chtml.js").exists(), "run `make assets` first"
    bilingual.publish(executed_ci, book / "book")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(book), "-W", "-n", "--keep-going"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    return book / "_build" / "html"
