"""The readers' editions' prose: Sphinx MyST rewritten into what JupyterLab, Colab and Binder show.

:func:`portable` turns citations into their text, chapter references into links to the edition's
notebooks, site links into words, numbered equations into ``\\tag``, dropdowns into ``<details>``,
drops ``(label)=`` lines, and ``{glue:text}`` into ``{eval}`glued("name")``` (jupyterlab-myst).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from helpers.paths import BOOK

BIB = BOOK / "references.bib"
CHAPTER_WORD = {"en": "chapter %s", "zh": "第 %s 章"}


@functools.lru_cache(maxsize=1)
def citations(path: Path = BIB) -> dict[str, str]:
    """``key`` -> "Author, Year" / "Author and Author, Year" / "Author et al., Year"."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.last_names) or " ".join(p.first_names) for p in people]
        who = " and ".join(names) if len(names) < 3 else f"{names[0]} et al."
        if not names:
            who = entry.fields.get("organization") or entry.fields.get("publisher") or entry.fields.get("title", key)
        who = who.replace("{", "").replace("}", "")
        out[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return out


def _cite(match: re.Match) -> str:
    keys = [k.strip() for k in match.group(1).split(",")]
    known = citations()
    return "(" + "; ".join(known.get(k, k) for k in keys) + ")"


def chapter_labels(sources: list[Path]) -> dict[str, tuple[int, str]]:
    """Each chapter's label stem (``cifar10-cnn``) -> (its number, its edition's file name)."""
    return {
        re.sub(r"^\d+_", "", s.stem).replace("_", "-"): (n, s.with_suffix(".ipynb").name)
        for n, s in enumerate(sources, start=1)
    }


def equation_numbers(cells_text: list[str]) -> dict[str, int]:
    """Labels of ``$$ ... $$ (label)`` equations, numbered in order of appearance."""
    labels = [label for text in cells_text for label in re.findall(r"^\$\$\s*\(([\w-]+)\)\s*$", text, flags=re.M)]
    return {label: i for i, label in enumerate(dict.fromkeys(labels), start=1)}


def portable(text: str, lang: str, chapters: dict[str, tuple[int, str]], equations: dict[str, int]) -> str:
    """One markdown cell's prose, rewritten for notebook front ends (see the module's docstring)."""

    def stem(label: str) -> str:
        return re.sub(r"-(en|zh)$", "", label)

    def numref(match: re.Match) -> str:
        shown, label = match.group(1), stem(match.group(2))
        if label in chapters:
            number, name = chapters[label]
            return f"[{shown.replace('%s', str(number)).strip()}]({name})"
        return shown.replace("%s", "").strip()

    def ref(match: re.Match) -> str:
        label = stem(match.group(2))
        return f"[{match.group(1)}]({chapters[label][1]})" if label in chapters else match.group(1)

    def chapter_link(label: str, otherwise: str) -> str:
        if label not in chapters:
            return otherwise
        number, name = chapters[label]
        return f"[{CHAPTER_WORD[lang] % number}]({name})"

    text = re.sub(r"^\([\w-]+\)=\s*\n", "", text, flags=re.M)
    text = re.sub(
        r"^(`{3,})\{dropdown\}([^\n]*)\n(.*?)^\1\s*$",
        lambda m: f"<details>\n<summary>{m.group(2).strip()}</summary>\n\n{m.group(3).strip()}\n\n</details>",
        text,
        flags=re.M | re.S,
    )
    text = re.sub(r"\{cite(?::[a-z]+)?\}`([^`]+)`", _cite, text)
    text = re.sub(r"\{numref\}`([^`<]*)<([\w-]+)>`", numref, text)
    text = re.sub(r"\{ref\}`([^`<]+)<([\w-]+)>`", ref, text)
    text = re.sub(r"\{ref\}`([\w-]+)`", lambda m: chapter_link(stem(m.group(1)), m.group(1)), text)
    text = re.sub(r"\{doc\}`([^`]+)`", lambda m: chapter_link(m.group(1).replace("_", "-"), m.group(1)), text)
    text = re.sub(r"\[([^\]]+)\]\((?!https?:)[\w./-]+\.md\)", r"\1", text)  # the site's own pages: their words
    text = re.sub(r"\{eq\}`([\w-]+)`", lambda m: f"({equations.get(m.group(1), '?')})", text)
    text = re.sub(
        r"^\$\$\s*\(([\w-]+)\)\s*$", lambda m: f"\\tag{{{equations.get(m.group(1), '?')}}}\n$$", text, flags=re.M
    )
    text = re.sub(
        r"\{glue:text\}`([\w]+)(?::([^`]+))?`",
        lambda m: f'{{eval}}`glued("{m.group(1)}"' + (f', "{m.group(2)}"' if m.group(2) else "") + ")`",
        text,
    )
    text = re.sub(
        r"^(`{3,})\{glue\}\s*([\w]+)\s*\n\1\s*$", lambda m: f'{{eval}}`glued("{m.group(2)}")`', text, flags=re.M
    )
    return text


def edition_cells(nb, lang: str, sources: list[Path]):
    """Rewrite every markdown cell of a one-language notebook for notebook front ends."""
    chapters = chapter_labels(sources)
    equations = equation_numbers([c.source for c in nb.cells if c.cell_type == "markdown"])
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = portable(cell.source, lang, chapters, equations)
    return nb
