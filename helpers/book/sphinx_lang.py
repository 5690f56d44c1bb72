"""A Sphinx extension for the two sites: ``<html lang>`` as BCP 47 (``zh-CN``), a header link to each
page's twin in the other site, and the first use of each glossary term in a chapter linked to its entry."""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes

#: Sphinx ``language`` -> the course's language code
SITE_LANG = {"en": "en", "zh_CN": "zh"}
HTML_LANG = {"en": "en", "zh": "zh-CN"}
TWIN = {"en": "zh", "zh": "en"}
SWITCH = {"en": ("中文", "阅读本页的中文版"), "zh": ("English", "Read this page in English")}
#: nodes whose text is never linked to the glossary
SKIP = (
    nodes.literal,
    nodes.literal_block,
    nodes.math,
    nodes.math_block,
    nodes.reference,
    nodes.title,
    nodes.raw,
    nodes.comment,
    nodes.target,
    nodes.caption,
    nodes.term,
    nodes.image,
    addnodes.pending_xref,
)


def site_lang(app) -> str:
    return SITE_LANG.get(app.config.language or "en", "en")


def _page_context(app, pagename, templatename, context, doctree):
    lang = site_lang(app)
    context["language"] = HTML_LANG[lang]
    other = TWIN[lang]
    text, tooltip = SWITCH[lang]
    depth = pagename.count("/")
    context.setdefault("header_buttons", []).insert(
        0,
        {
            "type": "link",
            "url": "../" * (depth + 1) + f"{other}/{pagename}.html",
            "text": text,
            "tooltip": tooltip,
            "icon": "fas fa-language",
            "label": "language-switch",
        },
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


def link_terms(app, doctree) -> None:
    """Link the first use of each glossary term in a chapter to the glossary (doctree-read)."""
    from helpers.book import glossary, site

    docname = app.env.docname
    if docname not in site.chapters(Path(app.srcdir)):
        return
    lang = site_lang(app)
    terms = sorted(glossary.load(), key=lambda t: -len(t.name(lang)))
    for term in terms:
        pattern = glossary.pattern(term, lang)
        for text in doctree.findall(nodes.Text):
            if _in_skipped(text):
                continue
            match = pattern.search(str(text))
            if not match:
                continue
            before, found, after = str(text)[: match.start()], match.group(0), str(text)[match.end() :]
            ref = addnodes.pending_xref(
                "",
                nodes.inline(found, found, classes=["glossary-term"]),
                refdomain="std",
                reftype="term",
                reftarget=term.entry(lang).lower(),
                refexplicit=True,
                refwarn=True,
                refdoc=docname,
            )
            parent = text.parent
            index = parent.index(text)
            parent.remove(text)
            for offset, new in enumerate(
                n
                for n in (nodes.Text(before) if before else None, ref, nodes.Text(after) if after else None)
                if n is not None
            ):
                parent.insert(index + offset, new)
            break


def setup(app):
    app.connect("html-page-context", _page_context)
    app.connect("doctree-read", link_terms)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
