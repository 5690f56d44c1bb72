"""A Ray cluster of several nodes on this machine, every process on 127.0.0.1, whose worker nodes can be lost."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings

from helpers.processes import free_ports

#: set before Ray starts; the nodes and their workers inherit them
ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_AUTO_CONNECT": "0",  # a Ray call after the cluster is gone fails instead of starting a new one
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # else Ray swaps 127.0.0.1 for the machine's network address
    "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",  # the proxy spreads requests over every node's replicas
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",  # queues to the autoscaler (default every 10 s)
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",  # default 5 s for a new proxy to be ready: a busy machine misses it
    # every worker runs loopback_replica_port first (runtime_env's setup hook; a runtime env costs each actor seconds)
    "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR": f"{__name__}.loopback_replica_port",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GRPC_VERBOSITY": "ERROR",
}
#: the GCS declares a node dead after this many missed health checks of this period
NODE_HEALTH_CHECK = dict(health_check_period_ms=1000, health_check_timeout_ms=1000, health_check_failure_threshold=3)
NAMESPACE = "maas"
REPLICA_LOG = "replica_log"
STARTUP_TRIES = 3  # tries to start a node: Ray gives one a fixed 30 s to register, which a busy machine can miss


def loopback_replica_port() -> None:
    """Run first by every worker process: Ray Serve 2.60 opens each replica's gRPC port on every interface
    (``"[::]:0"``, no setting changes it); on this cluster it binds 127.0.0.1."""
    from ray._common import tls_utils

    original = tls_utils.add_port_to_grpc_server

    def on_loopback(server, address: str):
        return original(server, address.replace("[::]", "127.0.0.1", 1))

    tls_utils.add_port_to_grpc_server = on_loopback  # before the replica's module imports it
    if (replica := sys.modules.get("ray.serve._private.replica")) is not None:
        replica.add_port_to_grpc_server = on_loopback


def _not_late_queue_length(record: logging.LogRecord) -> bool:
    """Drops the router's notice that a replica answered late (it tries again): it varies from run to run."""
    return not record.getMessage().startswith("Failed to get queue length")


