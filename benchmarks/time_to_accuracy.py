"""Time-to-accuracy and images per second for every rung of the ablation ladder, side by side in one run.

    python benchmarks/time_to_accuracy.py                                  # cpu-sized defaults
    KERAS_BACKEND=jax python benchmarks/time_to_accuracy.py --preset gpu   # the GPU reference run

Every rung trains from scratch on the same data with the same batch size and epochs, on the same
machine, in this one process; then the top recipe is repeated (``--repeats``) with fresh seeds and
a warm (already compiled) model, which is how the public single-GPU records (airbench) are timed.
Results go to stdout and, with ``--out``, to a JSON file (the GPU run is committed in
``results/gpu_runs.json`` and shown in chapter 05 as a recorded run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRESETS = {
    "cpu": {
        "epochs": 2,
        "batch_size": 256,
        "width": 0.25,
        "train_size": 10000,
        "test_size": 2000,
        "repeats": 1,
        "mixed_precision": False,
    },
    "gpu": {
        "epochs": 10,
        "batch_size": 1024,
        "width": 1.0,
        "train_size": None,
        "test_size": None,
        "repeats": 5,
        "mixed_precision": True,
    },
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--width", type=float)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--repeats", type=int, help="timed repeats of the top recipe on a warm model")
    parser.add_argument("--rungs", default="all", help="comma-separated rung ids, or 'all', or 'none'")
    parser.add_argument("--budget", type=float, default=1e9, help="seconds; rungs not started by then are skipped")
    parser.add_argument("--out", type=Path, help="write every result as JSON here")
    args = parser.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    for key in ("epochs", "batch_size", "width", "train_size", "test_size", "repeats"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)

    from helpers import env

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    hw = env.setup(backend, 0, deterministic=False)
    from helpers.data import load_cifar10
    from helpers.topics import recipe as R

    t0 = time.perf_counter()
    data = load_cifar10(cfg["train_size"], cfg["test_size"], 0)
    record = {
        "backend": backend,
        "hardware": env.describe(hw) if hasattr(env, "describe") else str(hw),
        "versions": env.versions(("python", "numpy", "keras", "tensorflow", "jax", "jaxlib")),
        "config": cfg,
        "rungs": [],
        "repeats": [],
    }

    def save():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, indent=1) + "\n")

    ladder = R.ladder(cfg["batch_size"], cfg["epochs"], cfg["width"], 0, cfg["mixed_precision"])
    wanted = [r for r, _, _ in ladder] if args.rungs == "all" else [] if args.rungs == "none" else args.rungs.split(",")
    print(f"{'rung':<11}{'change':<52}{'test acc':>9}{'train s':>9}{'img/s':>9}", flush=True)
    for rung, change, recipe in ladder:
        if rung not in wanted:
            continue
        if time.perf_counter() - t0 > args.budget:
            print(f"{rung:<11}skipped: over the {args.budget:.0f} s budget", flush=True)
            continue
        res = R.train(recipe, data.x_train, data.y_train, data.x_test, data.y_test, seed=0)
        row = {
            "rung": rung,
            "change": change,
            "test_accuracy": res.test_accuracy,
            "train_seconds": res.train_seconds,
            "images_per_second": res.images_per_second,
            "first_epoch_seconds": res.epoch_seconds[0],
            "epochs": res.epochs_done,
            "params": res.params,
        }
        record["rungs"].append(row)
        save()
        print(
            f"{rung:<11}{change[:50]:<52}{res.test_accuracy:>9.2%}{res.train_seconds:>9.1f}"
            f"{res.images_per_second:>9.0f}",
            flush=True,
        )

    top = R.strong_recipe(cfg["batch_size"], cfg["epochs"], cfg["width"], 0, cfg["mixed_precision"])
    if cfg["repeats"] and time.perf_counter() - t0 <= args.budget:
        model = None
        print(f"top recipe, {cfg['repeats']} timed runs on a warm model (first run compiles):", flush=True)
        for seed in range(cfg["repeats"] + 1):
            if seed and time.perf_counter() - t0 > args.budget:
                break
            res = R.train(top, data.x_train, data.y_train, data.x_test, data.y_test, seed=seed, warm_model=model)
            model = res.model
            row = {
                "seed": seed,
                "warm": bool(seed),
                "test_accuracy": res.test_accuracy,
                "test_accuracy_no_tta": res.test_accuracy_no_tta,
                "train_seconds": res.train_seconds,
                "eval_seconds": res.eval_seconds,
                "images_per_second": res.images_per_second,
            }
            record["repeats"].append(row)
            save()
            print(
                f"  seed {seed} ({'warm' if seed else 'compiling'}): {res.test_accuracy:.2%} "
                f"(no TTA {res.test_accuracy_no_tta:.2%}) in {res.train_seconds:.2f} s train "
                f"+ {res.eval_seconds:.2f} s eval",
                flush=True,
            )
        warm = [r for r in record["repeats"] if r["warm"]]
        if warm:
            import numpy as np

            acc = np.array([r["test_accuracy"] for r in warm])
            secs = np.array([r["train_seconds"] + r["eval_seconds"] for r in warm])
            record["top_summary"] = {
                "runs": len(warm),
                "mean_accuracy": float(acc.mean()),
                "std_accuracy": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "mean_seconds": float(secs.mean()),
                "min_accuracy": float(acc.min()),
            }
            print(
                f"top recipe: {acc.mean():.2%} mean over {len(warm)} warm runs, "
                f"{secs.mean():.2f} s mean (train + TTA evaluation)",
                flush=True,
            )
    record["total_seconds"] = time.perf_counter() - t0
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
