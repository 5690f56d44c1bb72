"""The Sphinx extension of the two sites.

- ``<html lang>`` as BCP 47 (``zh-CN``), a header link to each page's twin in the other site, and the
  first use of each glossary term in a chapter linked to its entry;
- launch links to the readers' editions (and ``make lab``), PDF links, no inline script twice, accepted
  ARIA roles, and the ```` ```{chapter-list} ```` directive;
- the ```` ```{article-coverage} en ```` table of the article's claims and where the course answers them,
  from ``book/article_coverage.yml`` (its chapter and section cross-references fail the build if a label
  is missing; without an argument, the site's language).
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

from helpers.book import glossary
from helpers.book.bilingual import LANGS
from helpers.book.run import notebook_paths
from helpers.book.site import HTML_LANG, PDF_NAME, SPHINX_LANGUAGE, chapters
from helpers.book.site import load_yaml as load  # the coverage data (tests read it too)
from helpers.paths import BOOK

#: Sphinx ``language`` -> the course's language code
SITE_LANG = {sphinx: lang for lang, sphinx in SPHINX_LANGUAGE.items()}
SWITCH = {"en": ("中文", "阅读本页的中文版"), "zh": ("English", "Read this page in English")}
#: nodes whose text is never linked to the glossary
_SKIP = "literal literal_block math math_block reference title raw comment target caption term image"
SKIP = (addnodes.pending_xref, *(getattr(nodes, name) for name in _SKIP.split()))
PDF_LABELS = {"en": "PDF of the book (English)", "zh": "PDF 全书（中文）"}
#: ``make lab`` serves the repository root; JupyterLab's default address
LOCAL_LAB = "http://localhost:8888/lab/tree/notebooks/{lang}/{name}"
LAB_TEXT = {
    "en": ("JupyterLab (local)", "Open in JupyterLab on this computer (start it with `make lab`)"),
    "zh": ("JupyterLab（本机）", "在本机的 JupyterLab 中打开（先运行 `make lab LANG=zh`）"),
}
DATA = BOOK / "article_coverage.yml"
#: how a row answers a claim, and its Chinese word
HOW = {"measurement": "测量", "citation": "引用", "explanation": "解释"}
HEADERS = {
    "en": ("Article", "The article says", "Answered in", "How", "The answer"),
    "zh": ("原文", "原文的说法", "回答所在", "方式", "回答"),
}
CHAPTER_TITLE = {"en": "Chapter %s", "zh": "第 %s 章"}
#: a coverage row's fields that must hold text; ``claim_en`` is the English rendering of the quote
FIELDS = ("section", "claim", "claim_en", "chapter", "target", "how", "en", "zh")


def site_lang(app) -> str:
    return SITE_LANG.get(app.config.language or "en", "en")


def _button(text: str, tooltip: str, icon: str, url: str, label: str) -> dict:
    return {"type": "link", "text": text, "tooltip": tooltip, "icon": icon, "url": url, "label": label}


def _page_context(app, pagename, templatename, context, doctree):
    lang = site_lang(app)
    context["language"] = HTML_LANG[lang]
    other = "zh" if lang == "en" else "en"
    url = "../" * (pagename.count("/") + 1) + f"{other}/{pagename}.html"
    context.setdefault("header_buttons", []).insert(
        0, _button(*SWITCH[lang], "fas fa-language", url, "language-switch")
    )


def _in_skipped(node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, SKIP) or (
            isinstance(parent, nodes.container) and {"cell_output", "cell_input"} & set(parent.get("classes", []))
        ):
            return True
        parent = parent.parent
    return False


def _xref(kind: str, target: str, text: str, docname: str, explicit: bool = False, classes=()) -> nodes.Node:
    ref = addnodes.pending_xref(
        "", refdomain="std", reftype=kind, reftarget=target, refexplicit=explicit, refwarn=True, refdoc=docname
    )
    ref += nodes.inline("", text, classes=list(classes))
    return ref


def link_terms(app, doctree) -> None:
    """Link the first use of each glossary term in a chapter to the glossary (doctree-read)."""
    docname = app.env.docname
    if docname not in chapters(Path(app.srcdir)):
        return
    lang = site_lang(app)
    for term in sorted(glossary.load(), key=lambda t: -len(t.name(lang))):
        pattern = glossary.pattern(term, lang)
        for text in doctree.findall(nodes.Text):
            match = None if _in_skipped(text) else pattern.search(str(text))
            if not match:
                continue
            ref = _xref("term", term.entry(lang).lower(), match.group(0), docname, True, ["glossary-term"])
            before, after = str(text)[: match.start()], str(text)[match.end() :]
            new = [n for n in (before and nodes.Text(before), ref, after and nodes.Text(after)) if n]
            text.parent.replace(text, new)
            break


def _groups(context, label):
    return [b for b in context.get("header_buttons", []) if b.get("type") == "group" and b.get("label") == label]


def _fix_buttons(app, pagename, templatename, context, doctree):
    lang = site_lang(app)
    source = notebook_paths().get(pagename)
    for group in _groups(context, "launch-buttons") if source else []:
        for button in [b for b in group["buttons"] if b.get("url")]:
            button["url"] = re.sub(rf"{re.escape(pagename)}\.ipynb$", f"notebooks/{lang}/{source.name}", button["url"])
        url = LOCAL_LAB.format(lang=lang, name=source.name)
        group["buttons"].insert(0, _button(*LAB_TEXT[lang], "fas fa-laptop-code", url, "launch-local-lab"))
    for group in _groups(context, "download-buttons"):
        for pdf_lang, label in PDF_LABELS.items():
            url = "../" * (pagename.count("/") + 1) + "pdf/" + PDF_NAME.format(lang=pdf_lang)
            group["buttons"].append(_button(label, label, "fas fa-book", url, f"download-book-pdf-{pdf_lang}"))


def _fix_page(app, pagename, templatename, context, doctree):
    """Drop repeated <script>s (sphinx-thebe's inline configuration, twice under Jupyter Book, is a SyntaxError the
    second time) and fix two axe-core findings: bibliography entries as list items (aria-deprecated-role,
    aria-required-children), a collapsed cell's toggle named by its visible text (label-content-name-mismatch)."""
    unique = {}
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        unique.setdefault((str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))), script)
    if "script_files" in context:
        context["script_files"][:] = unique.values()
    if context.get("body") is not None:
        body = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')
        context["body"] = body.replace('<summary aria-label="Toggle hidden content">', "<summary>")


