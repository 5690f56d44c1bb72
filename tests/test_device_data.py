"""tools/device_data.py: CIFAR-10 packed into chunks that fit the device's upload limit, and staged back."""

from __future__ import annotations

import importlib.util
import lzma
from pathlib import Path

import numpy as np
import pytest

from helpers import data

spec = importlib.util.spec_from_file_location(
    "device_data", Path(__file__).resolve().parent.parent / "tools" / "device_data.py"
)
device_data = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_data)


def test_pack_splits_at_the_limit_and_stage_restores_every_byte(tmp_path):
    rng = np.random.default_rng(0)
    names = ("a.bin", "b.bin", "c.bin")
    for name in names:  # random bytes: xz cannot shrink them, so each chunk's size is predictable
        (tmp_path / name).write_bytes(rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    chunks = device_data.pack(tmp_path / "out", tmp_path, limit=90_000, names=names)
    assert [sorted(f.name for f in c.iterdir()) for c in chunks] == [["a.bin.xz", "b.bin.xz"], ["c.bin.xz"]]
    assert all(sum(f.stat().st_size for f in c.iterdir()) <= 90_000 for c in chunks)
    cache = tmp_path / "cache"
    assert device_data.stage(tmp_path / "out", cache, names=names) == []
    for name in names:
        assert (cache / "cifar-10-batches-bin" / name).read_bytes() == (tmp_path / name).read_bytes()


def test_stage_names_what_is_missing_and_refuses_a_damaged_batch(tmp_path):
    (tmp_path / "chunks" / "1").mkdir(parents=True)
    (tmp_path / "chunks" / "1" / "test_batch.bin.xz").write_bytes(lzma.compress(b"\0" * data.FILE_BYTES))
    with pytest.raises(data.DataError, match="corrupted: MD5"):
        device_data.stage(tmp_path / "chunks", tmp_path / "cache")
    assert not (tmp_path / "cache" / "cifar-10-batches-bin" / "test_batch.bin").exists()
    (tmp_path / "chunks" / "1" / "test_batch.bin.xz").unlink()
    assert device_data.stage(tmp_path / "chunks", tmp_path / "cache") == list(data.BIN_MD5)


def test_pack_refuses_a_damaged_source(tmp_path):
    (tmp_path / "data_batch_1.bin").write_bytes(b"short")
    with pytest.raises(data.DataError, match="truncated"):
        device_data.pack(tmp_path / "out", tmp_path, names=("data_batch_1.bin",))
