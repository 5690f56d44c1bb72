"""Build the website from executed notebooks: the one build that ``make book`` and the tests share.

    python -m helpers.book.site --profile cpu     # build/executed/cpu -> book/{en,zh}/ -> _build/html

The executed notebooks are split into language pages (:mod:`helpers.book.bilingual`, which also
writes the execution-status page), then Jupyter Book builds the site with warnings as errors
(``-W -n``: a broken cross-reference, citation or glued value fails the build). The tests build
the same way in a scratch copy of the book (:func:`scratch_copy`), so the site they check is the
site ``make book`` publishes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.book import bilingual
from helpers.paths import BOOK, EXECUTED, ROOT

#: what a book root holds besides the generated pages
BOOK_FILES = ("_config.yml", "_toc.yml")
#: generated inside book/: never copied into a scratch book
GENERATED = ("*.ipynb", "status.md", "pdf_cover.md")


class SiteError(RuntimeError):
    """The site did not build; the message holds the end of Jupyter Book's output."""


def scratch_copy(dest: Path | str, root: Path = ROOT) -> Path:
    """A copy of the book's sources (configuration, table of contents, hand-written pages and
    static assets, MathJax included) in ``dest``, without any generated page; returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        shutil.copy(root / name, dest / name)
    shutil.copytree(root / "book", dest / "book", ignore=shutil.ignore_patterns(*GENERATED), dirs_exist_ok=True)
    if not (dest / "book" / "_static" / "mathjax" / "tex-chtml.js").exists():
        raise SiteError("MathJax is missing from book/_static: run `make assets` first")
    return dest


def build(executed: Path | str, root: Path = ROOT, quiet: bool = True) -> Path:
    """Write the language pages of ``executed`` into ``root/book`` and build ``root``'s site;
    return its HTML folder. Raises :class:`SiteError` with the build's messages if it fails."""
    bilingual.publish(executed, Path(root) / BOOK.name)
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going"],
                            capture_output=quiet, text=True)
    if result.returncode != 0:
        raise SiteError("the site did not build (warnings count as errors):\n"
                        + ((result.stdout or "")[-5000:] + (result.stderr or "")[-3000:] if quiet else ""))
    return Path(root) / "_build" / "html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.book.site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True, help="which executed run to publish (build/executed/<profile>)")
    parser.add_argument("--verbose", action="store_true", help="show Jupyter Book's own output")
    args = parser.parse_args(argv)
    executed = EXECUTED / args.profile
    try:
        html = build(executed, quiet=not args.verbose)
    except (SiteError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"site: {html.relative_to(ROOT)}/index.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
