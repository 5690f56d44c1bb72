"""Data-parallel training (helpers.topics.parallel): every mode runs, reports its replicas, and learns the same thing.

Each mode runs in its own process (device layouts are fixed when a framework starts), on 512
images for one epoch: the tests check that the modes work and agree, never how fast they are.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.topics import parallel

TINY = dict(train_size=512, epochs=1, batch_size=64, seed=0, timeout=240)


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    """single, mirrored (2 logical CPU devices) and multiworker (2 processes on 127.0.0.1), once."""
    records = parallel.measure(modes=("single", "mirrored", "multiworker"), devices=2, **TINY)
    return {r["mode"]: r for r in records}


@pytest.mark.slow
def test_single_device_baseline(runs):
    r = runs["single"]
    assert (r["replicas"], r["workers"]) == (1, 1)
    assert r["global_batch_size"] == r["per_replica_batch_size"] == 64
    assert r["steps_per_epoch"] == 512 // 64
    assert r["images_per_second"] > 0 and r["seconds_per_epoch"] > 0


def test_mirrored_over_two_logical_devices(runs):
    r = runs["mirrored"]
    assert r["replicas"] == 2 and r["workers"] == 1
    assert r["per_replica_batch_size"] == 32 and r["loop"] == "fit"


def test_multiworker_two_processes_on_localhost(runs):
    r = runs["multiworker"]
    assert r["workers"] == 2 and r["replicas"] == 2
    assert r["per_replica_batch_size"] == 32


def test_modes_learn_the_same_thing(runs):
    """Same seed, same batches, gradients averaged over the global batch: the same loss up to rounding."""
    base = runs["single"]["final_loss"]
    for mode in ("mirrored", "multiworker"):
        assert runs[mode]["final_loss"] == pytest.approx(base, abs=1e-3), mode


@pytest.mark.slow
def test_same_seed_same_loss(runs):
    again = parallel.measure(modes=("single",), **TINY)[0]
    assert again["final_loss"] == runs["single"]["final_loss"]


def test_relative_table(runs):
    rows = parallel.relative_table(list(runs.values()))
    assert [row["mode"] for row in rows] == ["single", "mirrored", "multiworker"]
    assert rows[0]["vs one device"] == 1.0


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(modes=("bogus",)), "unknown mode 'bogus'"),
        (dict(devices=0, modes=("mirrored",)), "devices=0"),
        (dict(devices=0, modes=("single",)), "devices=0"),
        (dict(devices=3, modes=("mirrored",)), "multiple of the 3 replicas"),
    ],
)
def test_bad_settings_are_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        parallel.measure(**{**TINY, **changes})


@pytest.mark.slow
def test_command_line_rejects_bad_mode(root):
    done = subprocess.run(
        [sys.executable, "-m", "helpers.topics.parallel", "--mode", "bogus"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown mode 'bogus'" in done.stderr and not done.stdout


@pytest.mark.slow
def test_failing_worker_is_reported(monkeypatch):
    """A worker that dies: the group is stopped and the error names it, with its stderr."""

    def argv(args, index):
        if index == 1:
            return [sys.executable, "-c", "import sys; sys.stderr.write('worker one broke'); sys.exit(3)"]
        return [sys.executable, "-c", "import time; time.sleep(60)"]

    monkeypatch.setattr(parallel, "_worker_argv", argv)
    args = parallel.parser().parse_args(["--mode", "multiworker", "--devices", "2", "--timeout", "30"])
    with pytest.raises(RuntimeError, match=r"worker 1 failed(.|\n)*worker one broke"):
        parallel.run_multiworker(args)


def test_worker_env_names_the_cluster():
    env = parallel.worker_env([1111, 2222], 1)
    config = json.loads(env["TF_CONFIG"])
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222"]},
        "task": {"type": "worker", "index": 1},
    }
