"""The whole book as a PDF, one per language, printed by headless Chromium.

    python -m helpers.book.pdf          # after the sites are built: writes _build/html/pdf/maas-course-{en,zh}.pdf

Each site's project is built again as one page (``singlehtml``); Chromium puts a cover first, opens the
solutions and prints once MathJax and every figure are done.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from helpers.book import browser
from helpers.book.bilingual import LANGS
from helpers.book.site import PDF_NAME, SITES, TITLES, jupyter_book_build
from helpers.paths import ROOT

SUBTITLES = {
    "en": "An executable course and report. PDF edition of the website, printed on {date}; every number "
    "in it comes from the chapters as last executed (see the execution-status page at the end).",
    "zh": "一门可执行的课程与报告。本 PDF 为网站的印刷版，生成于 {date}；其中每一个数字都来自最近一次执行的各章"
    "（见书末的执行状态页）。",
}
#: in the single page, the site's home page gives way to the cover; the chapters stay
COVER_JS = """([title, subtitle]) => {
  // the root page's section holds the home page's own text, then the chapters (.toctree-wrapper)
  const home = document.querySelector('article.bd-article > section');
  const chapters = home ? home.querySelectorAll(':scope > .toctree-wrapper') : [];
  if (!chapters.length) throw new Error('the single page has no chapters under its home page');
  for (const child of [...home.children]) if (!child.classList.contains('toctree-wrapper')) child.remove();
  const cover = document.createElement('section');
  cover.className = 'pdf-cover';
  cover.style.breakAfter = 'page';
  const h = document.createElement('h1'); h.textContent = title;
  const p = document.createElement('p'); p.textContent = subtitle;
  cover.append(h, p);
  home.prepend(cover);
}"""


def build_singlehtml(project: Path) -> Path:
    """Build a site's project, already built as HTML, as one page (same arguments: nothing is read again)."""
    jupyter_book_build(project, "--builder", "singlehtml")
    built = project / "_build" / "singlehtml" / "index.html"
    if not built.exists():
        raise RuntimeError(f"the single-page build wrote no {built}")
    return built


def print_pdf(page: Path, target: Path, lang: str, context) -> Path:
    """Print an HTML page to ``target`` in the Chromium ``context`` (MathJax done, images loaded)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tab = context.new_page()
    tab.goto(page.resolve().as_uri(), wait_until="load")
    tab.evaluate(browser.MATHJAX_DONE)
    tab.evaluate(browser.IMAGES_DONE)
    date = datetime.now(UTC).date().isoformat()
    tab.evaluate(COVER_JS, [TITLES[lang], SUBTITLES[lang].format(date=date)])
    tab.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    tab.emulate_media(media="print")
    tab.pdf(
        path=str(target),
        format="A4",
        print_background=True,
        outline=True,
        tagged=True,
        margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
        display_header_footer=True,
        header_template="<span></span>",
        footer_template=(
            '<div style="font-size:8px;width:100%;text-align:center;">'
            f'{TITLES[lang]} · <span class="pageNumber"></span>/<span class="totalPages"></span></div>'
        ),
    )
    tab.close()
    return target


def build(site: Path | str = ROOT / "_build" / "html", projects: Path | str = SITES) -> dict[str, Path]:
    """Write ``site/pdf/maas-course-<lang>.pdf`` for each language; return the paths."""
    site, projects = Path(site), Path(projects)
    with ThreadPoolExecutor(max_workers=len(LANGS)) as pool:  # the two Sphinx builds side by side
        pages = dict(zip(LANGS, pool.map(build_singlehtml, [projects / lang for lang in LANGS])))
    with browser.chromium() as ctx:
        return {
            lang: print_pdf(page, site / "pdf" / PDF_NAME.format(lang=lang), lang, ctx) for lang, page in pages.items()
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--site", type=Path, default=ROOT / "_build" / "html", help="the built sites (default: _build/html)")
    add("--projects", type=Path, default=SITES, help="the sites' Sphinx projects, built as HTML (default: build/site)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for lang, path in build(args.site, args.projects).items():
        print(f"{lang}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"PDFs printed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