def quiet_ray_loggers() -> None:
    """Ray's and Serve's loggers in this process say only warnings and errors."""
    for name in ("ray", "ray.serve", "ray.cluster_utils", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("ray.serve").addFilter(_not_late_queue_length)  # a filter already there is kept
    logging.getLogger("ray.widgets.util").setLevel(logging.ERROR)  # "install ipywidgets", in a notebook


def import_serve():
    """``ray.serve``, imported without the warnings and notices Ray gives in a notebook."""
    os.environ.setdefault("GRPC_VERBOSITY", ENVIRONMENT["GRPC_VERBOSITY"])  # read once, at import
    quiet_ray_loggers()  # Ray logs while it is imported
    with warnings.catch_warnings(action="ignore"):
        from ray import serve
    quiet_ray_loggers()
    return serve


class ReplicaLog:
    """A Ray actor on the head node where every replica says once where it runs; off the request path."""

    def __init__(self):
        self.replicas: dict[str, dict] = {}

    def register(self, replica: str, node: str, pid: int, at: float) -> None:
        self.replicas[replica] = {"replica": replica, "node": node, "pid": pid, "started": at, "stopped": None}

    def unregister(self, replica: str, at: float) -> None:
        if replica in self.replicas:
            self.replicas[replica]["stopped"] = at

    def placements(self) -> list[dict]:
        return list(self.replicas.values())


def start_replica_log(head_node_id: str):
    """The :class:`ReplicaLog` actor, pinned to the head node (it survives the loss of a worker)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = NodeAffinitySchedulingStrategy(head_node_id, soft=False)
    options = {"name": REPLICA_LOG, "namespace": NAMESPACE, "num_cpus": 0, "get_if_exists": True}
    return ray.remote(ReplicaLog).options(**options, scheduling_strategy=head).remote()


def _children() -> set:
    """The Ray processes this process started itself (raylet, GCS, agents): what a failed start leaves."""
    import psutil

    ours = set()
    for process in psutil.Process().children(recursive=False):
        with contextlib.suppress(psutil.Error):
            if "ray" in process.name() or any("site-packages/ray/" in part for part in process.cmdline()):
                ours.add(process)
    return ours


def _with_descendants(processes) -> set:
    import psutil

    every = set(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            every |= set(process.children(recursive=True))
    return every


def _kill(processes) -> None:
    """SIGKILL ``processes`` and their descendants, and wait until they end."""
    import psutil

    doomed = _with_descendants(processes)
    for process in doomed:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(doomed), timeout=10)


def started(start):
    """``start()``, tried again (what a failed try left killed) while a node did not register in time."""
    for attempt in range(1, STARTUP_TRIES + 1):
        before = _children()
        try:
            return start()
        except Exception as exc:
            _kill(_children() - before)
            if "timed out during startup" not in str(exc) or attempt == STARTUP_TRIES:
                raise


class LocalCluster(contextlib.AbstractContextManager):
    """A Ray cluster of ``nodes`` nodes (each its own raylet, ``node_cpus`` CPU slots) on 127.0.0.1 or
    ``node_ip_address``; the GCS checks them as :data:`NODE_HEALTH_CHECK`, or ``health_check`` (``{}``: Ray's)."""

    def __init__(
        self,
        nodes: int = 2,
        node_cpus: float = 1,
        object_store_mb: int = 100,
        health_check: dict | None = None,
        node_ip_address: str | None = None,
    ):
        if nodes < 1:
            raise ValueError("a cluster needs at least its head node")
        os.environ.update(ENVIRONMENT)
        if "ray" in sys.modules:  # Ray read these settings at import: set them where it reads them
            from ray._private import auto_init_hook, ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
            auto_init_hook.enable_auto_connect = False
        import_serve()
        import ray
        from ray.cluster_utils import Cluster

        self.node_cpus, self.object_store_mb = node_cpus, object_store_mb
        self._node_args = {"num_cpus": node_cpus, "object_store_memory": object_store_mb * 2**20}
        # ports of their own, not Ray's fixed defaults, so that two clusters can run on one machine
        head_args = dict(include_dashboard=False, dashboard_port=free_ports(1)[0], dashboard_agent_listen_port=None)
        if node_ip_address:
            head_args["node_ip_address"] = node_ip_address
        system_config = NODE_HEALTH_CHECK if health_check is None else health_check

        def start():
            # a new dict each try: Ray adds settings to it, and a second try given them warns
            head = {**self._node_args, **head_args, "_system_config": dict(system_config)}
            cluster = Cluster(initialize_head=True, head_node_args=head)
            try:
                ray.init(
                    address=cluster.address,
                    namespace=NAMESPACE,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    _node_ip_address=node_ip_address,
                )
            except BaseException:
                cluster.shutdown()
                raise
            return cluster

        self.cluster, self.workers = started(start), []
        quiet_ray_loggers()  # ray.init configured Ray's loggers again
        self.head_id = self.cluster.head_node.node_id
        self.names = {self.head_id: "head"}
        try:
            for _ in range(nodes - 1):
                self.add_node()
        except BaseException:
            self.shutdown()
            raise

    def add_node(self):
        """Start one more worker node and wait until the cluster sees it; the node."""
        node = started(self._start_worker)
        self.workers.append(node)
        self.names[node.node_id] = f"worker {len(self.names)}"
        return node

    def _start_worker(self):
        return self.cluster.add_node(**self._node_args)

    def _tops(self, node) -> list:
        """A node's own processes (raylet, object store, agents), whose children are its workers."""
        import psutil

        tops = []
        for info in (info for infos in node.all_processes.values() for info in infos):
            with contextlib.suppress(psutil.NoSuchProcess):
                tops.append(psutil.Process(info.process.pid))
        return tops

    def _worker_processes(self, node, what: str) -> set:
        if node is self.cluster.head_node:
            raise ValueError(f"the head node holds the cluster's control plane and the driver: {what} a worker")
        return _with_descendants(self._tops(node))

    def kill(self, node) -> float:
        """SIGKILL every process of a worker node (frozen or not); the time (``time.time()``)."""
        at = time.time()
        _kill(self._worker_processes(node, "kill"))
        self.workers.remove(node)
        if node in self.cluster.worker_nodes:
            self.cluster.remove_node(node, allow_graceful=False)  # the cluster's bookkeeping
        return at

    def freeze(self, node) -> float:
        """SIGSTOP every process of a worker node: its sockets stay open, nothing answers; the time."""
        import psutil

        processes, at = self._worker_processes(node, "freeze"), time.time()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.suspend()
        return at

    def alive_nodes(self) -> list[str]:
        import ray

        return [n["NodeID"] for n in ray.nodes() if n["Alive"]]

    def shutdown(self) -> list[str]:
        """Disconnect, then stop every process of every node; what Ray printed meanwhile."""
        import ray

        captured = io.StringIO()  # Ray reports the processes it sees end
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            try:
                if ray.is_initialized():
                    from ray import serve

                    serve.shutdown()  # stops the handles' routers in this process too
            finally:
                try:
                    ray.shutdown()
                finally:
                    for node in self.workers:
                        if node not in self.cluster.worker_nodes:  # started otherwise (benchmarks/netns.py)
                            _kill(self._tops(node))
                    self.cluster.shutdown()
        return captured.getvalue().splitlines()

    def __exit__(self, *exc) -> None:
        self.shutdown()
