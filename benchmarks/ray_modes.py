"""Ray Serve's ingress modes beside the hand-built service: requests per second and latency.

Ray 2.60 serves HTTP in three ways, chosen by environment variables that Ray reads when it is
imported (so each mode runs in a fresh process, with a fresh cluster):

* ``default``: Serve's HTTP proxy actor (uvicorn in Python) receives each request and sends it to a
  replica through Ray's actor calls;
* ``throughput``: ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``: direct ingress (the replica itself listens
  for HTTP), gRPC between Serve's processes, buffered request logs, the garbage collector frozen
  after start-up;
* ``haproxy``: ``RAY_SERVE_ENABLE_HA_PROXY=1``: HAProxy, a load balancer written in C, in front of
  the replicas' own HTTP ports. Ray's code binds those ports to every interface of the machine
  (so that HAProxy on other nodes can reach them; on nodes whose address is 127.0.0.1 they stay
  there), and HAProxy opens its statistics and metrics ports on 0.0.0.0: the JSON lists what each
  process listened on;
* ``both``: the two together, as Ray's guide to high throughput on KubeRay sets them.

The model is the article's CNN, seeded and untrained (its cost per image is what matters here),
exported with its preprocessing; one replica on a one-node cluster with one CPU slot, and the
hand-built service of the serving chapter with the same batching settings. Each gets the same
one-image requests (``b64``) from the course's closed-loop load generator at each number of
clients and, when ``wrk`` is installed (Debian's ``wrk`` package), from ``wrk`` for ``--seconds``
at the same numbers of connections. Both services are asked how many threads their process runs and
what ``OMP_NUM_THREADS`` they see.

Usage: ``python benchmarks/ray_modes.py [--requests 2000] [--levels 1 16 64] [--seconds 10]
[--out results/ray_modes.json]`` from the repository root. Prints one table and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = {
    "default": {},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "both": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},  # what Ray's guide sets
}
MAX_BATCH_SIZE, MAX_WAIT_MS = 64, 5.0  # the serving chapter's batching


def export_seeded_cnn(directory: Path) -> tuple[str, object]:
    """The article's CNN, seeded and untrained, exported with its preprocessing (uint8 pixels in) to
    ``directory``: its path, and 256 random images to send it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from helpers import env

    env.setup("tensorflow", seed=0)
    import numpy as np

    from helpers import serving

    paths = serving.export(serving.seeded_article_cnn(), directory)
    images = np.random.default_rng(0).integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)
    return str(paths["saved_model"] or paths["keras"]), images


def wrk(url: str, body: bytes, clients: int, seconds: float) -> dict | None:
    """``wrk`` POSTing ``body`` from ``clients`` connections for ``seconds``: requests/s, p50 and
    p99 ms, non-2xx answers; None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body.decode())}\n"
        )
    out = subprocess.run(
        ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    os.unlink(script.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests/s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50 ms": ms("50%"),
        "p99 ms": ms("99%"),
        "errors": int(bad.group(1)) if bad else 0,
    }


def threads(pid: int) -> dict:
    process = psutil.Process(pid)
    return {"threads": process.num_threads(), "OMP_NUM_THREADS": process.environ().get("OMP_NUM_THREADS", "unset")}


def measure(service: str, url: str, bodies: list[bytes], levels, seconds: float) -> list[dict]:
    """One row per number of clients, from the course's load generator and from wrk."""
    from helpers.serving import loadtest

    rows = []
    for clients in levels:
        loadtest.run_load(url, bodies[: 4 * clients], clients)  # connections open, model warm
        row = loadtest.run_load(url, bodies, clients).row()
        rows.append(
            {
                "service": service,
                "generator": "course",
                **{k: row[k] for k in ("clients", "requests/s", "p50 ms", "p99 ms", "errors")},
            }
        )
        measured = wrk(url, bodies[0], clients, seconds)
        if measured is not None:
            rows.append({"service": service, "generator": "wrk", "clients": clients, **measured})
    return rows


