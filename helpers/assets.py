"""Offline web assets for the book: MathJax 3 from the npm registry, verified and cached.

    python -m helpers.assets book/_static     # installs book/_static/mathjax/

The rendered pages then load MathJax from the site itself, never from a CDN.
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
