"""A worker node killed, and a worker node frozen, under load: ten of each, and what clients saw.

The distributed-serving chapter loses one node once, at the ``ci`` or ``cpu`` profile's size; one
trial says little about a distribution. This benchmark repeats it: a Ray cluster of two nodes on
this machine (one CPU slot each, the cluster helper's health-check settings), the article's CNN
(seeded, untrained: its cost per image is what matters) served with two replicas, one on each node.
In each trial ``--clients`` clients without retries and as many with up to ``--retries`` retries
send one-image requests for ``--seconds`` s; ``--fault-after`` s in, the worker node holding a
replica is

* killed: SIGKILL to every process of the node, as a machine that loses power (its connections
  break at once, so the router learns at once), or
* frozen: SIGSTOP to every process of the node, as a machine that hangs (its connections stay
  open and nothing answers, until Ray's health checks declare the node dead); it is killed after
  the load.

or, in a third series (``namespaces``), cut off: each node runs in a network namespace of its own
(``benchmarks/netns.py``; Linux, as root) and the node's link is cut (a partition). There a
proxy runs on every node and the clients enter through the proxy of the node that is lost, the
retrying ones failing over to the head's proxy as a load balancer would; then, for comparison, a
few partitions with one proxy, on the head, as in the other series.

Then a new worker node is added and Serve places the missing replica on it. A second series
freezes the node with Ray's default health checks (``deploy/ray/`` sets none, so a real cluster
runs with them): the GCS then takes much longer to declare the node dead. Kill and freeze
alternate, so that drift in the machine's speed hits both alike. Per trial: requests sent, in
flight at the fault, failed without retries, retried, lost with retries, seconds until Ray marked
the node dead, until the service answered fully again, until the new node joined and until two
replicas ran again, and the fewest replicas running at any time after the fault.

Usage: ``python benchmarks/node_faults.py [--trials 10] [--clients 4] [--seconds 8] [--out
results/node_faults.json]`` from the repository root, then ``... --series namespaces`` (as root), which
adds its rows to the same file. Prints a summary and writes the JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_modes import export_seeded_cnn  # noqa: E402

COLUMNS = ("requests_sent", "in_flight", "failed", "retried", "lost", "dead_s", "recovery_s")


def series(model: str, bodies, faults, trials: int, args, health_check: dict | None, label: str) -> list[dict]:
    """``trials`` trials of each fault, alternating, on one fresh cluster whose GCS checks the nodes'
    health as ``health_check`` says (None: the cluster helper's settings; {}: Ray's defaults)."""
    from helpers.serving import ray_cluster, ray_serve
    from helpers.serving import ray_experiments as rx

    rows = []
    with ray_cluster.LocalCluster(nodes=2, node_cpus=1, health_check=health_check) as local:
        log = ray_cluster.start_replica_log(local.head_id)
        url = ray_serve.start_serve()
        ray_serve.deploy(ray_serve.application(model, num_replicas=2), running=2)
        predict = f"{url}/v1/models/{ray_serve.DEFAULT_NAME}:predict"
        for trial in range(len(faults) * trials):
            fault = faults[trial % len(faults)]
            loss = rx.node_loss(
                local,
                predict,
                bodies,
                node=rx.worker_with_replica(local, log),
                fault=fault,
                clients=args.clients,
                retries=args.retries,
                seconds=args.seconds if health_check is None else args.default_seconds,
                kill_after=args.fault_after,
                dead_within=None if health_check is None else 300.0,  # Ray's defaults take longer than the load
            )
            back = rx.rejoin(local, running=2)
            rows.append(_row(loss, back, label, fault, trial // len(faults) + 1))
    return rows


def namespaces_series(model: str, bodies, trials: int, args, every_node: bool) -> list[dict]:
    """``trials`` partitions on a cluster whose nodes have network namespaces of their own (run in
    namespace 0, where the head is: see :func:`main`). ``every_node``: a proxy on every node, and the
    clients enter through the lost node's proxy, the retrying ones failing over to the head's;
    otherwise one proxy, on the head, as in the other series."""
    import urllib.parse

    import netns

    from helpers.serving import ray_cluster, ray_serve
    from helpers.serving import ray_experiments as rx

    network = netns.Network(2)
    label = "the course's, " + ("a proxy on every node" if every_node else "a proxy on the head") + ", namespaces"
    rows = []
    with netns.NamespacedCluster(network, nodes=2, node_cpus=1) as local:
        log = ray_cluster.start_replica_log(local.head_id)
        # a proxy on every node, or on the head only: 127.0.0.1 of namespace 0
        url = netns.start_serve_every_node() if every_node else ray_serve.start_serve()
        port = urllib.parse.urlsplit(url).port
        ray_serve.deploy(ray_serve.application(model, num_replicas=2), running=2)

        def entry(index: int) -> str:
            return f"http://{network.address(index)}:{port}/v1/models/{ray_serve.DEFAULT_NAME}:predict"

        predict = f"{url}/v1/models/{ray_serve.DEFAULT_NAME}:predict"
        for trial in range(trials):
            node = rx.worker_with_replica(local, log)
            entries = [entry(node.index), entry(0)] if every_node else [predict]  # the lost node's proxy first
            _wait_for_proxy(entries[0], bodies[0])
            loss = rx.node_loss(
                local,
                entries,
                bodies,
                node=node,
                fault="partition",
                clients=args.clients,
                retries=args.retries,
                seconds=args.seconds,
                kill_after=args.fault_after,
            )
            back = rx.rejoin(local, running=2)
            rows.append(_row(loss, back, label, "partition", trial + 1))
    return rows


def _wait_for_proxy(url: str, body: bytes, timeout: float = 90.0) -> None:
    """Until the proxy at ``url`` answers a request (a new node's proxy starts after the node joins)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.post(url, content=body, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from {url} within {timeout:.0f} s")
        time.sleep(0.5)


def _row(loss: dict, back: dict, label: str, fault: str, trial: int) -> dict:
    after = loss["requests"][loss["requests"]["end"] >= 0]
    row = {"health checks": label, "fault": fault, "trial": trial}
    row |= {k: loss[k] for k in COLUMNS} | {"slowest_ms": float(after["latency ms"].max())}
    row |= {"join_s": back["join_s"], "replaced_s": back["replicas_s"]}
    replicas = loss["replicas"]
    row["fewest_running"] = int(replicas.loc[replicas["t"] >= 0, "RUNNING"].min())  # 0: no replica ran for a while
    print(json.dumps(row), flush=True)
    return row


def in_namespaces(argv: list[str]) -> None:
    """Make the network, run this script with ``argv`` inside namespace 0 (the driver and the head
    live there), then remove the network, also when the run fails."""
    import subprocess

    import netns

    reason = netns.unavailable()
    if reason:
        raise SystemExit(f"the namespaces series needs network namespaces: {reason}")
    with netns.Network(2) as network:
        inside = network.exec(0, [sys.executable, __file__, *argv, "--inside"])
        code = subprocess.run(
            inside, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        ).returncode
    if code:
        raise SystemExit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="trials of each fault")
    parser.add_argument("--default-trials", type=int, default=5, help="freezes with Ray's default health checks")
    parser.add_argument("--clients", type=int, default=4, help="clients without retries, and as many with")
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="the load of one trial")
    parser.add_argument("--default-seconds", type=float, default=40.0, help="... with Ray's default health checks")
    parser.add_argument("--fault-after", type=float, default=2.0, help="seconds into the load")
    parser.add_argument(
        "--series",
        choices=["all", "course", "defaults", "namespaces"],
        default="all",
        help="all: the course's and Ray's default health checks on the loopback; one series only, keeping"
        " the others' rows from --out (namespaces: only run alone)",
    )
    parser.add_argument("--namespace-trials", type=int, default=10, help="partitions, a proxy on every node")
    parser.add_argument("--head-only-trials", type=int, default=3, help="partitions, a proxy on the head only")
    parser.add_argument("--out", default="results/node_faults.json")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # run in namespace 0 already
    args = parser.parse_args()
    if args.series == "namespaces" and not args.inside:
        in_namespaces(sys.argv[1:])
        return

    from helpers.serving import loadtest, ray_cluster
    from helpers.serving import ray_experiments as rx

    model, images = export_seeded_cnn(Path(tempfile.mkdtemp(prefix="node_faults_")))
    bodies = loadtest.request_bodies(images, 1, 256, "b64")
    rows = []
    if args.series in ("all", "course"):
        rows += series(model, bodies, ("kill", "freeze"), args.trials, args, None, "the course's")
    if args.series in ("all", "defaults") and args.default_trials:
        rows += series(model, bodies, ("freeze",), args.default_trials, args, {}, "Ray's defaults")
    if args.series == "namespaces":
        rows += namespaces_series(model, bodies, args.namespace_trials, args, every_node=True)
        rows += namespaces_series(model, bodies, args.head_only_trials, args, every_node=False)
    before_record = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else None
    if args.series != "all" and before_record:  # the other series, as recorded before
        ran = {row["health checks"] for row in rows}
        rows = [row for row in before_record["rows"] if row["health checks"] not in ran] + rows

    import pandas as pd

    table = pd.DataFrame(rows)
    summary = table.drop(columns="trial").groupby(["health checks", "fault"]).agg(["median", "min", "max"])
    print(summary.round(2).T.to_string())
    from ray._raylet import Config

    record = {
        "recorded": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "ray": __import__("ray").__version__,
        "settings": {
            **vars(args),
            "backoff_s": rx.BACKOFF_S,
            "request_timeout_s": inspect.signature(rx.node_loss).parameters["timeout"].default,
        },
        "health_checks": {
            "the course's": ray_cluster.NODE_HEALTH_CHECK,
            # what the driver's Ray read from the last cluster it joined: Ray's defaults only if that
            # cluster was the defaults series'; otherwise as recorded before
            "Ray's defaults": {
                "health_check_period_ms": Config.health_check_period_ms(),
                "health_check_timeout_ms": Config.health_check_timeout_ms(),
                "health_check_failure_threshold": Config.health_check_failure_threshold(),
            }
            if args.series in ("all", "defaults")
            else before_record["health_checks"]["Ray's defaults"],
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
