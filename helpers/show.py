"""Results shown once per language, marked ``metadata={"lang": ...}`` (only ``$MAAS_LANG``'s if it is set)."""

from __future__ import annotations

import html
import os
from collections.abc import Callable

from helpers.words import LANGS, pick

ENV = "MAAS_LANG"


class Text(str):
    """Text whose repr is itself (no quotes): a display output that can carry its language, or a glued value."""

    __repr__ = str.__str__
    _repr_pretty_ = lambda self, p, cycle: p.text(self)  # IPython's text/plain


def each(make: Callable[[str], object]) -> None:
    """What ``make(lang)`` returns (a string, a table, a figure, then closed), once per language."""
    from IPython.display import display

    chosen = os.environ.get(ENV, "")
    for lang in (chosen,) if chosen in LANGS else LANGS:
        shown = make(lang)
        display(Text(shown) if isinstance(shown, str) else shown, metadata={"lang": lang})
        if hasattr(shown, "savefig"):
            import matplotlib.pyplot as plt

            plt.close(shown)


figure = each  # a matplotlib figure ``draw(lang)`` per language


def text(en: str, zh: str) -> None:
    """A printed summary, in each language."""
    each(lambda lang: pick(lang, en, zh))


def table(frame, columns_zh=None, index_zh=None, formats=None, index_name=None, caption=None) -> None:
    """A pandas table in each language: labels translated by the dicts, values formatted by ``formats``."""

    def styled(lang):
        shown, fmt = frame.copy(), formats or {}
        if lang == "zh":
            shown = shown.rename(columns=columns_zh or {}, index=index_zh or {})
            fmt = {(columns_zh or {}).get(k, k): v for k, v in fmt.items()}
        if index_name:  # one name, or one per level of a MultiIndex
            names = index_name[lang]
            shown.index.names = list(names) if isinstance(names, (list, tuple)) else [names]
        styler = shown.style.format(fmt, na_rep="—")
        return styler.set_caption(pick(lang, *caption)) if caption else styler

    each(styled)


def code(text: str) -> None:
    """Code or a program's literal output (a diff, a JSON reply, a log line), shown once for every language."""
    from IPython.display import display

    block = f'<div class="highlight"><pre><code>{html.escape(text)}</code></pre></div>'
    display({"text/plain": text, "text/html": block}, raw=True)
