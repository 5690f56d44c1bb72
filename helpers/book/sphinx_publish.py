"""A small Sphinx extension for publishing the book: launch links, PDF links, dark-mode figures.

- **Launch links.** sphinx-book-theme builds its Binder and Colab links from the page's own path
  (``book/en/01_large_models.ipynb``), a generated file that is not in the repository. They are
  pointed at the committed source, ``notebooks/01_large_models.ipynb`` in ``repository.url``
  (``_config.yml``), and a link for JupyterLab on this machine (``make lab``) is added.
- **The PDFs.** Each page's download menu links the whole book as a PDF in each language
  (``pdf/maas-course-<lang>.pdf``, written by ``python -m helpers.book.pdf`` after the HTML build).
- **Figures in dark mode** keep their white background (``book/_static/maas.css``).
- **No script twice**: a repeated inline script (sphinx-thebe's) would be a console error.
- **Bibliography entries** carry an ARIA role that screen readers and axe-core accept.
- **The chapter list** (```` ```{chapter-list} en ```` on the landing page): every chapter of one
  language, numbered and titled as in the navigation, read from ``_toc.yml``, never typed by hand.

Enabled in ``_config.yml`` (``sphinx.extra_extensions``).
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

#: the PDFs, relative to the site's root (written by helpers.book.pdf)
PDFS = {"en": "pdf/maas-course-en.pdf", "zh": "pdf/maas-course-zh.pdf"}
PDF_LABELS = {"en": "PDF of the book (English)", "zh": "PDF 全书（中文）"}
#: ``make lab`` serves the repository root; JupyterLab's default address
LOCAL_LAB = "http://localhost:8888/lab/tree/notebooks/{name}.md"
PAGE = re.compile(r"book/(?:en|zh)/(?P<stem>[^/?#]+)\.ipynb")


def source_notebook(pagename: str) -> str | None:
    """``book/en/large_models`` -> ``large_models`` (None for pages that are no chapter)."""
    match = PAGE.fullmatch(pagename + ".ipynb")
    return match["stem"] if match else None


def _groups(context, label):
    return [b for b in context.get("header_buttons", []) if b.get("type") == "group" and b.get("label") == label]


def _fix_buttons(app, pagename, templatename, context, doctree):
    from helpers.book.run import notebook_paths

    chapter = source_notebook(pagename)
    source = notebook_paths().get(chapter) if chapter else None
    for group in _groups(context, "launch-buttons"):
        if source is None:
            continue
        for button in group["buttons"]:
            if button.get("url"):
                button["url"] = PAGE.sub(f"notebooks/{source.name}", button["url"])
        group["buttons"].insert(0, {
            "type": "link", "text": "JupyterLab (local)", "icon": "fas fa-laptop-code",
            "tooltip": "Open in JupyterLab on this computer (start it with `make lab`)",
            "url": LOCAL_LAB.format(name=source.stem), "label": "launch-local-lab",
        })
    pathto = context.get("pathto")
    for group in _groups(context, "download-buttons"):
        for lang, path in PDFS.items():
            group["buttons"].append({
                "type": "link", "text": PDF_LABELS[lang], "icon": "fas fa-book",
                "tooltip": PDF_LABELS[lang], "url": pathto(path, 1) if pathto else path,
                "label": f"download-book-pdf-{lang}",
            })


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
    """Bibliography entries are list items: docutils marks them ``role="doc-biblioentry"``, a
    role DPUB-ARIA 1.1 deprecates and that may not sit in a ``role="list"`` (axe-core:
    aria-required-children, critical; aria-deprecated-role)."""
    if "body" in context and 'role="doc-biblioentry"' in context["body"]:
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


class ChapterList(SphinxDirective):
    """An ordered list of links to the chapters of one language part of ``_toc.yml``."""

    required_arguments = 1  # the language: en or zh

    def run(self):
        import yaml

        from helpers.book import bilingual

        lang = self.arguments[0]
        if lang not in bilingual.LABELS:
            raise self.error(f"chapter-list takes a language, one of {sorted(bilingual.LABELS)}, not {lang!r}")
        toc = yaml.safe_load((Path(self.env.srcdir) / "_toc.yml").read_text(encoding="utf-8"))
        parts = [p for p in toc.get("parts", []) if p.get("caption") == bilingual.LABELS[lang]]
        if not parts:
            raise self.error(f"_toc.yml has no part captioned {bilingual.LABELS[lang]!r}")
        listing = nodes.enumerated_list(enumtype="arabic")
        for chapter in parts[0]["chapters"]:
            target = "/" + chapter["file"]
            ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=target,
                                        refexplicit=False, refwarn=True)
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
