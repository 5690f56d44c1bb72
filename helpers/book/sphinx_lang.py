"""A tiny Sphinx extension: Chinese pages declare ``<html lang="zh-CN">``.

The book is one Sphinx project whose default language is English; pages under ``book/zh/`` are
Chinese, and say so, so that browsers pick Chinese fonts and screen readers a Chinese voice.
Enabled in ``_config.yml`` (``sphinx.extra_extensions``).
"""

PAGE_LANGUAGES = {"book/zh/": "zh-CN"}


def _set_language(app, pagename, templatename, context, doctree):
    for prefix, language in PAGE_LANGUAGES.items():
        if pagename.startswith(prefix):
            context["language"] = language


def setup(app):
    app.connect("html-page-context", _set_language)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
