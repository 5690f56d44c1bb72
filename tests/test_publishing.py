"""Publishing without a browser: the Colab bootstrap cell, the figure style, the status page, the
GitHub Actions workflow and the Makefile targets it calls."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import nbformat
import pytest
import yaml

from helpers.book import colab_cell, run
from helpers.book import site as book_site


@pytest.mark.parametrize("path", sorted(run.NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_starts_with_the_current_colab_cell(path):
    """The first code cell is the bootstrap cell for the repository in _config.yml, before the
    parameters cell (`make notebooks` writes it into every generated notebook)."""
    nb = nbformat.read(path, as_version=4)
    assert colab_cell.is_current(nb), "run `make notebooks`"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[1].metadata.get("tags", []), "the parameters cell comes right after it"
    assert sum(colab_cell.TAG in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert "remove-cell" in code[0].metadata["tags"], "the book's pages do not show it"


@pytest.mark.slow
def test_colab_cell_is_silent_outside_colab(tmp_path):
    """Outside Colab the cell does nothing: no output, no clone, no install."""
    result = subprocess.run(
        [sys.executable, "-c", colab_cell.cell_source()], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_colab_cell_clones_the_configured_repository(root):
    url, branch = colab_cell.repository(root / "_config.yml")
    source = colab_cell.cell_source(root / "_config.yml")
    assert f'"{url}.git"' in source and f'"{branch}"' in source and '"google.colab" in sys.modules' in source
    compile(source, "colab_cell", "exec")


def test_colab_cell_is_inserted_once_and_refreshed(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title"),
            nbformat.v4.new_code_cell("epochs: int = 1  # epochs", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(epochs)"),
        ]
    )
    assert colab_cell.apply(nb, "old = 1") and [c.source for c in nb.cells][:2] == ["# Title", "old = 1"]
    assert colab_cell.apply(nb)  # a newer cell replaces the old one in place
    assert not colab_cell.apply(nb)  # and a second run changes nothing
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
    assert colab_cell.is_current(nb) and "parameters" in nb.cells[2].metadata["tags"]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert colab_cell.is_current(nbformat.read(path, as_version=4))


def test_executed_notebooks_keep_the_colab_cell_without_output(executed_ci):
    for path in sorted(executed_ci.glob("*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert colab_cell.TAG in first.metadata.get("tags", []) and not first.outputs, path.name


def test_figures_render_chinese_on_white(tmp_path):
    """The book's style: Chinese glyphs come from a CJK font (no missing-glyph warnings), and
    figures are opaque white, so they stay readable in the site's dark mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from helpers import plots

    assert plots.cjk_font(), "no CJK font: `make setup` installs fonts-noto-cjk"
    assert plt.rcParams["savefig.facecolor"] == "white" and not plt.rcParams["savefig.transparent"]
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.set_title("测试准确率 test accuracy")
    ax.plot([0, 1], [0, 1], label="训练")
    ax.legend()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would be raised here
        fig.savefig(tmp_path / "zh.png")
    plt.close(fig)
    image = plt.imread(tmp_path / "zh.png")
    assert image.shape[2] == 4 and np.all(image[..., 3] == 1), "opaque"
    assert np.allclose(image[0, 0, :3], 1), "white background"


def test_status_page_without_a_summary(tmp_path):
    (tmp_path / "executed").mkdir()
    for lang, words in (("en", "No run summary"), ("zh", "未找到运行摘要")):
        page = book_site.write_status(tmp_path / "executed", tmp_path / f"status-{lang}.md", lang, [])
        assert words in page.read_text(encoding="utf-8")


def test_status_page_glossary_and_references_are_in_the_toc(root):
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert {"status", "glossary", "references"} <= set(files)
    for lang in ("en", "zh"):
        assert (root / "book" / lang / "index.md").exists() and (root / "book" / lang / "references.md").exists()


def _makefile_targets(root) -> set[str]:
    text = (root / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M)}


def test_workflow_is_well_formed_and_calls_existing_make_targets(root):
    path = root / ".github" / "workflows" / "book.yml"
    workflow = yaml.safe_load(path.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    assert "overrides" in triggers["workflow_dispatch"]["inputs"]
    jobs = workflow["jobs"]
    assert {"test", "book"} <= set(jobs)
    matrix = jobs["book"]["strategy"]["matrix"]["profile"]
    profiles = re.findall(r"\"(\w+)\"", matrix)
    assert {"ci", "cpu"} <= set(profiles) and set(profiles) <= set(run.available_profiles())
    targets = _makefile_targets(root)
    called = set()
    for job in jobs.values():
        for step in job.get("steps", []):
            assert "uses" in step or "run" in step, step
            script = re.sub(r"\$\{\{.*?\}\}", "EXPR", step.get("run", ""))  # Actions expressions
            for command in re.findall(r"\bmake\s+([^\n;&|]*)", script):
                words = [w for w in command.split() if "=" not in w and not w.startswith("-")]
                assert words, f"`make {command}` names no target"
                called.update(words)
    assert called and called <= targets, f"workflow calls make targets missing from the Makefile: {called - targets}"
    assert {"test", "book"} <= called


def test_makefile_sets_up_browser_fonts_and_pdfs(root):
    text = (root / "Makefile").read_text()
    assert {"system", "pdf", "book", "test"} <= _makefile_targets(root)
    assert re.search(r"^book:.*\bsystem\b", text, re.M) and re.search(r"^test:.*\bsystem\b", text, re.M)
    assert "chromium" in text and "fonts-noto-cjk" in text and "helpers.book.pdf" in text
