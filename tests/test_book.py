"""The website: it builds from the executed notebooks with warnings as errors, loads nothing from
outside, carries the glued numbers in both languages, and has the same chapters in each."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers.book import bilingual, run

GLUE_REF = re.compile(r"\{glue:text\}`([A-Za-z0-9_]+)(?::([^`]+))?`")


# The `site` fixture (the book built once, in a scratch copy) is in conftest.py: the browser
# tests in test_site.py check the same build.


class _Refs(HTMLParser):
    """Collects every URL a page would load (scripts, styles, images, frames, media)."""

    def __init__(self):
        super().__init__()
        self.loads, self.links, self.imgs = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel") not in ("canonical",):
            self.loads.append(a["href"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))


def parse(path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(path.read_text(encoding="utf-8"))
    return refs


def chapters(root: Path, lang: str) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    caption = bilingual.LABELS[lang]
    [part] = [p for p in toc["parts"] if p["caption"] == caption]
    return [Path(c["file"]).name for c in part["chapters"]]


def test_both_languages_have_the_same_chapters(root):
    assert chapters(root, "en") == chapters(root, "zh")
    assert set(chapters(root, "en")) == set(run.notebook_paths())


def test_site_loads_nothing_from_outside(site):
    pages = list(site.rglob("*.html"))
    assert pages
    for page in pages:
        outside = [u for u in parse(page).loads if re.match(r"^(https?:)?//", u)]
        assert not outside, f"{page.relative_to(site)} loads {outside}"
    for css in site.rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(errors="ignore")), css
        assert not re.search(r"@import\s+['\"]?(url\()?\s*['\"]?(https?:)?//", css.read_text(errors="ignore")), css


def test_maths_is_served_locally(site):
    page = site / "book" / "en" / "cifar10_cnn.html"
    scripts = [u for u in parse(page).loads if "mathjax" in u.lower()]
    assert scripts and all((page.parent / u.split("?")[0]).resolve().exists() for u in scripts), scripts


@pytest.mark.parametrize("stem", sorted(run.notebook_paths()))
def test_glued_numbers_appear_in_both_languages(site, executed_ci, stem):
    values = run.glued_values(executed_ci / f"{stem}.ipynb")
    source = nbformat.read(run.notebook_paths()[stem], as_version=4)
    refs = {lang: set() for lang in bilingual.LANGS}
    for cell in source.cells:
        if cell.cell_type == "markdown":
            refs[bilingual.language_of(cell)] |= set(GLUE_REF.findall(cell.source))
    # a value in words is glued once per language, as name_en and name_zh: they count as one
    paired = {lang: {(re.sub(r"_(en|zh)$", "", name), spec) for name, spec in refs[lang]} for lang in refs}
    assert refs["en"] and paired["en"] == paired["zh"], "both languages paste the same glued values"
    for lang in bilingual.LANGS:
        html = (site / "book" / lang / f"{stem}.html").read_text(encoding="utf-8")
        for name, spec in refs[lang]:
            text = values[name]
            value = text.strip("'\"") if text.startswith(("'", '"')) else text
            shown = format(float(value), spec) if spec else value
            assert shown in html, f"{lang}/{stem}: glued {name} ({shown}) is not on the page"


@pytest.mark.parametrize("stem", sorted(run.notebook_paths()))
def test_language_pages_are_twins(site, stem):
    en, zh = (parse(site / "book" / lang / f"{stem}.html") for lang in bilingual.LANGS)
    assert len(en.imgs) == len(zh.imgs) > 0, "same figures in both languages"
    assert f"../zh/{stem}.html" in en.links and f"../en/{stem}.html" in zh.links, "language switch"


def test_bibliography_is_rendered(site):
    html = (site / "book" / "references.html").read_text(encoding="utf-8")
    assert "Krizhevsky" in html and "learning multiple layers of features" in html.lower()


def test_chinese_pages_declare_their_language(site):
    for stem in run.notebook_paths():
        assert '<html lang="zh-CN"' in (site / "book" / "zh" / f"{stem}.html").read_text(encoding="utf-8")
        assert '<html lang="en"' in (site / "book" / "en" / f"{stem}.html").read_text(encoding="utf-8")


def test_landing_page_lists_every_chapter_in_both_languages(site, root):
    """The chapter lists on the landing page come from _toc.yml, so no chapter can be missing."""
    links = set(parse(site / "book" / "index.html").links)
    for lang in bilingual.LANGS:
        for name in chapters(root, lang):
            assert f"{lang}/{name}.html" in links, f"the landing page does not link {lang}/{name}"


def test_cross_references_to_chapters_show_their_numbers(site):
    """``{numref}`chapter %s <serving-en>` `` renders as "chapter 7" (the number from the table of
    contents), linked to that chapter, in both languages."""
    en = (site / "book" / "en" / "faq.html").read_text(encoding="utf-8")
    zh = (site / "book" / "zh" / "faq.html").read_text(encoding="utf-8")
    number = run.notebook_paths().__len__() and list(run.notebook_paths()).index("serving") + 1
    assert re.search(rf'href="serving.html#[^"]*"[^>]*><span[^>]*>chapter {number}</span>', en), "en numref"
    assert re.search(rf'href="serving.html#[^"]*"[^>]*><span[^>]*>第 {number} 章</span>', zh), "zh numref"
