"""The website: it builds from the executed notebooks with warnings as errors, loads nothing from
outside, carries the glued numbers in both languages, and has the same chapters in each."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import zh_prose

from helpers.book import bilingual, glossary, run
from helpers.book import site as book_site

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


def page(site: Path, lang: str, name: str) -> Path:
    return site / lang / f"{name}.html"


def text_of(path: Path) -> str:
    """What a reader reads on a page: prose, tables, output; no code, maths or citations."""
    return zh_prose.prose_text(path.read_text(encoding="utf-8"))


def test_both_sites_have_the_same_pages(site):
    en = sorted(p.relative_to(site / "en") for p in (site / "en").glob("*.html"))
    zh = sorted(p.relative_to(site / "zh") for p in (site / "zh").glob("*.html"))
    assert en == zh and len(en) >= len(run.notebook_paths()) + 4
    assert book_site.chapters() == list(run.notebook_paths()), "the table of contents lists every chapter, in order"


def test_site_loads_nothing_from_outside(site):
    pages = list(site.rglob("*.html"))
    assert pages
    for path in pages:
        outside = [u for u in parse(path).loads if re.match(r"^(https?:)?//", u)]
        assert not outside, f"{path.relative_to(site)} loads {outside}"
    for css in site.rglob("*.css"):
        assert not re.search(r"url\(\s*['\"]?(https?:)?//", css.read_text(errors="ignore")), css
        assert not re.search(r"@import\s+['\"]?(url\()?\s*['\"]?(https?:)?//", css.read_text(errors="ignore")), css


def test_maths_is_served_locally(site):
    for lang in bilingual.LANGS:
        path = page(site, lang, "cifar10_cnn")
        scripts = [u for u in parse(path).loads if "mathjax" in u.lower()]
        assert scripts and all((path.parent / u.split("?")[0]).resolve().exists() for u in scripts), scripts


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
        # the page's text: a glued sentence may carry glossary links, and Sphinx curls its quotes
        html = _plain(re.sub(r"<[^>]+>", "", page(site, lang, stem).read_text(encoding="utf-8")))
        for name, spec in refs[lang]:
            text = values[name]
            value = text.strip("'\"") if text.startswith(("'", '"')) else text
            shown = _plain(format(float(value), spec) if spec else value)
            assert shown in html, f"{lang}/{stem}: glued {name} ({shown}) is not on the page"


def _plain(text: str) -> str:
    """Text with HTML entities resolved and curly quotes made straight (as Sphinx's smartquotes undo)."""
    return html_lib.unescape(text).translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'}))


@pytest.mark.parametrize("stem", sorted(run.notebook_paths()))
def test_language_pages_are_twins(site, stem):
    en, zh = (parse(page(site, lang, stem)) for lang in bilingual.LANGS)
    assert len(en.imgs) == len(zh.imgs) > 0, "same figures in both languages"
    assert f"../zh/{stem}.html" in en.links and f"../en/{stem}.html" in zh.links, "language switch"


def test_every_page_links_its_twin(site):
    for lang, other in (("en", "zh"), ("zh", "en")):
        for path in (site / lang).glob("*.html"):
            if path.name in ("search.html", "genindex.html"):
                continue
            assert f"../{other}/{path.name}" in parse(path).links, f"{lang}/{path.name} has no language switch"


def test_bibliography_is_rendered(site):
    for lang in bilingual.LANGS:
        html = page(site, lang, "references").read_text(encoding="utf-8")
        assert "Krizhevsky" in html and "learning multiple layers of features" in html.lower()


def test_pages_declare_their_language(site):
    for path in (site / "zh").glob("*.html"):
        assert '<html lang="zh-CN"' in path.read_text(encoding="utf-8"), path.name
    for path in (site / "en").glob("*.html"):
        assert '<html lang="en"' in path.read_text(encoding="utf-8"), path.name


def test_the_themes_words_are_in_the_sites_language(site):
    """Sphinx's ``language`` is set per site, so the theme's own words are translated."""
    zh = page(site, "zh", "cifar10_cnn").read_text(encoding="utf-8")
    en = page(site, "en", "cifar10_cnn").read_text(encoding="utf-8")
    assert "搜索" in zh and "Search" in en
    assert ">Search<" not in zh and ">Contents<" not in zh


def test_each_site_searches_only_its_own_language(site):
    """One search index per site: the Chinese index holds the Chinese titles and no English one."""
    import json as _json

    indexes = {}
    for lang in bilingual.LANGS:
        raw = (site / lang / "searchindex.js").read_text(encoding="utf-8")
        indexes[lang] = _json.loads(raw[raw.index("(") + 1 : raw.rindex(")")])
    assert all(re.search(r"[\u4e00-\u9fff]", t) for t in indexes["zh"]["titles"])
    assert not any(re.search(r"[\u4e00-\u9fff]", t) for t in indexes["en"]["titles"])


def test_landing_page_offers_both_sites_and_lists_every_chapter(site):
    """The chapter lists come from _toc.yml and the executed chapters, never typed by hand."""
    links = set(parse(site / "index.html").links)
    assert {"en/index.html", "zh/index.html"} <= links
    for lang in bilingual.LANGS:
        for name in book_site.chapters():
            assert f"{lang}/{name}.html" in links, f"the landing page does not link {lang}/{name}"
            assert f"{name}.html" in parse(page(site, lang, "index")).links, f"{lang}/index misses {name}"


def test_cross_references_to_chapters_show_their_numbers(site):
    """``{numref}`chapter %s <serving-en>` `` renders as "chapter 7" (the number from the table of
    contents), linked to that chapter, in both languages."""
    en = page(site, "en", "faq").read_text(encoding="utf-8")
    zh = page(site, "zh", "faq").read_text(encoding="utf-8")
    number = list(run.notebook_paths()).index("serving") + 1
    assert re.search(rf'href="serving.html#[^"]*"[^>]*><span[^>]*>chapter {number}</span>', en), "en numref"
    assert re.search(rf'href="serving.html#[^"]*"[^>]*><span[^>]*>第 {number} 章</span>', zh), "zh numref"


# ------------------------------------------------------------------ one term per idea, in Chinese


def test_glossary_page_defines_every_term_in_each_language(site):
    terms = glossary.load()
    assert len(terms) >= 40
    for lang in bilingual.LANGS:
        text = text_of(page(site, lang, "glossary"))
        missing = [t.name(lang) for t in terms if t.name(lang) not in text]
        assert not missing, f"{lang} glossary lacks {missing}"


def test_first_use_of_a_term_links_to_the_glossary(site):
    linked = {lang: 0 for lang in bilingual.LANGS}
    for lang in bilingual.LANGS:
        for stem in run.notebook_paths():
            links = [u for u in parse(page(site, lang, stem)).links if u.startswith("glossary.html#term-")]
            assert len(links) == len(set(links)), f"{lang}/{stem}: a term is linked more than once"
            linked[lang] += len(links)
    assert linked["en"] > 40 and linked["zh"] > 40, linked


def test_chinese_pages_use_no_rejected_variant(site):
    terms = glossary.load()
    bad = {}
    for path in sorted((site / "zh").glob("*.html")):
        if path.name in ("glossary.html", "search.html", "genindex.html"):
            continue
        text = text_of(path)
        found = [(variant, t.zh) for t in terms for variant in t.reject if variant in text]
        if found:
            bad[path.name] = found
    assert not bad, f"rejected variants on Chinese pages (variant, term to use): {bad}"


def test_chinese_pages_are_chinese(site):
    """The share of Latin-script words in the prose of the Chinese pages (code, maths and names
    such as Keras, CIFAR-10 or GPU excepted) stays below LATIN_SHARE_LIMIT."""
    shares = {}
    for path in sorted((site / "zh").glob("*.html")):
        if path.name in ("search.html", "genindex.html", "references.html", "glossary.html"):  # bilingual by design
            continue
        shares[path.name] = zh_prose.latin_share(text_of(path))
    print(
        "Latin-script share of the words on the Chinese pages:",
        {k: f"{v:.1%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    )
    over = {k: f"{v:.1%}" for k, v in shares.items() if v > zh_prose.LATIN_SHARE_LIMIT}
    assert not over, f"pages over {zh_prose.LATIN_SHARE_LIMIT:.0%}: {over}"


def test_no_myst_is_left_raw_on_the_pages(site):
    """A role written where MyST cannot see it (inside code, say) would show as text."""
    raw = re.compile(r"\{(glue:text|glue|cite|numref|ref|doc|eq|term)\}|^\([\w-]+\)=$", re.M)
    bad = {}
    for path in sorted(site.glob("*/*.html")):
        html = path.read_text(encoding="utf-8").split('<article class="bd-article"', 1)[-1]
        html = re.sub(r"<(script|style|pre)\b.*?</\1>", " ", html, flags=re.S)  # code blocks may show MyST
        found = raw.findall(re.sub(r"<[^>]+>", "", html))
        if found:
            bad[path.relative_to(site).as_posix()] = found[:5]
    assert not bad, bad
