"""The published site, checked as readers get it: every internal link and anchor resolves, the
PDFs exist, and in headless Chromium every page opens without console errors, with its maths
typeset, its figures loaded and no serious or critical accessibility violation (axe-core).

All checks use the one site the session builds (the `site` fixture in conftest.py), served over
HTTP on 127.0.0.1; screenshots are saved in build/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from helpers.book import assets, bilingual, browser, pdf, run

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
#: axe-core impacts that fail the audit
BLOCKING = {"serious", "critical"}


class _Page(HTMLParser):
    """Every URL a page refers to, and every id/name an anchor can target."""

    def __init__(self):
        super().__init__()
        self.urls, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "link" and key == "href" and a.get("rel") == "canonical"):
                self.urls.append((tag, a[key]))


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _pages(site: Path) -> list[Path]:
    """The site's pages (not the theme's Jinja macro files that Sphinx copies into _static/)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


def _browser_pages(site: Path) -> list[Path]:
    """The pages a reader sees (the landing page and both sites; not a page that only redirects)."""
    return [p for p in _pages(site) if 'http-equiv="Refresh"' not in p.read_text(encoding="utf-8")[:2000]]


@pytest.fixture(scope="session")
def book_pdfs(ci_lanes, site) -> dict[str, Path]:
    """The PDFs of the session's sites, printed by helpers.book.pdf into site/pdf/ (as `make book` does,
    in the background lane of tests/ci_lane.py)."""
    folder = ci_lanes.pdfs()
    return {lang: folder / pdf.PDF_NAME.format(lang=lang) for lang in bilingual.LANGS}


def test_pdfs_are_printed_in_both_languages(book_pdfs, site):
    assert set(book_pdfs) == set(bilingual.LANGS)
    for lang, path in book_pdfs.items():
        assert path.parent == site / "pdf" and path.name == f"maas-course-{lang}.pdf"
        data = path.read_bytes()
        assert data.startswith(b"%PDF-"), path
        pages = len(re.findall(rb"/Type\s*/Page\b", data))
        assert pages >= 10 * len(run.notebook_paths()) // 2, f"{path.name}: only {pages} pages"


def test_internal_links_and_anchors_resolve(site, book_pdfs):
    """Every relative href/src in every page points at a file of the site, and every #anchor
    at an id in the page it names."""
    broken, checked = [], 0
    for page in _pages(site):
        for tag, url in _parse(page).urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
                continue  # external: launch links, citations' DOIs (not fetched here)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file() or site.resolve() not in target.parents:
                broken.append(f"{page.relative_to(site)}: {tag} {url} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)}: {url} (no #{parts.fragment} in {target.name})")
    print(f"{checked} internal links in {len(_pages(site))} pages")
    assert checked > 100
    assert not broken, "\n".join(broken[:40])


def test_chapter_pages_have_launch_and_download_links(site, root):
    import yaml

    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    org_repo = repo.split("github.com/")[-1]
    for stem, source in run.notebook_paths().items():
        assert source.exists() and source.with_suffix(".md").exists()
        for lang in bilingual.LANGS:
            edition = f"notebooks/{lang}/{source.name}"  # the readers' edition in the page's language
            assert (root / edition).exists(), edition
            urls = [u for _, u in _parse(site / lang / f"{stem}.html").urls]
            assert f"http://localhost:8888/lab/tree/{edition}" in urls, "JupyterLab (local)"
            assert any(
                u.startswith(f"https://mybinder.org/v2/gh/{org_repo}/") and u.endswith(f"urlpath=lab/tree/{edition}")
                for u in urls
            ), "Binder"
            assert f"https://colab.research.google.com/github/{org_repo}/blob/main/{edition}" in urls, "Colab"
            assert f"_sources/{stem}.ipynb" in urls, "download as .ipynb"
            downloaded = nbformat.read(site / lang / "_sources" / f"{stem}.ipynb", as_version=4)
            assert {bilingual.language_of(c) for c in downloaded.cells if c.cell_type == "markdown"} == {lang}
            assert "../pdf/maas-course-en.pdf" in urls and "../pdf/maas-course-zh.pdf" in urls
            html = (site / lang / f"{stem}.html").read_text(encoding="utf-8")
            assert "google.colab" not in html, "the Colab bootstrap cell is not shown on the pages"


def test_status_page_reports_the_run(site, executed_ci):
    summary = json.loads((executed_ci / "summary.json").read_text())
    for lang, title, seconds in (("en", "Execution status", "{:.1f} s"), ("zh", "执行状态", "{:.1f} 秒")):
        html = (site / lang / "status.html").read_text(encoding="utf-8")
        text = " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())
        assert title in text
        for stem, record in summary["notebooks"].items():
            assert f"{stem}.html" in html and seconds.format(record["seconds"]) in text
        assert summary["machine"]["cpu"] in text and f"keras {summary['machine']['versions']['keras']}" in text
        toc_links = [u for _, u in _parse(site / lang / "index.html").urls]
        assert "status.html" in toc_links, "linked from the table of contents"


# --- in a real browser ---------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    """The site on http://127.0.0.1:<port>/ for the module's tests (while its PDFs may still be
    printed into it: pages link to them and load nothing from them)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def chromium():
    try:
        browser.chromium_path()
    except browser.BrowserMissing as exc:
        pytest.fail(f"{exc} (the browser checks need it)")
    with browser.chromium() as context:
        yield context


