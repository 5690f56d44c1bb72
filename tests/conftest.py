"""Shared fixtures and the test markers.

Markers (registered in pyproject.toml), given here by what a test uses, so no test forgets one:
``notebooks`` (uses the chapters executed with the ci profile), ``site`` (uses the built site),
``unit`` (everything else); ``slow`` is set by hand on unit tests that start processes or train,
and on everything that executes notebooks or builds the site. ``make test-fast`` runs
``-m "unit and not slow"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import EXECUTED, ROOT

CI_EXECUTED = EXECUTED / "ci"
# Captured at import, before any fixture points MAAS_CACHE_DIR at a temporary directory.
_ORIGINAL_CACHE_ENV = os.environ.get("MAAS_CACHE_DIR")
#: fixtures that make a test a site test, a notebook test, or a slow unit test
SITE_FIXTURES = {"site", "book_pdfs"}
NOTEBOOK_FIXTURES = {"executed_ci"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SITE_FIXTURES:
            item.add_marker(pytest.mark.site)
            item.add_marker(pytest.mark.slow)
        elif fixtures & NOTEBOOK_FIXTURES or item.get_closest_marker("notebooks"):
            item.add_marker(pytest.mark.notebooks)
            item.add_marker(pytest.mark.slow)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def executed_ci() -> Path:
    """Every chapter executed with the ci profile through the real runner (once per session).

    An executed copy whose notebook, parameters and helpers' code are unchanged since it last
    succeeded is reused (the runner's fingerprint), so changing one chapter re-executes one
    chapter; on a clean clone every chapter runs.
    """
    env = {**os.environ, "MAAS_NO_PROGRESS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "helpers.book.run", "--profile", "ci"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, f"ci run failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    summary = json.loads((CI_EXECUTED / "summary.json").read_text())
    assert summary["profile"] == "ci"
    return CI_EXECUTED


@pytest.fixture(scope="session")
def site_projects(tmp_path_factory) -> Path:
    """Where the session's two site projects are assembled (build/site/ for `make book`)."""
    return tmp_path_factory.mktemp("site-projects")


@pytest.fixture(scope="session")
def site(executed_ci, site_projects, tmp_path_factory) -> Path:
    """Both sites built from the ci-profile notebooks, as `make book` builds them, into a scratch
    folder; returns it (``en/``, ``zh/``, ``index.html``). Shared by test_book.py (the HTML) and
    test_site.py (links, PDFs, headless Chromium, accessibility)."""
    from helpers.book import site as book_site

    return book_site.build(executed_ci, out=tmp_path_factory.mktemp("html") / "html", work=site_projects)


def real_cache(data_dir, names, what: str, how: str) -> Path:
    """The real cache of a data set, found with the environment the tests were started with.

    ``data_dir`` is the loader's ``data_dir`` function and ``names`` the files it must hold; the
    test is skipped, saying ``how`` to cache ``what``, when any of them is missing. Shared by the
    CIFAR-10 and the Tang-poem tests.
    """
    with pytest.MonkeyPatch.context() as mp:
        if _ORIGINAL_CACHE_ENV is None:
            mp.delenv("MAAS_CACHE_DIR", raising=False)
        else:
            mp.setenv("MAAS_CACHE_DIR", _ORIGINAL_CACHE_ENV)
        directory = data_dir()
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        pytest.skip(f"{what} is not cached in {directory} ({len(missing)} files missing); {how}")
    return directory
