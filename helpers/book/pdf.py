"""The whole book as a PDF, one per language, printed by headless Chromium.

    python -m helpers.book.pdf                 # after the HTML build: writes _build/html/pdf/maas-course-{en,zh}.pdf

For each language, Jupyter Book builds the language's chapters (as listed in ``_toc.yml``), the
references and the execution-status page as one HTML page (Sphinx's ``singlehtml`` builder, from a
temporary table of contents whose root is a generated cover page), and Chromium prints it to PDF
once MathJax has typeset it and every figure has loaded, with the exercises' solutions opened.
Nothing is fetched: the page uses the site's own MathJax and the system's fonts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import yaml

from helpers.book import bilingual, browser
from helpers.paths import ROOT

PDF_NAME = "maas-course-{lang}.pdf"
COVER = "pdf_cover"  # book/<lang>/pdf_cover.md, generated (gitignored)
TITLES = {"en": "AI Large Models as a Service", "zh": "人工智能大模型即服务"}
SUBTITLES = {
    "en": "An executable course and report. PDF edition of the website, printed on {date}; every number "
          "in it comes from the notebooks as last executed (see the execution-status page at the end).",
    "zh": "一门可执行的课程与报告。本 PDF 为网站的印刷版，生成于 {date}；其中每一个数字都来自最近一次执行的笔记本"
          "（见书末的执行状态页）。",
}
PART_NAMES = {"en": "Chapters", "zh": "章节"}


def language_toc(toc: dict, lang: str) -> dict:
    """A table of contents for one language: a cover, its chapters, then the other pages."""
    caption = bilingual.LABELS[lang]
    chapters = [c for part in toc["parts"] if part.get("caption") == caption for c in part["chapters"]]
    if not chapters:
        raise ValueError(f"_toc.yml has no part captioned {caption!r}")
    others = [c for part in toc["parts"] if part.get("caption") not in bilingual.LABELS.values()
              for c in part["chapters"]]
    return {"format": "jb-book", "root": f"book/{lang}/{COVER}",
            "parts": [{"caption": PART_NAMES[lang], "chapters": chapters + others}]}


def write_cover(book_root: Path, lang: str) -> Path:
    date = datetime.now(timezone.utc).date().isoformat()
    cover = book_root / "book" / lang / f"{COVER}.md"
    cover.parent.mkdir(parents=True, exist_ok=True)
    cover.write_text(f"# {TITLES[lang]}\n\n{SUBTITLES[lang].format(date=date)}\n", encoding="utf-8")
    return cover


def build_singlehtml(book_root: Path, lang: str, out_dir: Path) -> Path:
    """Build ``lang``'s chapters as one HTML page under ``out_dir``; return the page."""
    toc = yaml.safe_load((book_root / "_toc.yml").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    toc_path = out_dir / "_toc.yml"
    toc_path.write_text(yaml.safe_dump(language_toc(toc, lang), allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    write_cover(book_root, lang)
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(book_root), "--toc", str(toc_path), "--path-output",
                             str(out_dir), "--builder", "custom", "--custom-builder", "singlehtml"],
                            capture_output=True, text=True)
    built = out_dir / "_build" / "singlehtml" / "book" / lang / f"{COVER}.html"
    if result.returncode != 0 or not built.exists():
        raise RuntimeError(f"the {lang} single-page build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    # singlehtml writes the page's asset paths relative to its output root: put the page there
    page = out_dir / "_build" / "singlehtml" / f"{lang}.html"
    page.write_text(built.read_text(encoding="utf-8"), encoding="utf-8")
    return page


def print_pdf(page: Path, target: Path, lang: str, context=None) -> Path:
    """Print an HTML page to ``target`` with headless Chromium (MathJax done, images loaded)."""
    target.parent.mkdir(parents=True, exist_ok=True)

    def _print(ctx):
        tab = ctx.new_page()
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.evaluate(browser.MATHJAX_DONE)
        tab.evaluate(browser.IMAGES_DONE)
        tab.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        tab.emulate_media(media="print")
        tab.pdf(path=str(target), format="A4", print_background=True, outline=True, tagged=True,
                margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
                display_header_footer=True, header_template="<span></span>",
                footer_template=('<div style="font-size:8px;width:100%;text-align:center;">'
                                 f'{TITLES[lang]} · <span class="pageNumber"></span>/<span class="totalPages"></span></div>'))
        tab.close()

    if context is not None:
        _print(context)
    else:
        with browser.chromium() as ctx:
            _print(ctx)
    return target


def build(book_root: Path | str = ROOT, site: Path | str | None = None, work: Path | str | None = None,
          langs=bilingual.LANGS) -> dict[str, Path]:
    """Write ``site/pdf/maas-course-<lang>.pdf`` for each language; return the paths."""
    book_root = Path(book_root)
    site = Path(site) if site else book_root / "_build" / "html"
    work = Path(work) if work else book_root / "build" / "pdf"
    with ThreadPoolExecutor(max_workers=len(langs)) as pool:  # the two Sphinx builds side by side
        futures = {lang: pool.submit(build_singlehtml, book_root, lang, work / lang) for lang in langs}
        pages = {lang: future.result() for lang, future in futures.items()}
    pdfs = {}
    with browser.chromium() as ctx:
        for lang, page in pages.items():
            pdfs[lang] = print_pdf(page, site / "pdf" / PDF_NAME.format(lang=lang), lang, ctx)
    return pdfs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book-root", type=Path, default=ROOT, help="the Jupyter Book root (default: the repository)")
    parser.add_argument("--site", type=Path, help="the built site (default: <book-root>/_build/html)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for lang, path in build(args.book_root, args.site).items():
        print(f"{lang}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"PDFs printed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
