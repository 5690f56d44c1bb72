"""One executed notebook, two pages: English and Chinese.

Source notebooks hold both languages: every markdown cell is tagged ``en`` or ``zh``; code cells
carry no language tag and belong to both. After papermill has run a notebook once, :func:`split`
writes one copy per language that keeps that language's prose and *all* the executed code cells,
so figures and glued numbers are identical in both, by construction. Each copy begins with a
language switch that links to its twin.

    python -m helpers.book.bilingual build/executed/cpu book     # writes book/en/*.ipynb, book/zh/*.ipynb
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import nbformat

LANGS = ("en", "zh")
LABELS = {"en": "English", "zh": "中文"}


def language_of(cell) -> str | None:
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t in LANGS]
    if len(tags) > 1:
        raise ValueError(f"a cell is tagged with both languages: {cell.source[:60]!r}")
    return tags[0] if tags else None


def check_tags(nb, name: str = "notebook") -> None:
    """Every markdown cell must belong to exactly one language."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and language_of(cell) is None:
            raise ValueError(f"{name}: markdown cell {i} has no language tag (en or zh): {cell.source[:60]!r}")


def switch_cell(stem: str, lang: str):
    """A small markdown cell linking this page to its twin in the other language."""
    parts = [f"**{LABELS[l]}**" if l == lang else f"[{LABELS[l]}](../{l}/{stem}.ipynb)" for l in LANGS]
    cell = nbformat.v4.new_markdown_cell(" · ".join(parts))
    cell.metadata["tags"] = ["language-switch"]
    return cell


def split(nb, stem: str, lang: str):
    """The ``lang`` page of an executed bilingual notebook."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {LANGS}")
    check_tags(nb, stem)
    page = copy.deepcopy(nb)
    page.cells = [c for c in page.cells if language_of(c) in (None, lang)]
    page.cells.insert(0, switch_cell(stem, lang))
    page.metadata["language"] = lang
    return page


def publish(executed_dir: Path | str, book_dir: Path | str) -> list[Path]:
    """Write ``book_dir/<lang>/<stem>.ipynb`` for every executed notebook, and the execution-status
    page ``book_dir/status.md`` (:mod:`helpers.book.status_page`); return the paths."""
    executed_dir, book_dir = Path(executed_dir), Path(book_dir)
    sources = sorted(executed_dir.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no executed notebooks in {executed_dir}; run `python -m helpers.book.run` first")
    written = []
    for source in sources:
        nb = nbformat.read(source, as_version=4)
        for lang in LANGS:
            target = book_dir / lang / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(split(nb, source.stem, lang), target)
            written.append(target)
    from helpers.book import status_page

    written.append(status_page.write(executed_dir, book_dir))  # the execution-status page
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Split executed bilingual notebooks into en/ and zh/ pages.")
    parser.add_argument("executed_dir", type=Path)
    parser.add_argument("book_dir", type=Path)
    args = parser.parse_args(argv)
    for path in publish(args.executed_dir, args.book_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
