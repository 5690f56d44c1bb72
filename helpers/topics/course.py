"""The course as its readers see it: chapters by number and title, values in words, in each language."""

from __future__ import annotations

import functools
import math
import numbers
import os
import re
from pathlib import Path

from helpers.book.bilingual import LANGS
from helpers.paths import NOTEBOOKS
from helpers.words import in_lang, pick

#: a chapter source's file name: ``05_cifar10_cnn.md``
_SOURCE = re.compile(r"(?P<number>\d\d)_(?P<stem>[a-z0-9_]+)\.md")
#: a chapter's markdown cell tagged with its language: (language, text up to the next cell)
_LANG_CELL = re.compile(r'^\+\+\+ \{"tags": \["(en|zh)"\]\}\s*$(.*?)(?=^\+\+\+ |^```\{code-cell|\Z)', flags=re.M | re.S)
STATUS = {"ok": ("ran", "已运行"), "failed": ("failed", "运行失败"), None: ("not run", "未运行")}


@functools.lru_cache(maxsize=4)
def chapters(directory: Path = NOTEBOOKS) -> dict[str, dict]:
    """Every chapter by id, in book order: its number, source file and title in each language."""
    out = {}
    for path in sorted(Path(directory).glob("*.md")):
        if not (match := _SOURCE.fullmatch(path.name)):
            continue
        titles = {}
        for lang, body in _LANG_CELL.findall(path.read_text(encoding="utf-8")):
            if (heading := re.search(r"^# (.+)$", body, flags=re.M)) and lang not in titles:
                titles[lang] = heading.group(1).strip()
        out[match["stem"]] = {"number": int(match["number"]), "file": path.stem, "titles": titles}
    return out


def short(words: str, lang: str) -> str:
    """A title up to its subtitle: "Model as a service: the CNN ..." -> "Model as a service"."""
    cut = r"：|: |, " if lang == "en" else r"：|: "
    return re.split(cut, words, maxsplit=1)[0].strip()


def title(stem: str, lang: str, number: bool = True, full: bool = False) -> str:
    """A chapter as the book names it: "Chapter 5. Title" / "第 5 章 标题" (the id if unknown)."""
    if (chapter := chapters().get(stem)) is None:
        return stem
    words = chapter["titles"].get(lang) or chapter["titles"].get("en") or stem
    words = words if full else short(words, lang)
    if not number:
        return words
    return pick(lang, f"Chapter {chapter['number']}. {words}", f"第 {chapter['number']} 章 {words}")


def href(stem: str) -> str:
    """Where a chapter is: its page on the site, or its notebook in a readers' edition (``$MAAS_LANG``)."""
    if (chapter := chapters().get(stem)) is None:
        return ""
    return f"{chapter['file']}.ipynb" if os.environ.get("MAAS_LANG") in LANGS else f"{stem}.html"


def link(stem: str, lang: str, number: bool = True, full: bool = False) -> str:
    """The chapter's title as an HTML link to it (its title alone when it is not a chapter)."""
    words = title(stem, lang, number, full)
    return f'<a href="{where}">{words}</a>' if (where := href(stem)) else words


def in_book_order(values: dict) -> dict:
    """``values`` keyed by chapter id, in the book's order (keys that are not chapters last, as given)."""
    order = list(chapters())
    return dict(sorted(values.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def status(record: dict | None, lang: str) -> str:
    """A chapter's run in words: ran, failed or not run."""
    return pick(lang, *STATUS.get((record or {}).get("status"), STATUS[None]))


def finite(*values) -> bool:
    """Whether every value is a finite number (NumPy scalars included; None and strings are not)."""
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def pct(x: float, digits: int = 1) -> str:
    """A share as a percentage: 0.7341 -> '73.4%' ('—' when missing)."""
    return f"{x:.{digits}%}" if finite(x) else "—"


def points(x: float, lang: str, digits: int = 1) -> str:
    """A difference of two shares in percentage points: 0.042 -> '4.2 points' / '4.2 个百分点'."""
    return in_lang("{n} percentage points", lang).format(n=f"{x * 100:.{digits}f}") if finite(x) else "—"


def times(x: float, lang: str, digits: int = 1) -> str:
    """A ratio: 4.66 -> '4.7×' / '4.7 倍'."""
    return pick(lang, f"{x:.{digits}f}×", f"{x:.{digits}f} 倍") if finite(x) else "—"


def duration(seconds: float, lang: str) -> str:
    """A wall time for reading: '42 s', '3.5 min', '1.2 h' / '42 秒', '3.5 分钟', '1.2 小时'."""
    if not finite(seconds):
        return "—"
    if seconds < 90:
        return pick(lang, f"{seconds:.0f} s", f"{seconds:.0f} 秒")
    if seconds < 90 * 60:
        return pick(lang, f"{seconds / 60:.1f} min", f"{seconds / 60:.1f} 分钟")
    return pick(lang, f"{seconds / 3600:.1f} h", f"{seconds / 3600:.1f} 小时")


def listing(items: list[str], lang: str) -> str:
    """'a, b and c' / 'a、b 和 c'."""
    if len(items) < 2:
        return "".join(items)
    return pick(lang, ", ".join(items[:-1]) + " and " + items[-1], "、".join(items[:-1]) + " 和 " + items[-1])


def show_tables(make) -> None:
    """``make(lang)`` -> a frame, shown once per language with missing values as '—'."""
    from helpers import show

    show.each(lambda lang: make(lang).style.format(na_rep="—"))
