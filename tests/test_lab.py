"""JupyterLab as a reader meets it: a readers' edition opens unmodified, its MyST reads as on the
site (no raw role text), and it runs top to bottom with the ci profile's values, in each language.

JupyterLab runs on a free loopback port over a scratch folder holding one chapter's edition per
language (the ci profile's values injected after its parameters cell, as papermill does), and
headless Chromium drives it as a reader would: open the notebook, Run > Run All Cells. Screenshots
go to build/screenshots/lab-<lang>.png.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import nbformat
import pytest

from helpers import processes
from helpers.book import bilingual, browser, notebooks, run
from helpers.paths import BUILD

pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(600)]
CHAPTER = "large_models"
TOKEN = "maas-lab-test"
#: MyST that a notebook front end would show as raw text
RAW_MYST = re.compile(r"\{(cite|numref|ref|doc|eq|glue:text|glue)\}`|^\([\w-]+\)=$|```\{|glued\(", re.M)


def _edition_with_ci_values(lang: str, folder) -> str:
    [planned] = run.plan("ci", [CHAPTER], [], folder / "unused")
    source = next(s for s in notebooks.sources() if run.chapter_id(s) == CHAPTER)
    nb = nbformat.read(notebooks.pair_of(source, lang), as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = "\n".join(f"{k} = {v!r}" for k, v in planned.parameters.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    name = f"{lang}-{source.stem}.ipynb"
    nbformat.write(nb, folder / name)
    return name


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 over a scratch folder with both editions; yields (url, names)."""
    folder = tmp_path_factory.mktemp("lab")
    names = {lang: _edition_with_ci_values(lang, folder) for lang in bilingual.LANGS}
    settings = tmp_path_factory.mktemp("lab-settings") / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # every cell rendered, not only those in view (JupyterLab's default windowing leaves cells out of
    # view unrendered, and the checks below read every markdown cell)
    tracker = settings.parent.parent / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    [port] = processes.free_ports(1)
    server = processes.Child(
        processes.module(
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--allow-root",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={folder}",
            f"--LabApp.workspaces_dir={tmp_path_factory.mktemp('lab-workspaces')}",  # no earlier session's tabs
        ),
        stream="both",
        env={"JUPYTERLAB_SETTINGS_DIR": str(settings.parent.parent)},
        name="JupyterLab",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.process.poll() is not None:
                    pytest.fail(f"JupyterLab did not start:\n{server.tail(30)}")
                time.sleep(0.5)
        yield url, names
    finally:
        server.stop(timeout=20)


@pytest.fixture(scope="module")
def reader():
    with browser.chromium() as context:
        yield context


def _rendered_prose(page) -> str:
    # the notebook in view only (another tab's cells would be read too)
    return page.evaluate(
        "[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell .myst')]"
        ".map(e => e.innerText).join('\\n')"
    )


@pytest.mark.parametrize("lang", bilingual.LANGS)
def test_an_edition_reads_and_runs_in_jupyterlab(lab, reader, lang):
    url, names = lab
    start = time.perf_counter()
    page = reader.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{url}/lab/workspaces/test-{lang}/tree/{names[lang]}?token={TOKEN}&reset", wait_until="load")
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownCell .myst", timeout=120_000)
    page.wait_for_function("document.body.innerText.includes('| Idle')", timeout=120_000)  # kernel ready
    time.sleep(2)
    assert not page.evaluate("!!document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')"), (
        "opening the chapter marked it modified"
    )
    prose = _rendered_prose(page)
    assert prose and not [m.group(0) for m in RAW_MYST.finditer(prose) if m.group(0) != "glued("], (
        "MyST shown as raw text"
    )

    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item:has-text('Run All Cells')")
    page.wait_for_function(
        """() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent))
            && document.body.innerText.includes('| Idle'); }""",
        timeout=300_000,
    )
    errors = page.evaluate(
        "[...document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.error\"]')].map(e => e.innerText)"
    )
    assert not errors, errors
    # each markdown cell's glued values come back from the kernel after the code above it has run:
    # the last ones may still be on their way when the kernel first shows idle
    deadline = time.monotonic() + 60
    while True:
        prose = _rendered_prose(page)
        raw = [prose[max(0, m.start() - 60) : m.end() + 40] for m in RAW_MYST.finditer(prose)]
        if not raw or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not raw, f"raw MyST after running: {raw[:5]}"
    shots = BUILD / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('.jp-WindowedPanel-outer, .jp-Notebook').scrollTop = 0")
    page.screenshot(path=str(shots / f"lab-{lang}.png"))
    print(f"{lang}: opened, ran and checked in {time.perf_counter() - start:.0f} s")
    page.close()
