"""The chapters' sources and their generated notebooks.

Every chapter is written as a MyST Markdown notebook, ``notebooks/NN_topic.md`` (Jupytext's
``myst`` format): prose and code you can review in a diff. Papermill, Colab and Binder need
``.ipynb`` files, so each source has a generated pair ``notebooks/NN_topic.ipynb``, written here:

    python -m helpers.book.notebooks            # (re)write every .ipynb from its .md (make notebooks)
    python -m helpers.book.notebooks --check    # exit 1 if any .ipynb is missing or out of date

The pair holds the same cells, with no outputs, the Colab bootstrap cell
(:mod:`helpers.book.colab_cell`) before the parameters cell, and cell ids derived from each
cell's content, so a one-line change to the source changes one cell of the pair. Never edit an
``.ipynb`` by hand: ``.gitattributes`` marks them generated, and the tests and the pre-commit
hook check they are in sync.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from helpers.book import colab_cell
from helpers.paths import NOTEBOOKS, ROOT

#: a chapter source: two digits, an underscore, a lower-case topic
SOURCE = re.compile(r"(?P<number>\d\d)_(?P<topic>[a-z0-9_]+)\.md")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def sources(directory: Path = NOTEBOOKS) -> list[Path]:
    """The chapters' MyST sources, in chapter order."""
    return sorted(p for p in Path(directory).glob("*.md") if SOURCE.fullmatch(p.name))


def pair_of(source: Path) -> Path:
    return source.with_suffix(".ipynb")


def read_source(source: Path):
    """The chapter as a notebook, exactly as its ``.md`` says (no Colab cell, no ids)."""
    return jupytext.read(source, fmt="md:myst")


def _content_ids(nb) -> None:
    """Give every cell an id derived from its type and source (repeats get a numbered suffix)."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:12]
        seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def generate(source: Path):
    """The ``.ipynb`` pair of a source: its cells, the Colab cell, content ids, no outputs."""
    nb = read_source(source)
    nb.metadata.pop("jupytext", None)  # the pair is generated, not a Jupytext-paired file
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    colab_cell.apply(nb)
    _content_ids(nb)
    return nb


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


def stale(directory: Path = NOTEBOOKS) -> list[Path]:
    """Sources whose ``.ipynb`` pair is missing or differs from what :func:`generate` writes."""
    out = []
    for source in sources(directory):
        pair = pair_of(source)
        if not pair.exists() or pair.read_text(encoding="utf-8") != render(generate(source)):
            out.append(source)
    return out


def orphans(directory: Path = NOTEBOOKS) -> list[Path]:
    """``.ipynb`` files in the notebooks folder that no source generates."""
    made = {pair_of(s) for s in sources(directory)}
    return sorted(p for p in Path(directory).glob("*.ipynb") if p not in made)


def sync(directory: Path = NOTEBOOKS) -> list[Path]:
    """Write every out-of-date pair; return the sources that were written."""
    written = stale(directory)
    for source in written:
        pair_of(source).write_text(render(generate(source)), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.book.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a pair is out of date")
    parser.add_argument("--dir", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    extra = orphans(args.dir)
    if args.check:
        bad = stale(args.dir)
        for source in bad:
            print(f"out of date: {pair_of(source).relative_to(ROOT) if pair_of(source).is_relative_to(ROOT) else pair_of(source)}"
                  " (run `make notebooks`)", file=sys.stderr)
        for path in extra:
            print(f"no source for {path.name}: write {path.with_suffix('.md').name} or delete it", file=sys.stderr)
        return 1 if bad or extra else 0
    for source in sync(args.dir):
        print(f"wrote {pair_of(source).name}")
    for path in extra:
        print(f"warning: no source for {path.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
