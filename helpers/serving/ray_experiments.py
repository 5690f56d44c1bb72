"""Chapter 11's experiments on Ray Serve (side by side, a node lost under load, autoscaling), their tables and plots."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time

import numpy as np
import pandas as pd
import ray

from helpers import words
from helpers.serving import loadtest, ray_cluster, ray_serve

BACKOFF_S = 0.05  # a retrying client's first wait, doubled before each next try


def ray_totals(app: str = ray_serve.APP_NAME) -> dict:
    """:func:`~helpers.serving.experiments.sweep`'s ``totals`` for the Ray deployment: the replicas' counts, summed."""
    counts = ray_serve.batch_counts(app).values()
    return {key: sum(c[key] for c in counts) for key in ("batches", "images")}


def compare_refusals(ray_url: str, hand_url: str, model_name: str, max_body_bytes: int, max_instances: int):
    """:func:`~helpers.serving.loadtest.bad_requests` sent to Ray's proxy and the hand-built service (base URLs):
    one row a case, each one's status, whether the messages are the same, and Ray's (70 characters)."""
    cases = loadtest.bad_requests(f"{ray_url}/v1/models/{model_name}", max_body_bytes, max_instances)
    proxied = loadtest.refusals(cases)
    hand = loadtest.refusals([(case, m, url.replace(ray_url, hand_url, 1), b, e) for case, m, url, b, e in cases])
    columns = ("case", "expected", "hand-built", "Ray", "same message", "message (Ray)")
    rows = [
        (r["case"], r["expected"], h["status"], r["status"], r["message"] == h["message"], r["message"][:70])
        for r, h in zip(proxied, hand)
    ]
    return pd.DataFrame(rows, columns=columns).set_index("case")


def request_parts(costs: dict, side, handle_ms, *, max_wait_ms: float, encoding: str) -> dict:
    """One request from one client, part by part, in ms: measured (``costs`` of ``request_costs``, the p50 at one
    client in ``side``, ``handle_ms`` through a Serve handle) and derived as differences."""
    one = side[side["clients"] == 1].set_index("service")["p50 ms"]
    model_ms, decode_ms = costs["model, 1 image"], costs[f"decode {encoding}"]
    hand_ms, ray_ms = float(one["hand-built"]), float(one["Ray, 1 replica"])
    via_handle = float(np.median(handle_ms))
    [per_image] = [v for k, v in costs.items() if k.startswith("model per image, batch")]
    return {
        "model, 1 image": model_ms,
        "parse the request": decode_ms,
        "batching window": max_wait_ms,
        "hand-built service": hand_ms,
        "Ray, through a handle": via_handle,
        "Ray, through its proxy": ray_ms,
        "hand-built: HTTP and framework": hand_ms - max_wait_ms - model_ms - decode_ms,
        "Ray: router and call to the replica": via_handle - max_wait_ms - model_ms - decode_ms,
        "Ray: HTTP proxy": ray_ms - via_handle,
        "Ray adds, in all": ray_ms - hand_ms,
        "model per image, batch": per_image,
    }


def _since(requests, t0: float):
    """``requests`` with times in s from ``t0`` and each one's latency (in place)."""
    requests[["start", "end"]] -= t0
    requests["latency ms"] = (requests["end"] - requests["start"]) * 1000
    return requests


def _lines(captured: io.StringIO) -> list[str]:
    """What Ray printed, a line each, without colour codes."""
    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in captured.getvalue().splitlines() if line.strip()]


@contextlib.contextmanager
def sampled_replicas(period: float = 0.25, app: str = ray_serve.APP_NAME):
    """Samples the deployment's replicas by state every ``period`` s in a thread; yields the samples' table
    maker: ``table(t0)``, one row a sample, seconds since ``t0`` and the replicas in each state."""
    samples, stop = [], threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append((time.time(), ray_serve.replicas(app)))
            stop.wait(period)

    def table(t0: float):
        table = pd.DataFrame([{"t": at - t0, **states} for at, states in samples]).fillna(0)
        return table.assign(**{state: table.get(state, 0) for state in ("RUNNING", "STARTING", "STOPPING")})

    thread = threading.Thread(target=run, daemon=True, name="replica-sampler")
    thread.start()
    try:
        yield table
    finally:
        stop.set()
        thread.join()