class ChapterList(SphinxDirective):
    """An ordered list of links to the site's chapters: the numbered part of its ``_toc.yml``."""

    def run(self):
        files = chapters(Path(self.env.srcdir))
        if not files:
            raise self.error("_toc.yml has no numbered part of chapters")
        links = [_xref("doc", "/" + file, "/" + file, self.env.docname) for file in files]
        items = [nodes.list_item("", nodes.paragraph("", "", link)) for link in links]
        return [nodes.enumerated_list("", *items, enumtype="arabic")]


def problems(coverage: dict) -> list[str]:
    """What is missing or malformed in the coverage data (empty when every row is complete)."""
    rows = coverage.get("rows") or []
    found = [] if rows else ["no rows"]
    for i, row in enumerate(rows, start=1):
        where = f"row {i} ({str(row.get('claim', ''))[:20]!r})"
        found += [f"{where}: {name} is empty" for name in FIELDS if not str(row.get(name) or "").strip()]
        how = row.get("how") or []
        if isinstance(how, str) or any(h not in HOW for h in how):
            found.append(f"{where}: how must be a list drawn from {tuple(HOW)}, not {how!r}")
    return found


def section_number(heading: str) -> str:
    """``"2.1人工智能大模型"`` -> ``"§2.1"``; a heading without a number (``"结论"``) stays as it is."""
    number = re.match(r"[0-9.]*[0-9]", heading)
    return f"§{number.group(0)}" if number else heading


def _row(*cells: list) -> nodes.row:
    """A table row; each cell a list of paragraphs."""
    return nodes.row("", *(nodes.entry("", *paragraphs) for paragraphs in cells))


class ArticleCoverage(SphinxDirective):
    """The coverage table in one language: the argument's, or the site's."""

    optional_arguments = 1  # the language: en or zh

    def run(self):
        lang = self.arguments[0] if self.arguments else site_lang(self.env.app)
        if lang not in LANGS:
            raise self.error(f"article-coverage takes a language, one of {LANGS}, not {lang!r}")
        self.env.note_dependency(str(DATA))
        coverage = load(DATA)
        if bad := problems(coverage):
            raise self.error(f"{DATA.name} is incomplete: " + "; ".join(bad))
        group = nodes.tgroup(cols=5)
        group += [nodes.colspec(colwidth=width) for width in (8, 30, 18, 10, 34)]
        group += nodes.thead("", _row(*([nodes.paragraph("", title)] for title in HEADERS[lang])))
        body = nodes.tbody()
        for item in coverage["rows"]:
            claim = [nodes.paragraph("", "", nodes.inline("", f"“{item['claim']}”", classes=["article-quote"]))]
            if lang == "en":
                claim.append(nodes.paragraph("", "", nodes.emphasis("", item["claim_en"])))
            chapter = _xref("numref", f"{item['chapter']}-{lang}", CHAPTER_TITLE[lang], self.env.docname, True)
            where = nodes.paragraph("", "", chapter)
            if item["target"] != item["chapter"]:
                where += [nodes.Text(" · "), _xref("ref", f"{item['target']}-{lang}", item["target"], self.env.docname)]
            how = "、".join(HOW[h] for h in item["how"]) if lang == "zh" else ", ".join(item["how"])
            cells = [[nodes.paragraph("", section_number(str(item["section"])))], claim, [where]]
            body += _row(*cells, [nodes.paragraph("", how)], [nodes.paragraph("", item[lang])])
        group += body
        rows = len(coverage["rows"])
        count = nodes.paragraph("", f"{rows} rows." if lang == "en" else f"共 {rows} 行。")
        return [nodes.table("", group, classes=["article-coverage"]), count]


def setup(app):
    app.add_directive("chapter-list", ChapterList)
    app.add_directive("article-coverage", ArticleCoverage)
    app.connect("html-page-context", _page_context)
    # after sphinx-book-theme has built its header buttons (priority 501)
    app.connect("html-page-context", _fix_buttons, priority=502)
    app.connect("html-page-context", _fix_page, priority=450)
    app.connect("doctree-read", link_terms)
    app.add_css_file("maas.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
