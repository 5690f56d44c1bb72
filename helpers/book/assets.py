"""Offline web assets for the book: MathJax 3 from the npm registry, verified and cached.

    python -m helpers.book.assets book/_static     # installs book/_static/mathjax/ (and caches axe-core)

The rendered pages then load MathJax from the site itself, never from a CDN. axe-core, the
accessibility engine the browser tests inject into the pages, is cached beside it (never shipped
with the site).
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
from pathlib import Path

from helpers import fetch

MATHJAX = ("mathjax", "3.2.2")
MATHJAX_INTEGRITY = ("sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/"
                     "FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
#: the parts of the es5 build that a page using tex-chtml.js loads
MATHJAX_FILES = ("es5/tex-chtml.js", "es5/output/chtml/fonts/woff-v2/")


AXE = ("axe-core", "4.14.1")
AXE_INTEGRITY = ("sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37O"
                 "gudVGtQ==")


def fetch_axe() -> Path:
    """Make sure axe-core's ``axe.min.js`` is in the cache (verified against npm's integrity); return it."""
    target = fetch.cache_root() / f"axe-core-{AXE[1]}"
    stamp = target / ".integrity"
    if stamp.exists() and stamp.read_text() == AXE_INTEGRITY and (target / "axe.min.js").exists():
        return target / "axe.min.js"
    with fetch.scratch_dir(target.parent) as tmp:
        tgz = fetch.npm_tarball(*AXE, integrity=AXE_INTEGRITY, workdir=tmp)
        with tarfile.open(tgz, "r:gz") as archive:
            archive.extractall(Path(tmp) / "unpacked", members=[archive.getmember("package/axe.min.js"),
                                                                 archive.getmember("package/LICENSE")],
                               filter="data")
        if target.exists():
            shutil.rmtree(target)
        (Path(tmp) / "unpacked" / "package").rename(target)
    stamp.write_text(AXE_INTEGRITY)
    return target / "axe.min.js"


def mathjax_cache() -> Path:
    return fetch.cache_root() / f"mathjax-{MATHJAX[1]}"


def fetch_mathjax() -> Path:
    """Make sure MathJax's es5 build is in the cache (verified against npm's integrity)."""
    target = mathjax_cache()
    stamp = target / ".integrity"
    if stamp.exists() and stamp.read_text() == MATHJAX_INTEGRITY:
        return target
    with fetch.scratch_dir(target.parent) as tmp:
        tgz = fetch.npm_tarball(*MATHJAX, integrity=MATHJAX_INTEGRITY, workdir=tmp)
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tgz, "r:gz") as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and any(m.name.removeprefix("package/").startswith(p) for p in MATHJAX_FILES)]
            archive.extractall(unpacked, members=members, filter="data")
        if target.exists():
            shutil.rmtree(target)
        (unpacked / "package").rename(target)
    stamp.write_text(MATHJAX_INTEGRITY)
    return target


def install_mathjax(static_dir: Path | str) -> Path:
    """Copy MathJax into ``static_dir/mathjax`` (the book's ``mathjax_path`` points there)."""
    source = fetch_mathjax() / "es5"
    dest = Path(static_dir) / "mathjax"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Install offline MathJax into the book's static folder.")
    parser.add_argument("static_dir", type=Path, nargs="?", default=Path("book/_static"))
    args = parser.parse_args(argv)
    print(f"MathJax {MATHJAX[1]} installed in {install_mathjax(args.static_dir)}")
    print(f"axe-core {AXE[1]} (for the accessibility tests) cached at {fetch_axe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