def node_loss(
    cluster: ray_cluster.LocalCluster,
    predict_url: str | list[str],
    bodies: list[bytes],
    *,
    node,
    fault: str = "kill",
    clients: int = 4,
    retries: int = 5,
    seconds: float = 12.0,
    kill_after: float = 4.0,
    timeout: float = 10.0,
    dead_within: float | None = None,
) -> dict:
    """Lose ``node`` by ``fault`` (``kill``, ``freeze`` or ``partition``: ``benchmarks/netns.py``; killed after the
    load) ``kill_after`` s into a load from ``clients`` clients without retries and as many with; the requests (s
    from the fault), replicas, ``dead_s`` (None: not within ``dead_within`` s), what Ray printed, and counts:
    ``failed`` (no retries), ``lost`` (despite retries), ``retried``, ``in_flight`` and ``recovery_s``."""
    if fault not in ("kill", "freeze", "partition"):
        raise ValueError(f"fault must be 'kill', 'freeze' or 'partition', not {fault!r}")
    hit, dead = threading.Event(), {}

    def lose() -> None:
        dead["at"] = getattr(cluster, fault)(node)
        hit.set()
        while time.time() - dead["at"] < (dead_within or seconds + timeout):
            if node.node_id not in cluster.alive_nodes():
                dead["dead"] = time.time()
                return
            time.sleep(0.05)

    timer = threading.Timer(kill_after, lose)
    captured = io.StringIO()  # Ray reports the lost node on stdout and stderr
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), sampled_replicas() as replicas:
        timer.start()
        try:
            load = {"retries": [0] * clients + [retries] * clients, "seconds": seconds, "backoff_s": BACKOFF_S}
            requests = loadtest.run_timeline(
                predict_url, bodies, 2 * clients, max_requests=10**9, timeout=timeout, **load
            )
        finally:
            hit.wait(kill_after + 60)
            timer.join()
            if fault != "kill" and node in cluster.workers:
                cluster.kill(node)  # a hung or cut-off machine is restarted; its processes end
        time.sleep(0.5)  # one more sample of the replicas after the load
    kill_at = dead["at"]
    _since(requests, kill_at)
    in_flight = (requests["start"] < 0) & (requests["end"] >= 0)
    failed, retried = requests["status"] != 200, requests["attempts"] > 1
    troubled = failed | retried | in_flight
    loss = {"requests": requests, "replicas": replicas(kill_at), "kill_at": kill_at, "fault": fault}
    loss |= {"dead_s": dead["dead"] - kill_at if "dead" in dead else None, "ray_messages": _lines(captured)}
    counts = {"failed": failed & ~requests["retrying"], "lost": failed & requests["retrying"], "retried": retried}
    loss |= {"errors": requests.attrs["errors"], **{k: int(v.sum()) for k, v in counts.items()}}
    loss |= {"in_flight": int(in_flight.sum()), "requests_sent": len(requests)}
    return loss | {"recovery_s": float(requests.loc[troubled, "end"].max()) if troubled.any() else 0.0}


