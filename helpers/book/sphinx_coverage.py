"""A Sphinx extension: the ```` ```{article-coverage} en ```` table of the article's claims and where the course answers them.

Rows come from ``book/article_coverage.yml``; the chapter and section of each are ``numref``/``ref``
cross-references, so a missing label fails the build. Without an argument the site's language is used.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

from helpers.book.bilingual import LANGS
from helpers.paths import BOOK

DATA = BOOK / "article_coverage.yml"
HOW = ("measurement", "citation", "explanation")
HOW_ZH = {"measurement": "测量", "citation": "引用", "explanation": "解释"}
HEADERS = {
    "en": ("Article", "The article says", "Answered in", "How", "The answer"),
    "zh": ("原文", "原文的说法", "回答所在", "方式", "回答"),
}
CHAPTER_TITLE = {"en": "Chapter %s", "zh": "第 %s 章"}
#: a row's fields that must hold text; ``claim_en`` is the English rendering of the quote
FIELDS = ("section", "claim", "claim_en", "chapter", "target", "how", "en", "zh")


def load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def problems(coverage: dict) -> list[str]:
    """What is missing or malformed in the coverage data (empty when every row is complete)."""
    found = []
    rows = coverage.get("rows") or []
    if not rows:
        found.append("no rows")
    for i, row in enumerate(rows, start=1):
        where = f"row {i} ({str(row.get('claim', ''))[:20]!r})"
        for name in FIELDS:
            value = row.get(name)
            if not value or (isinstance(value, str) and not value.strip()):
                found.append(f"{where}: {name} is empty")
        how = row.get("how") or []
        if isinstance(how, str) or any(h not in HOW for h in how):
            found.append(f"{where}: how must be a list drawn from {HOW}, not {how!r}")
    return found


def _xref(reftype: str, target: str, text: str, docname: str, explicit: bool) -> addnodes.pending_xref:
    ref = addnodes.pending_xref(
        "", refdomain="std", reftype=reftype, reftarget=target, refexplicit=explicit, refwarn=True, refdoc=docname
    )
    ref += nodes.inline("", text)
    return ref


def _cell(*paragraphs: nodes.paragraph) -> nodes.entry:
    entry = nodes.entry()
    entry.extend(paragraphs)
    return entry


def section_number(heading: str) -> str:
    """``"2.1人工智能大模型"`` -> ``"§2.1"``; a heading without a number (``"结论"``) stays as it is."""
    number = re.match(r"[0-9.]*[0-9]", heading)
    return f"§{number.group(0)}" if number else heading


class ArticleCoverage(SphinxDirective):
    """The coverage table in one language: the argument's, or the site's."""

    optional_arguments = 1  # the language: en or zh

    def run(self):
        from helpers.book.sphinx_lang import site_lang

        lang = self.arguments[0] if self.arguments else site_lang(self.env.app)
        if lang not in LANGS:
            raise self.error(f"article-coverage takes a language, one of {LANGS}, not {lang!r}")
        path = DATA
        self.env.note_dependency(str(path))
        coverage = load(path)
        bad = problems(coverage)
        if bad:
            raise self.error(f"{DATA.name} is incomplete: " + "; ".join(bad))
        docname = self.env.docname
        table = nodes.table(classes=["article-coverage"])
        group = nodes.tgroup(cols=5)
        table += group
        for width in (8, 30, 18, 10, 34):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        row = nodes.row()
        for title in HEADERS[lang]:
            row += _cell(nodes.paragraph("", title))
        head += row
        group += head
        body = nodes.tbody()
        for item in coverage["rows"]:
            row = nodes.row()
            row += _cell(nodes.paragraph("", section_number(str(item["section"]))))
            claim = nodes.paragraph("", "", nodes.inline("", f"“{item['claim']}”", classes=["article-quote"]))
            cells = [claim]
            if lang == "en":
                cells.append(nodes.paragraph("", "", nodes.emphasis("", item["claim_en"])))
            row += _cell(*cells)
            chapter = _xref("numref", f"{item['chapter']}-{lang}", CHAPTER_TITLE[lang], docname, True)
            where = nodes.paragraph("", "", chapter)
            if item["target"] != item["chapter"]:
                where += nodes.Text(" · ")
                where += _xref("ref", f"{item['target']}-{lang}", item["target"], docname, False)
            row += _cell(where)
            separator = "、" if lang == "zh" else ", "
            row += _cell(nodes.paragraph("", separator.join(HOW_ZH[h] if lang == "zh" else h for h in item["how"])))
            row += _cell(nodes.paragraph("", item[lang]))
            body += row
        group += body
        count = nodes.paragraph(
            "", (f"{len(coverage['rows'])} rows." if lang == "en" else f"共 {len(coverage['rows'])} 行。")
        )
        return [table, count]


def setup(app):
    app.add_directive("article-coverage", ArticleCoverage)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
