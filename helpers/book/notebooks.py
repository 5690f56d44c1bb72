"""The chapters' MyST sources (``notebooks/NN_topic.md``) and the notebooks generated from them.

    python -m helpers.book.notebooks            # (re)write every .ipynb from its .md (make notebooks)
    python -m helpers.book.notebooks --check    # exit 1 if any .ipynb is missing or out of date

Each source gives ``notebooks/NN_topic.ipynb`` (both languages, what papermill runs) and the readers' editions
``notebooks/{en,zh}/NN_topic.ipynb``: no outputs, the Colab cell, cell ids from each cell's content.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from ipykernel.ipkernel import IPythonKernel

from helpers.book import bilingual, colab_cell
from helpers.paths import BOOK, NOTEBOOKS, ROOT

#: a chapter source: two digits, an underscore, a lower-case topic
SOURCE = re.compile(r"(?P<number>\d\d)_(?P<topic>[a-z0-9_]+)\.md")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
#: what ipykernel reports of its language (JupyterLab writes it on open); :func:`_same` ignores the version
LANGUAGE_INFO = IPythonKernel.language_info
#: the readers' editions open with the course's kernel (`make setup` installs it; Binder's postBuild too)
EDITION_KERNELSPEC = {"name": "maas-course", "display_name": "Python (maas-course)", "language": "python"}
CHAPTER_WORD = {"en": "chapter %s", "zh": "第 %s 章"}


@functools.cache
def citations() -> dict[str, str]:
    """The bibliography's ``key`` -> "Author, Year" / "Author and Author, Year" / "Author et al., Year"."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(BOOK / "references.bib")).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.last_names) or " ".join(p.first_names) for p in people]
        who = " and ".join(names) if len(names) < 3 else f"{names[0]} et al."
        if not names:
            who = entry.fields.get("organization") or entry.fields.get("publisher") or entry.fields.get("title", key)
        who = who.replace("{", "").replace("}", "")
        out[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return out


def portable(text: str, lang: str, chapters: dict[str, tuple[int, str]], equations: dict[str, int]) -> str:
    """One markdown cell's prose for notebook front ends: citations become their text, chapter references links to
    the edition's notebooks, site links words, numbered equations ``\\tag``, dropdowns ``<details>``, ``(label)=``
    lines go, and ``{glue:text}`` becomes ``{eval}`glued("name")``` (jupyterlab-myst)."""

    def cite(match: re.Match) -> str:
        return "(" + "; ".join(citations().get(k.strip(), k.strip()) for k in match.group(1).split(",")) + ")"

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
    text = re.sub(r"\{cite(?::[a-z]+)?\}`([^`]+)`", cite, text)
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
    # each chapter's label stem (``cifar10-cnn``) -> (its number, its edition's file name)
    chapters = {
        re.sub(r"^\d+_", "", s.stem).replace("_", "-"): (n, s.with_suffix(".ipynb").name)
        for n, s in enumerate(sources, start=1)
    }
    prose = [cell for cell in nb.cells if cell.cell_type == "markdown"]
    # the labels of ``$$ ... $$ (label)`` equations, numbered in order of appearance
    labels = [label for c in prose for label in re.findall(r"^\$\$\s*\(([\w-]+)\)\s*$", c.source, flags=re.M)]
    equations = {label: i for i, label in enumerate(dict.fromkeys(labels), start=1)}
    for cell in prose:
        cell.source = portable(cell.source, lang, chapters, equations)
    return nb


def sources(directory: Path = NOTEBOOKS) -> list[Path]:
    """The chapters' MyST sources, in chapter order."""
    return sorted(p for p in Path(directory).glob("*.md") if SOURCE.fullmatch(p.name))


def pair_of(source: Path, lang: str | None = None) -> Path:
    """The generated notebook of a source: both languages, or the ``lang`` edition."""
    return source.parent / (lang or "") / source.with_suffix(".ipynb").name


def read_source(source: Path):
    """The chapter as a notebook, exactly as its ``.md`` says (no Colab cell, no ids)."""
    return jupytext.read(source, fmt="md:myst")


def generate(source: Path, lang: str | None = None):
    """A generated notebook of a source (``lang``: one language's edition): no outputs, the Colab cell, ids."""
    nb = read_source(source)
    if lang is not None:
        nb = edition_cells(bilingual.split(nb, lang, name=source.name), lang, sources(source.parent))
    nb.metadata.pop("jupytext", None)  # the pair is generated, not a Jupytext-paired file
    nb.metadata["kernelspec"] = dict(KERNELSPEC if lang is None else EDITION_KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    colab_cell.apply(nb, colab_cell.cell_source(lang=lang))
    seen: dict[str, int] = {}  # ids from each cell's type and source; repeats get a numbered suffix
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:12]
        seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
    return nb


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


_VERSION = re.compile(r'("version": )"\d+\.\d+\.\d+"')


def _same(written: str, wanted: str) -> bool:
    """The two renderings are equal, the Python version in ``language_info`` aside."""
    return _VERSION.sub(r'\1"*"', written) == _VERSION.sub(r'\1"*"', wanted)


def stale(directory: Path = NOTEBOOKS) -> list[Path]:
    """Generated notebooks that are missing or differ from what :func:`generate` writes."""
    return sync(directory, write=False)


def orphans(directory: Path = NOTEBOOKS) -> list[Path]:
    """``.ipynb`` files in the notebooks folders that no source generates."""
    made = {pair_of(s, lang) for s in sources(directory) for lang in (None, *bilingual.LANGS)}
    found = [p for sub in ("", *bilingual.LANGS) for p in (Path(directory) / sub).glob("*.ipynb")]
    return sorted(p for p in found if p not in made)


def sync(directory: Path = NOTEBOOKS, write: bool = True) -> list[Path]:
    """Every missing or out-of-date generated notebook, (re)written unless not ``write``."""
    out = []
    for source in sources(directory):
        for lang in (None, *bilingual.LANGS):
            path, text = pair_of(source, lang), render(generate(source, lang))
            if not path.exists() or not _same(path.read_text(encoding="utf-8"), text):
                if write:
                    path.parent.mkdir(exist_ok=True)
                    path.write_text(text, encoding="utf-8")
                out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.book.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a pair is out of date")
    args = parser.parse_args(argv)
    extra = orphans()
    if args.check:
        bad = stale()
        for path in bad:
            print(f"out of date: {path.relative_to(ROOT)} (run `make notebooks`)", file=sys.stderr)
        for path in extra:
            print(f"no source for {path.relative_to(ROOT)}: write its .md or delete it", file=sys.stderr)
        return 1 if bad or extra else 0
    for path in sync():
        print(f"wrote {path.relative_to(ROOT)}")
    for path in extra:
        print(f"warning: no source for {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
