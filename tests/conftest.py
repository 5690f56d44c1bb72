"""Shared fixtures and the test markers.

Markers (registered in pyproject.toml), given here by what a test uses, so no test forgets one:
``notebooks`` (uses the chapters executed with the ci profile), ``site`` (uses the built site),
``unit`` (everything else); ``slow`` is set by hand on unit tests that start processes, servers or
kernels, train for more than a moment or read a real data set, and on everything that executes
notebooks or builds the site. ``make test-fast`` runs ``-m "unit and not slow"``, and
``_unit_tests_stay_inside`` below holds those tests to it (no network, no data, no process).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from ci_lane import CiLanes

from helpers.book import run
from helpers.paths import BUILD, EXECUTED, ROOT

CI_EXECUTED = EXECUTED / "ci"
#: where the session's background lanes put the sites, the PDFs and nbval's artifact copies
LANES_SCRATCH = BUILD / "test"
# Captured at import, before any fixture points MAAS_CACHE_DIR at a temporary directory.
_ORIGINAL_CACHE_ENV = os.environ.get("MAAS_CACHE_DIR")
#: fixtures that make a test a site test, a notebook test, or a slow unit test
SITE_FIXTURES = {"site", "book_pdfs"}
NOTEBOOK_FIXTURES = {"executed_ci", "ci_lanes"}
#: fixtures that make a unit test slow: a real data set (fetched by `make data`), a running service,
#: data-parallel training runs in their own processes
SLOW_FIXTURES = {"real_dir", "service", "runs"}


#: the chapters whose nbval checks are still running when the site has been built (the site is built
#: once the ci run ends; by then the nbval lane, one chapter behind, has about this many left): their
#: tests run after the site's, so that the site is checked while nbval finishes, not after it
NBVAL_AFTER_SITE = 3


def _stage(item) -> float:
    """The order tests run in: unit tests (and the JupyterLab test, which needs no ci run) while the
    background lanes execute the chapters, then what checks the ci run, then what checks the site
    (while the lane prints the PDFs and nbval checks the last chapters), then nbval's last chapters,
    then what checks the PDFs."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if "book_pdfs" in fixtures:
        return 3
    if fixtures & SITE_FIXTURES:
        return 2
    if fixtures & NOTEBOOK_FIXTURES:
        stem = getattr(getattr(item, "callspec", None), "params", {}).get("stem")
        return 2.5 if stem in list(run.notebook_paths())[-NBVAL_AFTER_SITE:] else 1
    return 0


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
            if fixtures & SLOW_FIXTURES:
                item.add_marker(pytest.mark.slow)
    items.sort(key=_stage)  # stable: within a stage, the files' order


def pytest_collection_finish(session):
    """Start the background lanes (tests/ci_lane.py) as soon as a selected test needs them."""
    config = session.config
    needed = any(set(getattr(item, "fixturenames", ())) & (SITE_FIXTURES | NOTEBOOK_FIXTURES) for item in session.items)
    if not needed or config.option.collectonly:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def emit(line: str) -> None:  # in the main thread, past the output capture (as capsys.disabled() does)
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    shutil.rmtree(LANES_SCRATCH, ignore_errors=True)
    _LANES["session"] = CiLanes(CI_EXECUTED, LANES_SCRATCH, emit)


def pytest_runtest_logfinish(nodeid, location):
    """Between two tests, show what the background lanes have said (a line per chapter and stage)."""
    if "session" in _LANES:
        _LANES["session"].drain()


#: the session's lanes, once started (a module-level holder: the hook above gets no config)
_LANES: dict[str, CiLanes] = {}


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def ci_lanes() -> CiLanes:
    """The session's background lanes: the ci run, nbval's checks, the sites and the PDFs."""
    return _LANES["session"]


@pytest.fixture(scope="session")
def executed_ci(ci_lanes) -> Path:
    """Every chapter executed with the ci profile through the real runner (once per session).

    An executed copy whose notebook, parameters and helpers' code are unchanged since it last
    succeeded is reused (the runner's fingerprint), so changing one chapter re-executes one
    chapter; on a clean clone every chapter runs.
    """
    return ci_lanes.executed_run()


@pytest.fixture(scope="session")
def site(ci_lanes) -> Path:
    """Both sites built from the ci-profile notebooks, as `make book` builds them, into a scratch
    folder; returns it (``en/``, ``zh/``, ``index.html``). Shared by test_book.py (the HTML) and
    test_site.py (links, PDFs, headless Chromium, accessibility)."""
    return ci_lanes.site()


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
    if missing:  # `make test` fetches every data set first: a missing one is a failure, never a silent skip
        pytest.fail(f"{what} is not cached in {directory} ({len(missing)} files missing); {how}")
    return directory


#: what importing a library may run to learn the platform (``platform.processor()`` runs ``uname -p``;
#: TensorFlow's first import calls it): not a process the test starts
_PLATFORM_QUERY = re.compile(r"^\[?'?uname'?,? ")


@pytest.fixture(autouse=True)
def _unit_tests_stay_inside(request, monkeypatch, tmp_path):
    """What ``make test-fast`` promises, enforced: a fast unit test (``unit and not slow``) reaches no
    network, reads no cached data set (the cache is an empty folder) and starts no process. A test
    that needs one of these is marked ``slow`` (it runs in ``make test``)."""
    if request.node.get_closest_marker("slow") or not request.node.get_closest_marker("unit"):
        return
    monkeypatch.setenv("MAAS_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9")  # refused at once, by npm too
    # (the background lanes' threads are not held to it: their processes started with the
    # environment of the session's start, tests/ci_lane.py)
    connect, popen, test_thread = socket.socket.connect, subprocess.Popen.__init__, threading.get_ident()

    def loopback_only(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if (
            host is not None
            and threading.get_ident() == test_thread
            and not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        ):
            raise AssertionError(f"a fast unit test tried to reach {address}: mark it slow")
        return connect(sock, address)

    def no_process(self, *args, **kwargs):
        command = args[0] if args else kwargs.get("args")
        if threading.get_ident() != test_thread or _PLATFORM_QUERY.match(str(command)):
            return popen(self, *args, **kwargs)
        raise AssertionError(f"a fast unit test started a process ({command}): mark it slow")

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A seeded CNN on float images in [0, 1], wrapped to take uint8 pixels, written to disk:
    ``(model, paths)`` as :func:`helpers.serving.export` returns them (test_serving, test_ray_serving)."""
    from helpers import env

    env.setup("tensorflow", seed=0)
    from helpers import serving

    model = serving.seeded_article_cnn()
    return model, serving.export(model, tmp_path_factory.mktemp("served"))


@pytest.fixture
def article_text() -> str:
    """The source article's Markdown, where it sits beside the repository (absent in a fresh clone: skip)."""
    path = ROOT.parent / "shared" / "article" / "source-article.zh.md"
    if not path.exists():
        pytest.skip(f"the article is not beside the repository ({path})")
    return path.read_text(encoding="utf-8")


def serve_npm_tarball(monkeypatch, tarball: Path, calls: list) -> None:
    """Make ``helpers.fetch.npm_tarball`` "download" ``tarball`` into its workdir, as the real one
    does, recording each ``(name, version, integrity)`` it is asked for in ``calls``."""
    from helpers import fetch

    def fake_npm_tarball(name, version, integrity, workdir):
        calls.append((name, version, integrity))
        return Path(shutil.copy(tarball, Path(workdir) / f"{name}-{version}.tgz"))

    monkeypatch.setattr(fetch, "npm_tarball", fake_npm_tarball)