def child(mode: str, model: str, bodies_file: str, levels, seconds: float) -> None:
    """Run in a fresh process with the mode's variables set: one node, one replica; print JSON rows."""
    from helpers.serving import ray_cluster, ray_serve

    bodies = json.loads(Path(bodies_file).read_text())
    bodies = [b.encode() for b in bodies]
    with ray_cluster.LocalCluster(nodes=1, node_cpus=1) as local:
        log = ray_cluster.start_replica_log(local.head_id)
        url = ray_serve.start_serve()
        app = ray_serve.application(model, max_batch_size=MAX_BATCH_SIZE, max_wait_ms=MAX_WAIT_MS, num_replicas=1)
        ray_serve.deploy(app, running=1)
        predict = f"{url}/v1/models/{ray_serve.DEFAULT_NAME}:predict"
        rows = measure(f"Ray, {mode}", predict, bodies, levels, seconds)
        import ray

        [replica] = [p for p in ray.get(log.placements.remote()) if p["stopped"] is None]
        direct = replica_ports(ray_serve.APP_NAME) if mode != "default" else []
        for port in direct:  # direct ingress: the replica's own HTTP server, no proxy in between
            direct_url = f"http://127.0.0.1:{port}/v1/models/{ray_serve.DEFAULT_NAME}:predict"
            rows += measure(f"Ray, {mode}, the replica's own port", direct_url, bodies, levels, seconds)
        haproxy = [p.pid for p in psutil.process_iter(["name"]) if "haproxy" in (p.info["name"] or "")]
        found = {"process": threads(replica["pid"]), "listening": {"replica": listening([replica["pid"]])}}
        if haproxy:
            found["listening"]["haproxy"] = listening(haproxy)
        print("ROWS " + json.dumps({"rows": rows, **found}))


def replica_ports(app: str) -> list[int]:
    """The HTTP ports of the application's replicas under direct ingress, from Serve's controller
    (a benchmark may ask; the deployment never does)."""
    import ray
    from ray import serve

    controller = serve.context._global_client._controller
    groups = ray.get(controller.get_target_groups.remote(app))
    return [t.port for g in groups if str(g.protocol).endswith("HTTP") for t in g.targets]


def listening(pids) -> list[str]:
    """The addresses on which these processes accept TCP connections."""
    return sorted(
        {
            f"{c.laddr.ip}:{c.laddr.port}"
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in set(pids)
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="one-image requests per level (course generator)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk's run at each level")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", default="results/ray_modes.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.bodies, args.levels, args.seconds)

    from helpers.serving import loadtest
    from helpers.serving.service import running_service

    work = Path(tempfile.mkdtemp(prefix="ray_modes_"))
    model, images = export_seeded_cnn(work)
    bodies = loadtest.request_bodies(images, 1, args.requests, "b64")
    (work / "bodies.json").write_text(json.dumps([b.decode() for b in bodies]))

    rows, processes = [], {}
    with running_service(model, max_batch_size=MAX_BATCH_SIZE, max_wait_ms=MAX_WAIT_MS) as hand:
        rows += measure("hand-built", f"{hand.model_url}:predict", bodies, args.levels, args.seconds)
        processes["hand-built"] = threads(hand.process.pid)
    for mode in args.modes:
        command = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--model",
            model,
            "--bodies",
            str(work / "bodies.json"),
            "--levels",
            *map(str, args.levels),
            "--seconds",
            str(args.seconds),
        ]
        done = subprocess.run(command, env={**os.environ, **MODES[mode]}, capture_output=True, text=True, timeout=1800)
        found = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
        if done.returncode or not found:
            print(f"{mode}: failed ({done.returncode})\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        result = json.loads(found[0][5:])
        rows += result["rows"]
        processes[f"Ray, {mode}"] = {**result["process"], "listening": result["listening"]}
    shutil.rmtree(work, ignore_errors=True)

    import pandas as pd

    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    print(json.dumps(processes, indent=1))
    record = {
        "recorded": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "ray": __import__("ray").__version__,
        "requests": args.requests,
        "wrk_seconds": args.seconds,
        "rows": rows,
        "processes": processes,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