def rejoin(
    cluster: ray_cluster.LocalCluster,
    running: int,
    app: str = ray_serve.APP_NAME,
    deployment: str = ray_serve.DEPLOYMENT_NAME,
) -> dict:
    """Add a worker node and wait until ``running`` replicas run; the node, each step's seconds, what Ray printed."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        start = time.monotonic()
        node = cluster.add_node()
        joined = time.monotonic() - start
        ray_serve.wait_for_replicas(running, app=app, deployment=deployment)
    return {"node": node, "join_s": joined, "replicas_s": time.monotonic() - start, "ray_messages": _lines(captured)}


def worker_with_replica(cluster: ray_cluster.LocalCluster, replica_log):
    """A live worker node (not the head) on which a running replica was placed: the node to lose."""
    alive = set(cluster.alive_nodes())
    placed = [p for p in ray.get(replica_log.placements.remote()) if p["stopped"] is None]
    node_id = next(p["node"] for p in placed if p["node"] != cluster.head_id and p["node"] in alive)
    return next(w for w in cluster.workers if w.node_id == node_id)


def placements(cluster: ray_cluster.LocalCluster, replica_log, t0: float):
    """The replicas the ``ReplicaLog`` knows: node, start (s from ``t0``) and state."""
    alive, rows = set(cluster.alive_nodes()), []
    for p in ray.get(replica_log.placements.remote()):
        state = "lost with its node" if p["node"] not in alive else "stopped" if p["stopped"] else "running"
        rows.append((p["replica"], cluster.names.get(p["node"], p["node"][:8]), p["started"] - t0, state))
    return pd.DataFrame(rows, columns=["replica", "node", "started (s)", "state"])


def load_step(predict_url: str, bodies: list[bytes], phases) -> dict:
    """Closed-loop load in phases ``[(clients, seconds, max_requests), ...]``, the replicas sampled: ``requests``
    (times in s from the start), ``replicas`` and ``phases`` (start, end and clients of each)."""
    tables, spans = [], []
    with sampled_replicas() as replicas:
        t0 = time.time()
        for clients, seconds, max_requests in phases:
            begin = time.time() - t0
            requests = loadtest.run_timeline(predict_url, bodies, clients, max_requests=max_requests, seconds=seconds)
            spans.append({"clients": clients, "start": begin, "end": time.time() - t0})
            tables.append(requests.assign(clients=clients))
        time.sleep(0.5)
    requests = _since(pd.concat(tables, ignore_index=True), t0)
    return {"requests": requests, "replicas": replicas(t0), "phases": pd.DataFrame(spans), "t0": t0}


def windows(requests, replicas, width: float = 1.0):
    """Per window of ``width`` s (by end time) while sending: answers/s, p50, p99, errors, the most replicas running."""
    end = float(requests["start"].max())  # the last request sent: later windows hold only stragglers
    edges = np.arange(0.0, end + width, width)
    rows = []
    for lo in edges[:-1]:
        part = requests[(requests["end"] >= lo) & (requests["end"] < lo + width)]
        ok = part[part["status"] == 200]
        running = replicas[(replicas["t"] >= lo) & (replicas["t"] < lo + width)]["RUNNING"]
        latency = ok["latency ms"]
        p50, p99 = (float(latency.median()), float(latency.quantile(0.99))) if len(ok) else (np.nan, np.nan)
        errors, most = int((part["status"] != 200).sum()), float(running.max()) if len(running) else np.nan
        rows.append((lo + width / 2, len(ok) / width, p50, p99, errors, most))
    table = pd.DataFrame(rows, columns=["t", "requests/s", "p50 ms", "p99 ms", "errors", "replicas"])
    return table.assign(replicas=table["replicas"].ffill())


PHASES = ("before the step", "the step", "after the step")  # the phases of a low, high, low load


def step_summary(table, phases):
    """:func:`windows`' ``table`` by phase (named by :data:`PHASES` when there are three) and running replicas, in
    order of time: seconds, the medians of answers/s, p50 and p99 latency, and the errors."""
    names = PHASES if len(phases) == len(PHASES) else [f"phase {i + 1}" for i in range(len(phases))]
    width = float(table["t"].diff().median()) if len(table) > 1 else 1.0
    rows = []
    for name, (_, phase) in zip(names, phases.iterrows()):
        part = table[(table["t"] >= phase["start"]) & (table["t"] < phase["end"])]
        replicas = part["replicas"].fillna(0).astype(int)
        for count, group in part.groupby(replicas, sort=False):  # in order of appearance
            medians = [float(group[c].median()) for c in ("requests/s", "p50 ms", "p99 ms")]
            rows.append((name, count, int(phase["clients"]), len(group) * width, *medians, int(group["errors"].sum())))
    columns = ["phase", "replicas", "clients", "seconds", "requests/s", "p50 ms", "p99 ms", "errors"]
    return pd.DataFrame(rows, columns=columns).set_index(["phase", "replicas"])


def plot_timeseries(table, *, events=(), load=None, lang: str = "en"):
    """Replicas, answers per second and latency against time, labelled in ``lang``; ``events``: ``(t, term)``
    marked by a line; ``load``: a phases table drawn as the offered load on the first panel."""
    import matplotlib.pyplot as plt

    w = words.of(lang, "distributed_serving")
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.4), sharex=True)
    axes[0].step(table["t"], table["replicas"], where="mid", color="C0", label=w("running replicas"))
    axes[0].set(ylabel=w("running replicas"), ylim=(0, max(2.5, float(np.nanmax(table["replicas"])) + 0.5)))
    if load is not None:
        twin = axes[0].twinx()
        for _, phase in load.iterrows():
            twin.hlines(phase["clients"], phase["start"], phase["end"], color="C3", linestyle="--")
        twin.set_ylabel(w("clients"), color="C3")
        twin.set_ylim(0, load["clients"].max() * 1.25)
    axes[1].plot(table["t"], table["requests/s"], marker=".", color="C2")
    axes[1].set_ylabel(w("answers per second"))
    axes[2].plot(table["t"], table["p99 ms"], marker=".", color="C1", label=w("p99"))
    axes[2].plot(table["t"], table["p50 ms"], marker=".", linestyle=":", color="C1", label=w("p50"))
    axes[2].set(yscale="log", ylabel=w("latency (ms)"), xlabel=w("seconds since the load started"))
    axes[2].legend(loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
        for at, _ in events:
            ax.axvline(at, color="grey", linestyle="--", linewidth=1)
    for at, term in events:
        axes[0].annotate(w(term), (at, axes[0].get_ylim()[1]), xytext=(3, -12), textcoords="offset points", fontsize=8)
    fig.tight_layout()
    return fig
