"""Serve's autoscaler under a step in load, with the settings ``deploy/ray/serve_config.yaml`` ships.

The distributed-serving chapter shortens the autoscaler's delays so that its run stays short (a
look-back of 2 s, delays of a few seconds). This benchmark runs the shipped ``autoscaling_config``
unchanged (look-back, upscale and downscale delays, target requests in flight, minimum, initial and
maximum replicas) on a local cluster with one node per possible replica (one CPU slot each), the
article's CNN (seeded, untrained) as the model, and the chapter's low, high, low load: one client,
then ``--clients`` clients, then one client for longer than the downscale delay. It records when
each replica was asked for (running or starting) and when it ran, counted from the start of the
step up and from its end, and the requests per second and latency by number of running replicas.
The replicas and handles report their queues at Ray's default interval, as on a real cluster (the
cluster helper shortens it for the chapter).

Usage: ``python benchmarks/autoscaling.py [--clients 32] [--low 20] [--high 120] [--after 360]
[--out results/autoscaling.json]`` from the repository root (about twelve minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_modes import export_seeded_cnn  # noqa: E402


def changes(replicas, column: str, since: float) -> list[dict]:
    """Each change of ``replicas[column]`` after ``since`` (s): when, from how many to how many."""
    part = replicas[replicas["t"] >= since]
    values = part[column].astype(int).tolist()
    times = part["t"].tolist()
    return [
        {"t": round(times[i] - since, 2), "from": values[i - 1], "to": values[i]}
        for i in range(1, len(values))
        if values[i] != values[i - 1]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="clients during the step up")
    parser.add_argument("--low", type=float, default=20.0, help="seconds of one client before the step")
    parser.add_argument("--high", type=float, default=120.0, help="seconds of the step")
    parser.add_argument("--after", type=float, default=360.0, help="seconds of one client after it")
    parser.add_argument("--out", default="results/autoscaling.json")
    args = parser.parse_args()

    from helpers.paths import ROOT
    from helpers.serving import loadtest, ray_cluster, ray_serve
    from helpers.serving import ray_experiments as rx

    # the cluster helper shortens how often replicas and handles report their queues to the autoscaler
    # (0.5 s); a real cluster keeps Ray's default, so this benchmark does too
    pushes = [k for k in ray_cluster.ENVIRONMENT if k.endswith("AUTOSCALING_METRIC_PUSH_INTERVAL_S")]
    for name in pushes:
        ray_cluster.ENVIRONMENT.pop(name)
        os.environ.pop(name, None)
    config = yaml.safe_load((ROOT / "deploy" / "ray" / "serve_config.yaml").read_text())
    [deployment] = config["applications"][0]["deployments"]
    shipped = deployment["autoscaling_config"]
    model, images = export_seeded_cnn(Path(tempfile.mkdtemp(prefix="autoscaling_")))
    bodies = loadtest.request_bodies(images, 1, 512, "b64")
    with ray_cluster.LocalCluster(nodes=shipped["max_replicas"], node_cpus=1):
        url = ray_serve.start_serve()
        app = ray_serve.application(model, max_ongoing_requests=deployment["max_ongoing_requests"], autoscaling=shipped)
        ray_serve.deploy(app, running=shipped["initial_replicas"])
        cap = 10**7
        phases = [(1, args.low, cap), (args.clients, args.high, cap), (1, args.after, cap)]
        step = rx.load_step(f"{url}/v1/models/{ray_serve.DEFAULT_NAME}:predict", bodies, phases)
    spans, reps = step["phases"], step["replicas"]
    reps = reps.assign(asked=reps["RUNNING"] + reps["STARTING"])
    high_start, high_end = float(spans.loc[1, "start"]), float(spans.loc[1, "end"])
    windows = rx.windows(step["requests"], step["replicas"], width=1.0)
    summary = rx.step_summary(windows, spans).reset_index()
    record = {
        "recorded": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "ray": __import__("ray").__version__,
        "autoscaling_config": shipped,
        "settings": {**vars(args), "ray_defaults_kept": pushes},
        "asked_from_step": changes(reps, "asked", high_start),
        "running_from_step": changes(reps, "RUNNING", high_start),
        "running_from_end": changes(reps, "RUNNING", high_end),
        "errors": int(step["requests"]["status"].ne(200).sum()),
        "summary": json.loads(summary.to_json(orient="records")),
    }
    print(json.dumps({k: v for k, v in record.items() if k != "summary"}, indent=1))
    print(summary.to_string())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
