"""Showing results in the reader's language: each table, printed summary and figure once per language,
marked ``metadata={"lang": ...}`` so each page keeps its own (only ``$MAAS_LANG``'s in a readers' edition).

    show.table(df, {"test accuracy": "测试准确率"}, index_zh={"article": "原文模型"}, formats={"test accuracy": "{:.1%}"})
    show.text(f"{n:,} images", f"{n:,} 张图像")
    show.figure(lambda lang: plots.learning_curves(history, lang=lang))
"""

from __future__ import annotations

import os
from collections.abc import Callable

from helpers.book.bilingual import LANGS  # noqa: F401  (the one list of the course's languages)

ENV = "MAAS_LANG"


def languages() -> tuple[str, ...]:
    """The languages to show: the readers' edition's one, or both (the run the pages come from)."""
    lang = os.environ.get(ENV, "")
    return (lang,) if lang in LANGS else LANGS


def _display(obj, lang: str) -> None:
    from IPython.display import display

    display(obj, metadata={"lang": lang})


def text(en: str, zh: str) -> None:
    """A printed summary, in each language."""
    each(lambda lang: en if lang == "en" else zh)


class Text(str):
    """Text whose repr is itself (no quotes): a display output that can carry its language, or a glued value."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p, cycle):
        p.text(self)


def table(
    frame,
    columns_zh: dict | None = None,
    index_zh: dict | None = None,
    formats: dict | None = None,
    index_name: dict | None = None,
    caption: tuple[str, str] | None = None,
):
    """A pandas table in each language: labels translated by the dicts (else kept), values formatted with
    ``formats`` (column -> format or function); ``caption`` as ``{"en": ..., "zh": ...}`` or ``(en, zh)``."""
    formats = formats or {}
    for lang in languages():
        shown = frame.copy()
        if lang == "zh":
            shown = shown.rename(columns=columns_zh or {}, index=index_zh or {})
            fmt = {(columns_zh or {}).get(k, k): v for k, v in formats.items()}
        else:
            fmt = formats
        if index_name:  # one name, or one per level of a MultiIndex
            names = index_name[lang]
            shown.index.names = list(names) if isinstance(names, (list, tuple)) else [names]
        styler = shown.style.format(fmt, na_rep="—")
        if caption:
            styler = styler.set_caption(caption[LANGS.index(lang)])
        _display(styler, lang)


def figure(draw: Callable[[str], object]) -> None:
    """A figure drawn once per language: ``draw(lang)`` returns a matplotlib figure labelled in
    ``lang``; each is shown with its language and closed."""
    import matplotlib.pyplot as plt

    for lang in languages():
        fig = draw(lang)
        _display(fig, lang)
        plt.close(fig)


def each(make: Callable[[str], object]) -> None:
    """Anything shown once per language: ``make(lang)`` returns what to show in ``lang`` (a table
    whose values differ by language, a styled frame, a string), shown with its language."""
    for lang in languages():
        shown = make(lang)
        _display(Text(shown) if isinstance(shown, str) else shown, lang)


def code(text: str) -> None:
    """Text that is code or a program's literal output (a diff, a JSON reply, a log line), shown
    once for every language as a code block: the same on every page, and not prose."""
    import html

    from IPython.display import display

    block = f'<div class="highlight"><pre><code>{html.escape(text)}</code></pre></div>'
    display({"text/plain": text, "text/html": block}, raw=True)
