"""The ablation ladder's building blocks, and training that survives a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers.topics import recipe as R
from helpers.topics import recipe_parts as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_keras_units_match_airbench_per_step_effect():
    lr, wd = R.keras_sgd_settings(1024)
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    assert lr == pytest.approx(11.5 / kilostep * 1024)  # summed loss -> mean loss
    # per-step decay of a weight at steady momentum: torch lr*wd/(1-m) == keras lr*wd
    torch_decay = (11.5 / kilostep) * (0.0153 * 1024 / kilostep) / (1 - 0.85)
    assert lr * wd == pytest.approx(torch_decay)
    # the decay coefficient does not depend on the batch size; the rate is proportional to it
    assert R.keras_sgd_settings(256)[1] == pytest.approx(wd)
    assert R.keras_sgd_settings(256)[0] == pytest.approx(lr / 4)


def test_ladder_is_cumulative_one_change_per_rung():
    rungs = R.ladder(256, 4, 0.25, 1000, mixed_precision=True)
    ids = [r for r, _, _ in rungs]
    assert ids[0] == "article" and ids[-1] == "bf16" and len(set(ids)) == len(ids)
    for (_, _, before), (rung, _, after) in zip(rungs, rungs[1:]):
        changed = {k for k, v in vars(after).items() if getattr(before, k) != v}
        assert changed, f"rung {rung} changes nothing"
        # later rungs keep every earlier change
        assert all(getattr(after, k) == getattr(before, k) for k in vars(before) if k not in changed)
    assert rungs[0][2].softmax_head and not rungs[1][2].softmax_head
    assert R.strong_recipe(256, 4, 0.25).val_size == 0 and R.strong_recipe(256, 4, 0.25).tta == 2


def test_epoch_data_depends_only_on_seed_and_epoch_and_keeps_labels():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 300)
    r = R.Recipe(augment=True)
    original = x.copy()
    a1, b1 = P.epoch_data(x, y, 3, 7, r)
    a2, b2 = P.epoch_data(x, y, 3, 7, r)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    a3, _ = P.epoch_data(x, y, 4, 7, r)
    assert not np.array_equal(a1, a3)
    assert sorted(b1.tolist()) == sorted(y.tolist())
    assert np.array_equal(x, original)  # the training set itself is never modified
    plain, labels = P.epoch_data(x, y, 0, 7, R.Recipe(augment=False))
    order = np.random.default_rng([7, 0]).permutation(300)
    assert np.array_equal(plain, x[order]) and np.array_equal(labels, y[order])


def test_flips_alternate_between_epochs():
    x = np.zeros((64, 32, 32, 3), dtype=np.uint8)
    x[:, :, :16] = 255  # left half white: a flip moves it to the right
    y = np.arange(64) % 10
    r = R.Recipe(augment=True, translate=0)
    e0, _ = P.epoch_data(x, y, 0, 1, r)
    e1, _ = P.epoch_data(x, y, 1, 1, r)
    # the same image (same permutation position differs by epoch), so count flips instead
    flipped0 = int((e0[:, 0, 0, 0] == 0).sum())
    flipped1 = int((e1[:, 0, 0, 0] == 0).sum())
    assert flipped0 + flipped1 == 64  # each image is flipped in exactly one of two consecutive epochs


def test_whitening_filters_whiten_patches():
    from helpers import models

    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 32, 32, 1))
    x = np.clip(
        128
        + 40
        * np.concatenate([base, base * 0.5 + 0.5 * rng.normal(size=base.shape), rng.normal(size=base.shape)], axis=3),
        0,
        255,
    ).astype(np.uint8)
    k = models.whitening_filters(x, eps=0.0)
    assert k.shape == (2, 2, 3, 24)
    assert np.allclose(k[..., 12:], -k[..., :12])
    z = (x.astype(np.float64) / 255 - models.CIFAR_MEAN) / models.CIFAR_STD
    patches = np.stack([z[:, i : i + 31, j : j + 31, :] for i in (0, 1) for j in (0, 1)], axis=3).reshape(-1, 12)
    out = patches @ k[..., :12].reshape(12, 12)
    cov = out.T @ out / len(out)
    assert np.allclose(cov, np.eye(12), atol=1e-6)


def _recipe_cmd(ckpt, result):
    return [
        sys.executable,
        "-m",
        "helpers.topics.recipe",
        "--rung",
        "lookahead",
        "--epochs",
        "3",
        "--train-size",
        "1024",
        "--test-size",
        "200",
        "--batch-size",
        "128",
        "--width",
        "0.125",
        "--checkpoint-dir",
        str(ckpt),
        "--result",
        str(result),
    ]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_training_resumes_without_losing_an_epoch(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    # the reference: the same run, never interrupted
    ref = subprocess.run(
        _recipe_cmd(tmp_path / "ref", tmp_path / "ref.json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ref.returncode == 0, ref.stderr[-2000:]
    reference = json.loads((tmp_path / "ref.json").read_text())

    # the same run, killed with SIGKILL as soon as its first epoch is checkpointed
    proc = subprocess.Popen(
        _recipe_cmd(tmp_path / "ckpt", tmp_path / "out.json"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 200
    for line in proc.stdout:
        if line.startswith("epoch 1 done"):
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the first epoch never finished"
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out.json").exists()
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["epochs_done"] in (1, 2)

    again = subprocess.run(
        _recipe_cmd(tmp_path / "ckpt", tmp_path / "out.json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads((tmp_path / "out.json").read_text())
    assert resumed["resumed_from_epoch"] == state["epochs_done"]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]  # none lost, none repeated
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in reference["history"]]
    assert resumed["test_accuracy"] == reference["test_accuracy"]


def test_checkpoint_of_another_run_is_refused(tmp_path):
    pytest.importorskip("keras")
    from helpers import env

    env.setup("tensorflow", 0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 256)
    r = R.Recipe(arch="article", softmax_head=False, epochs=1, batch_size=128)
    R.train(r, x, y, x[:50], y[:50], checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different run"):
        R.train(r.replace(batch_size=64), x, y, x[:50], y[:50], checkpoint_dir=tmp_path)
