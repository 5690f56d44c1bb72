"""The whole book as a PDF, one per language, printed by headless Chromium.

    python -m helpers.book.pdf          # after the sites are built: writes _build/html/pdf/maas-course-{en,zh}.pdf

For each language, Jupyter Book builds that site's project (``build/site/<lang>``, assembled by
:mod:`helpers.book.site`) as one HTML page (Sphinx's ``singlehtml`` builder, from a table of
contents whose root is a generated cover page), and Chromium prints it to PDF once MathJax has
typeset it and every figure has loaded, with the exercises' solutions opened. Nothing is fetched:
the page uses the site's own MathJax and the system's fonts.
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
from helpers.book.site import SITES, TITLES
from helpers.paths import ROOT

PDF_NAME = "maas-course-{lang}.pdf"
COVER = "pdf_cover"  # written into the site's project, not into the repository
SUBTITLES = {
    "en": "An executable course and report. PDF edition of the website, printed on {date}; every number "
          "in it comes from the chapters as last executed (see the execution-status page at the end).",
    "zh": "一门可执行的课程与报告。本 PDF 为网站的印刷版，生成于 {date}；其中每一个数字都来自最近一次执行的各章"
          "（见书末的执行状态页）。",
}


def cover_toc(project: Path) -> dict:
    """The site's table of contents with a cover page as its root instead of the landing page."""
    toc = yaml.safe_load((project / "_toc.yml").read_text(encoding="utf-8"))
    return {**toc, "root": COVER}


def write_cover(project: Path, lang: str) -> Path:
    date = datetime.now(timezone.utc).date().isoformat()
    cover = project / f"{COVER}.md"
    cover.write_text(f"# {TITLES[lang]}\n\n{SUBTITLES[lang].format(date=date)}\n", encoding="utf-8")
    return cover


def build_singlehtml(project: Path, lang: str, out_dir: Path) -> Path:
    """Build the ``lang`` site's project as one HTML page under ``out_dir``; return the page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    toc_path = out_dir / "_toc.yml"
    toc_path.write_text(yaml.safe_dump(cover_toc(project), allow_unicode=True, sort_keys=False), encoding="utf-8")
    write_cover(project, lang)
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jb), "build", str(project), "--toc", str(toc_path), "--path-output",
                             str(out_dir), "--builder", "custom", "--custom-builder", "singlehtml"],
                            capture_output=True, text=True)
    built = out_dir / "_build" / "singlehtml" / f"{COVER}.html"
    if result.returncode != 0 or not built.exists():
        raise RuntimeError(f"the {lang} single-page build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return built


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


def build(site: Path | str = ROOT / "_build" / "html", projects: Path | str = SITES,
          work: Path | str | None = None, langs=bilingual.LANGS) -> dict[str, Path]:
    """Write ``site/pdf/maas-course-<lang>.pdf`` for each language; return the paths."""
    site, projects = Path(site), Path(projects)
    work = Path(work) if work else projects.parent / "pdf"
    with ThreadPoolExecutor(max_workers=len(langs)) as pool:  # the two Sphinx builds side by side
        futures = {lang: pool.submit(build_singlehtml, projects / lang, lang, work / lang) for lang in langs}
        pages = {lang: future.result() for lang, future in futures.items()}
    pdfs = {}
    with browser.chromium() as ctx:
        for lang, page in pages.items():
            pdfs[lang] = print_pdf(page, site / "pdf" / PDF_NAME.format(lang=lang), lang, ctx)
    return pdfs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "_build" / "html", help="the built sites (default: _build/html)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for lang, path in build(args.site).items():
        print(f"{lang}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"PDFs printed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