def _visit(chromium, url: str, dark: bool = False):
    """Open a page; return it with the console errors and outside requests it produced."""
    page = chromium.new_page()
    errors, outside = [], []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def route(r):
        if r.request.url.startswith(url.split("/", 3)[0] + "//" + url.split("/", 3)[2]):
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    if dark:  # a reader whose system is in dark mode (the theme's default mode is "auto")
        page.emulate_media(color_scheme="dark")
    page.goto(url, wait_until="load")
    page.evaluate(browser.MATHJAX_DONE)
    page.evaluate(browser.IMAGES_DONE)
    return page, errors, outside


def _audit(page) -> list[dict]:
    """axe-core's violations on an open page."""
    page.add_script_tag(path=str(assets.fetch_axe()))
    return page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")


@pytest.fixture(scope="module")
def visited(served, chromium, site):
    """Every page of the site, opened once: console errors, outside requests, maths, images and
    the accessibility audit (after the other checks, so axe's script is not counted)."""
    results = {}
    for path in _browser_pages(site):
        rel = path.relative_to(site).as_posix()
        page, errors, outside = _visit(chromium, served + rel)
        maths = page.evaluate("""() => ({
            source: document.querySelectorAll('.math, span.math, div.math').length,
            typeset: document.querySelectorAll('mjx-container').length,
            errors: document.querySelectorAll('mjx-merror, .MathJax_Error').length})""")
        images = page.evaluate(browser.IMAGES_DONE)
        results[rel] = {
            "errors": list(errors),
            "outside": outside,
            "maths": maths,
            "images": images,
            "axe": _audit(page),
        }
        page.close()
    return results


def test_pages_open_without_console_errors(visited):
    bad = {rel: r["errors"] for rel, r in visited.items() if r["errors"]}
    print(f"{len(visited)} pages opened in Chromium, {sum(map(len, bad.values()))} console errors")
    assert len(visited) >= 2 * (len(run.notebook_paths()) + 4) + 1
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)[:4000]


def test_pages_request_nothing_from_outside(visited):
    outside = {rel: r["outside"] for rel, r in visited.items() if r["outside"]}
    assert not outside, outside


def test_maths_is_typeset(visited):
    with_maths = {rel: r["maths"] for rel, r in visited.items() if r["maths"]["source"]}
    assert any(rel.startswith("en/") for rel in with_maths) and any(rel.startswith("zh/") for rel in with_maths)
    for rel, m in with_maths.items():
        assert m["typeset"] >= m["source"] and not m["errors"], f"{rel}: {m}"


def test_figures_load(visited, site):
    for stem in run.notebook_paths():
        for lang in bilingual.LANGS:
            images = visited[f"{lang}/{stem}.html"]["images"]
            empty = [i["src"] for i in images if not i["width"]]
            assert not empty, f"{lang}/{stem}: images that did not load: {empty}"
    figures = sum(len(r["images"]) for r in visited.values())
    assert figures > len(run.notebook_paths())


def test_screenshots(served, chromium):
    """Screenshots of three pages of each site (the landing page, a chapter, the glossary) and of a
    chapter in dark mode (build/screenshots/); the dark page passes the accessibility audit too."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stem = "cifar10_cnn"
    shots = {
        f"{lang}-{name}": (f"{lang}/{name}.html", False)
        for lang in bilingual.LANGS
        for name in ("index", stem, "glossary")
    }
    shots[f"en-{stem}-dark"] = (f"en/{stem}.html", True)
    dark_violations = []
    for name, (rel, dark) in shots.items():
        page, errors, _ = _visit(chromium, served + rel, dark=dark)
        assert not errors, errors
        if dark:
            assert page.evaluate("document.documentElement.dataset.theme") == "dark"
            # figures keep a white background in dark mode (book/_static/maas.css)
            bg = page.evaluate("""() => { const img = document.querySelector('div.cell_output img');
                                     return img && getComputedStyle(img).backgroundColor; }""")
            assert bg in ("rgb(255, 255, 255)", None), bg
        target = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(target), full_page=False)
        if dark:
            figure = page.locator("div.cell_output img").first
            figure.scroll_into_view_if_needed()
            figure.screenshot(path=str(SCREENSHOTS / f"{name}-figure.png"))
            dark_violations.extend(v for v in _audit(page) if v["impact"] in BLOCKING)
        page.close()
        assert target.stat().st_size > 20_000, f"{target} looks empty"
    assert not dark_violations, f"axe-core in dark mode: {dark_violations}"


def test_accessibility_audit(visited):
    """axe-core on every page: no serious or critical violations (minor and moderate ones are
    printed: the theme's tables of pandas output and its sidebar outside landmarks)."""
    blocking = {rel: [v for v in r["axe"] if v["impact"] in BLOCKING] for rel, r in visited.items()}
    blocking = {rel: v for rel, v in blocking.items() if v}
    others = {}
    for r in visited.values():
        for v in r["axe"]:
            if v["impact"] not in BLOCKING:
                others[(v["id"], v["impact"])] = others.get((v["id"], v["impact"]), 0) + v["count"]
    print(
        f"axe-core {assets.AXE[1]} on {len(visited)} pages: {sum(map(len, blocking.values()))} serious or "
        f"critical violations; others (rule, impact: elements): {others}"
    )
    assert not blocking, json.dumps(blocking, indent=1, ensure_ascii=False)[:6000]
