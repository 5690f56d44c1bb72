"""A Sphinx extension for publishing: launch links to the readers' editions (and ``make lab``), PDF links,
dark-mode figures, no inline script twice, accepted ARIA roles, and the ```` ```{chapter-list} ```` directive."""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

#: the PDFs, beside the two sites (written by helpers.book.pdf)
PDFS = {"en": "pdf/maas-course-en.pdf", "zh": "pdf/maas-course-zh.pdf"}
PDF_LABELS = {"en": "PDF of the book (English)", "zh": "PDF 全书（中文）"}
#: ``make lab`` serves the repository root; JupyterLab's default address
LOCAL_LAB = "http://localhost:8888/lab/tree/notebooks/{lang}/{name}"
LAB_TEXT = {
    "en": ("JupyterLab (local)", "Open in JupyterLab on this computer (start it with `make lab`)"),
    "zh": ("JupyterLab（本机）", "在本机的 JupyterLab 中打开（先运行 `make lab LANG=zh`）"),
}


def _groups(context, label):
    return [b for b in context.get("header_buttons", []) if b.get("type") == "group" and b.get("label") == label]


def _fix_buttons(app, pagename, templatename, context, doctree):
    from helpers.book.run import notebook_paths
    from helpers.book.sphinx_lang import site_lang

    lang = site_lang(app)
    source = notebook_paths().get(pagename)
    edition = f"notebooks/{lang}/{source.name}" if source else None
    for group in _groups(context, "launch-buttons"):
        if edition is None:
            continue
        for button in group["buttons"]:
            if button.get("url"):
                button["url"] = re.sub(rf"{re.escape(pagename)}\.ipynb$", edition, button["url"])
        text, tooltip = LAB_TEXT[lang]
        group["buttons"].insert(
            0,
            {
                "type": "link",
                "text": text,
                "icon": "fas fa-laptop-code",
                "tooltip": tooltip,
                "url": LOCAL_LAB.format(lang=lang, name=source.name),
                "label": "launch-local-lab",
            },
        )
    for group in _groups(context, "download-buttons"):
        for pdf_lang, path in PDFS.items():
            group["buttons"].append(
                {
                    "type": "link",
                    "text": PDF_LABELS[pdf_lang],
                    "icon": "fas fa-book",
                    "tooltip": PDF_LABELS[pdf_lang],
                    "url": "../" * (pagename.count("/") + 1) + path,
                    "label": f"download-book-pdf-{pdf_lang}",
                }
            )


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated <script>s: sphinx-thebe registers its inline configuration twice under
    Jupyter Book, and the second ``const THEBE_JS_URL`` is a SyntaxError in every page's console."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def _fix_body(app, pagename, templatename, context, doctree):
    """Two accessibility fixes in the page body.

    - Bibliography entries are list items: docutils marks them ``role="doc-biblioentry"``, a role
      DPUB-ARIA 1.1 deprecates and that may not sit in a ``role="list"`` (axe-core:
      aria-required-children, critical; aria-deprecated-role).
    - A collapsed cell's toggle (``<summary aria-label="Toggle hidden content">``) shows "Show code
      cell source" but is named otherwise (axe-core: label-content-name-mismatch, serious): its
      visible text becomes its name.
    """
    body = context.get("body")
    if body is None:
        return
    body = body.replace('role="doc-biblioentry"', 'role="listitem"')
    body = body.replace('<summary aria-label="Toggle hidden content">', "<summary>")
    context["body"] = body


class ChapterList(SphinxDirective):
    """An ordered list of links to the site's chapters: the numbered part of its ``_toc.yml``."""

    def run(self):
        from helpers.book.site import chapters

        files = chapters(Path(self.env.srcdir))
        if not files:
            raise self.error("_toc.yml has no numbered part of chapters")
        listing = nodes.enumerated_list(enumtype="arabic")
        for file in files:
            target = "/" + file
            ref = addnodes.pending_xref(
                "", refdomain="std", reftype="doc", reftarget=target, refexplicit=False, refwarn=True
            )
            ref += nodes.inline("", target)
            listing += nodes.list_item("", nodes.paragraph("", "", ref))
        return [listing]


def setup(app):
    app.add_directive("chapter-list", ChapterList)
    # after sphinx-book-theme has built its header buttons (priority 501)
    app.connect("html-page-context", _fix_buttons, priority=502)
    app.connect("html-page-context", _dedupe_scripts, priority=450)
    app.connect("html-page-context", _fix_body, priority=450)
    app.add_css_file("maas.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
