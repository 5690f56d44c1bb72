"""The chapters' sources: MyST notebooks paired with generated .ipynb files, prose in en/zh twins,
numbered once, and cross-referenced rather than numbered by hand."""

from __future__ import annotations

import difflib
import re
import shutil

import pytest
import yaml

from helpers.book import bilingual, notebooks, run
from helpers.paths import NOTEBOOKS, ROOT

SOURCES = notebooks.sources()
GLUE = re.compile(r"\{glue:[a-z]+\}`([A-Za-z0-9_]+)")
CITE = re.compile(r"\{cite[a-z:]*\}`([^`]+)`")
REF = re.compile(r"\{(?:ref|numref|doc)\}`(?:[^`<]*<)?([^`>]+)>?`")
LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$", re.M)
HEADING = re.compile(r"^(#{1,6}) ", re.M)
#: a chapter named by a typed number: "chapter 7", "Chapters 05", "第 5 章", "第07章"
TYPED_CHAPTER = re.compile(r"\b[Cc]hapters? \d+\b|第\s*\d+\s*章")


def _prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code (command lines may hold numbers)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _neutral(names) -> set[str]:
    """Names with their language suffix removed (``cifar10-cnn-en`` -> ``cifar10-cnn``)."""
    return {re.sub(r"[-_](en|zh)$", "", n) for n in names}


def _pairs(nb):
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and bilingual.language_of(cell) == "en":
            yield i, cell, cells[i + 1] if i + 1 < len(cells) else None


def test_every_source_has_its_generated_notebook_in_sync():
    assert SOURCES, "no chapter sources in notebooks/"
    assert not notebooks.stale(), "run `make notebooks`: a generated .ipynb differs from its .md"
    assert not notebooks.orphans(), "an .ipynb in notebooks/ has no .md source"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_parameters_cell_and_no_outputs(source):
    nb = notebooks.read_source(source)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    bilingual.check_tags(nb, source.stem)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_prose_comes_in_english_chinese_twins(source):
    """Each English cell is followed by its Chinese twin, with the same headings, glued values,
    citations, labels and cross-references."""
    nb = notebooks.read_source(source)
    langs = [bilingual.language_of(c) for c in nb.cells if c.cell_type == "markdown"]
    assert langs.count("en") == langs.count("zh")
    for i, en, zh in _pairs(nb):
        where = f"{source.name}, cell {i}: {en.source[:50]!r}"
        assert zh is not None and zh.cell_type == "markdown" and bilingual.language_of(zh) == "zh", (
            f"{where} is not followed by its Chinese twin"
        )
        assert HEADING.findall(en.source) == HEADING.findall(zh.source), f"{where}: heading levels differ"
        for pattern, what in (
            (GLUE, "glued values"),
            (CITE, "citations"),
            (REF, "cross-references"),
            (LABEL, "labels"),
        ):
            assert _neutral(pattern.findall(en.source)) == _neutral(pattern.findall(zh.source)), (
                f"{where}: {what} differ"
            )


def test_chapters_are_numbered_once_and_match_the_table_of_contents():
    numbers = [int(notebooks.SOURCE.fullmatch(p.name)["number"]) for p in SOURCES]
    assert numbers == list(range(1, len(SOURCES) + 1)), f"chapter numbers must be 01, 02, ... once each: {numbers}"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    [part] = [p for p in toc["parts"] if p.get("numbered")]  # numbered in the navigation of both sites
    assert [c["file"] for c in part["chapters"]] == [run.chapter_id(p) for p in SOURCES]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_other_chapters_are_cross_referenced_not_numbered_by_hand(source):
    nb = notebooks.read_source(source)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            typed = TYPED_CHAPTER.findall(_prose(cell.source))
            assert not typed, f"{source.name}: {typed} in {cell.source[:80]!r}; use {{numref}} to a chapter label"


def test_each_chapter_has_a_label_in_each_language():
    for source in SOURCES:
        text = source.read_text(encoding="utf-8")
        labels = LABEL.findall(text)
        assert any(label.endswith("-en") for label in labels) and any(label.endswith("-zh") for label in labels), (
            source.name
        )


def test_a_one_sentence_edit_changes_one_line_of_each_file(tmp_path):
    """Text first: a sentence changed in the prose is one changed line in the .md and one changed
    cell (source and id) in the generated .ipynb."""
    source = SOURCES[0]
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(source, work / source.name)
    before = notebooks.render(notebooks.generate(work / source.name))
    text = (work / source.name).read_text(encoding="utf-8")
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("Sections 1 and 2.1")
        or (len(ln) > 40 and not ln.startswith(("#", "(", "`", "|", "+", "-", ":")))
    )
    (work / source.name).write_text(text.replace(line, line + " One more sentence.", 1), encoding="utf-8")
    after = notebooks.render(notebooks.generate(work / source.name))

    def changed(a: str, b: str) -> int:
        return sum(
            1
            for d in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if d[:1] in "+-" and not d.startswith(("+++", "---"))
        )

    assert changed(text, (work / source.name).read_text(encoding="utf-8")) == 2  # one line out, one in
    assert changed(before, after) <= 4  # the cell's id and the one source line


def test_generated_notebooks_live_beside_their_sources():
    for source in SOURCES:
        assert notebooks.pair_of(source).parent == NOTEBOOKS
