"""Headless Chromium (the system's, driven by Playwright; ``$CHROMIUM`` names another) for the PDFs and
the browser checks of the site."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: flags that make headless Chromium quiet, offline-safe and runnable as root in containers
FLAGS = (
    "--no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --disable-dev-shm-usage --font-render-hinting=none"
).split()


class BrowserMissing(RuntimeError):
    pass


def chromium_path() -> str:
    """The Chromium (or Chrome) executable: ``$CHROMIUM``, else the first one on the PATH."""
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, CANDIDATES)), None)
    if not found:
        raise BrowserMissing("no Chromium found: install it (`make setup` does, with apt-get) or set $CHROMIUM")
    return found


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Playwright ``Browser``) with a fresh profile; closed on exit."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="maas-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


#: resolves once MathJax (if the page loads it) has typeset the page
MATHJAX_DONE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  return !!document.querySelector('mjx-container');
}"""
#: resolves once every <img> has finished loading (or failed)
IMAGES_DONE = """async () => {
  await Promise.all([...document.images].map(img => img.complete ? null :
    new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
  return [...document.images].map(img => ({src: img.getAttribute('src'), width: img.naturalWidth}));
}"""
