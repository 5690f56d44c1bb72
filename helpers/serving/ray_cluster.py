"""A Ray cluster of several nodes on this machine, for the Ray Serve deployment of
:mod:`helpers.serving.ray_serve`: every process on 127.0.0.1, nodes killed and added under load.

    cluster = LocalCluster(nodes=2)          # a head and a worker, each its own raylet and ports
    replica_log = start_replica_log(cluster.head_id)
    cluster.kill(cluster.workers[0])         # every process of the node at once, as a power loss
    cluster.freeze(cluster.workers[0])       # or SIGSTOP: a node that hangs, its sockets open
    cluster.add_node()
    cluster.shutdown()

With ``network=netns.Network(n)`` (the driver running in namespace 0) every node has an address and a
link of its own: :meth:`LocalCluster.partition` cuts a worker off, and Serve can run a proxy on each.

:data:`ENVIRONMENT` and :func:`loopback_replica_port` are what Ray needs to stay on this machine
and say nothing outside it; :class:`ReplicaLog` is a small actor on the head node where every
replica says, once, where it runs, so that the driver can read it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from helpers.serving.netns import Network

#: set before Ray starts; the nodes and their workers inherit them
ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",  # never send usage statistics
    "RAY_ENABLE_AUTO_CONNECT": "0",  # a Ray call after the cluster is gone fails instead of starting a new one
    # Ray replaces 127.0.0.1 by the machine's network address unless told that every node is on
    # this machine (the variable's name says "Windows or macOS", where that is the default)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # the proxy spreads requests over the replicas of every node (by default it prefers its own node's)
    "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    # the proxy and the replicas report their queues to the autoscaler every 0.5 s (default 10 s)
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    # Serve's controller gives a new HTTP proxy 5 s (default) to say it is ready, then kills it and
    # starts another, which fails serve.start() with "actor died" on a machine busy with other work;
    # 60 s is how long serve.start() itself waits for the proxy
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    # every worker (Serve's replicas included) runs loopback_replica_port first: the variable that a
    # job's runtime_env={"worker_process_setup_hook": ...} sets in its workers, set on the nodes
    # instead (a runtime environment costs every actor start seconds of setting up)
    "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR": f"{__name__}.loopback_replica_port",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GRPC_VERBOSITY": "ERROR",  # gRPC's notices when a node process is started
}
#: the GCS declares a node dead after this many missed health checks of this period
NODE_HEALTH_CHECK = {
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3,
}
NAMESPACE = "maas"
REPLICA_LOG = "replica_log"


def prepare_environment() -> None:
    """Set :data:`ENVIRONMENT` in this process, before Ray starts any node (they inherit it)."""
    os.environ.update(ENVIRONMENT)
    if "ray" in sys.modules:  # imported already: Ray read these settings at import, so set them where it reads them
        from ray._private import auto_init_hook, ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        auto_init_hook.enable_auto_connect = False


def loopback_replica_port() -> None:
    """Run first by every worker process of this cluster (:data:`ENVIRONMENT`). Ray Serve 2.60 opens
    each replica's gRPC port, for calls between deployments, on every network interface
    (``"[::]:0"`` in ``ray/serve/_private/replica.py``), with no setting to change it; on a cluster
    whose nodes are all 127.0.0.1 it binds 127.0.0.1. The deployment knows nothing of this."""
    from ray._common import tls_utils

    original = tls_utils.add_port_to_grpc_server

    def on_loopback(server, address: str):
        return original(server, address.replace("[::]", "127.0.0.1", 1))

    tls_utils.add_port_to_grpc_server = on_loopback  # before the replica's module imports it
    replica = sys.modules.get("ray.serve._private.replica")
    if replica is not None:
        replica.add_port_to_grpc_server = on_loopback


class _LateQueueLengths(logging.Filter):
    """Drops the router's notice that a replica answered "how many requests do you hold?" later
    than 0.1 s: on a machine that the load keeps busy it comes and goes with the load, and the
    router itself then tries the replicas again, so it would only make the chapter's output differ
    from run to run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to get queue length")


def quiet_ray_loggers() -> None:
    """Ray's and Serve's loggers in this process say only warnings and errors (and not
    :class:`_LateQueueLengths`'s notice)."""
    for name in ("ray", "ray.serve", "ray.cluster_utils", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)
    serve_logger = logging.getLogger("ray.serve")
    if not any(isinstance(f, _LateQueueLengths) for f in serve_logger.filters):
        serve_logger.addFilter(_LateQueueLengths())
    logging.getLogger("ray.widgets.util").setLevel(logging.ERROR)  # "install ipywidgets", in a notebook


def import_serve():
    """``ray.serve``, imported without what Ray says when imported in a notebook (tqdm's warning,
    "install ipywidgets", gRPC's notices, which it reads from the environment once, at import)."""
    os.environ.setdefault("GRPC_VERBOSITY", ENVIRONMENT["GRPC_VERBOSITY"])
    quiet_ray_loggers()  # before the import too: Ray logs while it is imported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ray import serve
    quiet_ray_loggers()
    return serve


class ReplicaLog:
    """A Ray actor: where every replica runs, said once when it starts and stops (the driver reads
    :meth:`placements`). Nothing on a request's path calls it."""

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

    actor = (
        ray.remote(ReplicaLog)
        .options(
            name=REPLICA_LOG,
            namespace=NAMESPACE,
            num_cpus=0,
            get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(head_node_id, soft=False),
        )
        .remote()
    )
    return actor  # named at once; a replica's first call waits for it to start


#: how many times a cluster is started before its start-up error is raised: Ray gives a node 30 s
#: (fixed) to register, which a machine busy with other work can miss
STARTUP_TRIES = 3


def _children() -> set:
    """The Ray processes this process started itself (a node's raylet, GCS, agents): what a failed
    start leaves. Workers and replicas are their children, so the nodes already running keep theirs."""
    import psutil

    ours = set()
    for process in psutil.Process().children(recursive=False):
        with contextlib.suppress(psutil.Error):
            if "ray" in process.name() or any("site-packages/ray/" in part for part in process.cmdline()):
                ours.add(process)
    return ours


def _kill(processes) -> None:
    """SIGKILL ``processes`` and their descendants."""
    import psutil

    doomed = set(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            doomed |= set(process.children(recursive=True))
    for process in doomed:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(doomed), timeout=10)


def _own_address(network: Network) -> str:
    """Namespace 0's address, after checking that this process runs there (it hosts the head)."""
    address = network.address(0)
    try:
        with socket.socket() as probe:
            probe.bind((address, 0))
    except OSError:
        raise RuntimeError(
            f"the driver must run in namespace {network.namespace(0)}, where the head's address {address} is:"
            f" start it with {' '.join(network.exec(0, ['python', '...']))}"
        ) from None
    return address


def started(start):
    """``start()``, tried again while Ray says a node did not register in time (it waits 30 s, a
    fixed limit that a machine busy with other work can miss), after killing what the failed try
    left; the error is raised after :data:`STARTUP_TRIES` tries, or at once if it is another."""
    for attempt in range(1, STARTUP_TRIES + 1):
        before = _children()
        try:
            return start()
        except Exception as exc:
            _kill(_children() - before)
            if "timed out during startup" not in str(exc) or attempt == STARTUP_TRIES:
                raise


@dataclass
class NamespacedNode:
    """A worker node started with ``ray start`` in namespace ``index`` of a :class:`Network`."""

    index: int
    process: subprocess.Popen
    node_id: str = ""


class LocalCluster:
    """A Ray cluster of ``nodes`` nodes on this machine: a head and workers, each its own raylet.

    Every process binds 127.0.0.1. Each node offers ``node_cpus`` of Ray's CPU slots (a replica
    takes ``replica_cpus`` of them): the nodes share this machine's cores, as two virtual machines
    on one host would. :meth:`kill` ends every process of a worker node at once (SIGKILL, as a
    machine that loses power), :meth:`freeze` stops them (SIGSTOP, as a machine that hangs);
    :meth:`add_node` starts a new one. The driver (this process) connects to the head, so the head
    cannot be killed. The GCS checks the nodes' health as :data:`NODE_HEALTH_CHECK` says, or as
    ``health_check`` says (``{}``: Ray's defaults, a check every 3 s, 10 s to answer, 5 misses).

    With ``network`` (a :class:`~helpers.serving.netns.Network` whose namespace 0 runs this process)
    node ``i`` has namespace ``i`` and its address instead of 127.0.0.1, and :meth:`partition` cuts a
    worker's link: its processes run on and nothing reaches them, as a machine cut off by the network.
    """

    def __init__(
        self,
        nodes: int = 2,
        node_cpus: float = 1,
        object_store_mb: int = 100,
        health_check: dict | None = None,
        network: Network | None = None,
    ):
        if nodes < 1 or (network and nodes > network.size):
            raise ValueError("a cluster needs at least its head node, and a namespace for each node")
        prepare_environment()
        import_serve()  # Ray, quietly
        import ray
        from ray.cluster_utils import Cluster

        self.node_cpus, self.network, self.object_store_mb = node_cpus, network, object_store_mb
        self._node_args = {"num_cpus": node_cpus, "object_store_memory": object_store_mb * 2**20}
        from helpers.processes import free_ports

        head_args = {
            "include_dashboard": False,
            # ports of their own, not Ray's fixed defaults, so that two clusters can run on one machine
            "dashboard_port": free_ports(1)[0],
            "dashboard_agent_listen_port": None,
        }
        if network:
            head_args["node_ip_address"] = _own_address(network)

        system_config = NODE_HEALTH_CHECK if health_check is None else health_check  # {}: Ray's own

        def start():
            # a new copy at every try: Ray adds its own settings (object spilling) to the dict it is
            # given, and a second try given them warns on stderr about an unstable API
            head = {**self._node_args, **head_args, "_system_config": dict(system_config)}
            cluster = Cluster(initialize_head=True, head_node_args=head)
            try:
                workers = [] if network else [cluster.add_node(**self._node_args) for _ in range(nodes - 1)]
                ray.init(
                    address=cluster.address,
                    namespace=NAMESPACE,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    _node_ip_address=head_args.get("node_ip_address"),
                )
            except BaseException:
                cluster.shutdown()
                raise
            return cluster, workers

        self.cluster, self.workers = started(start)
        quiet_ray_loggers()  # ray.init configured Ray's loggers again
        self.head_id = self.cluster.head_node.node_id
        self.names = {self.head_id: "head"}
        self.names |= {w.node_id: f"worker {i + 1}" for i, w in enumerate(self.workers)}
        try:
            for _ in range(nodes - 1 if network else 0):
                self.add_node()
        except BaseException:
            self.shutdown()
            raise

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_node(self):
        """Start one more worker node and wait until the cluster sees it; the node."""
        if self.network:
            node = started(self._start_in_namespace)
        else:
            node = started(lambda: self.cluster.add_node(**self._node_args))
        self.workers.append(node)
        self.names[node.node_id] = f"worker {len(self.names)}"
        return node

    def _start_in_namespace(self, timeout: float = 90.0) -> NamespacedNode:
        """``ray start`` in the first namespace with no live worker (its link up again), until the
        GCS lists it alive."""
        import ray

        busy = {w.index for w in self.workers}
        index = next((i for i in range(1, self.network.size) if i not in busy), None)
        if index is None:
            raise RuntimeError(f"every namespace of the network ({self.network.size}) holds a node")
        self.network.mend(index)
        address = self.network.address(index)
        argv = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--disable-usage-stats"]
        argv += [f"--address={self.address}", f"--node-ip-address={address}", f"--num-cpus={self.node_cpus}"]
        argv += [f"--object-store-memory={self.object_store_mb * 2**20}"]
        log = tempfile.TemporaryFile()
        # `ray start` refuses a second node unless told that this is a real cluster (it is: each node
        # has an address of its own)
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
        process = subprocess.Popen(self.network.exec(index, argv), env=env, stdout=log, stderr=subprocess.STDOUT)
        node = NamespacedNode(index, process)
        deadline = time.monotonic() + timeout
        while not node.node_id:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                self._stop(node)
                said = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the node in namespace {index} did not join within {timeout:.0f} s:\n{said}")
            time.sleep(0.2)
            node.node_id = next(
                (n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == address), ""
            )
        return node

    def _processes(self, node) -> list:
        """A node's own processes (raylet, object store, agents) and their children (workers, replicas)."""
        import psutil

        if isinstance(node, NamespacedNode):
            tops = [node.process.pid]  # `ray start`, which started the node's processes
        else:
            tops = [info.process.pid for infos in node.all_processes.values() for info in infos]
        processes = []
        for pid in tops:
            try:
                top = psutil.Process(pid)
                processes += [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return processes

    def _signal(self, node, what: str) -> tuple[list, float]:
        if node is self.cluster.head_node:
            raise ValueError(f"the head node holds the cluster's control plane and the driver: {what} a worker")
        import psutil

        processes = self._processes(node)
        at = time.time()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):  # ended meanwhile
                (process.kill if what == "kill" else process.suspend)()
        return processes, at

    def _stop(self, node) -> None:
        import psutil

        processes, _ = self._signal(node, "kill")
        psutil.wait_procs(processes, timeout=10)
        if isinstance(node, NamespacedNode):
            node.process.wait(timeout=10)

    def kill(self, node) -> float:
        """SIGKILL every process of a worker node (its raylet, its replicas); the time (``time.time()``).
        A frozen or cut-off node is killed the same way."""
        at = time.time()
        self._stop(node)
        if not isinstance(node, NamespacedNode):
            self.cluster.remove_node(node, allow_graceful=False)  # the cluster's bookkeeping; nothing is left to stop
        self.workers.remove(node)
        return at

    def freeze(self, node) -> float:
        """SIGSTOP every process of a worker node, as a machine that hangs: its sockets stay open and
        nothing answers; the time (``time.time()``). :meth:`kill` ends it."""
        return self._signal(node, "freeze")[1]

    def partition(self, node) -> float:
        """Cut a worker node's link (a cluster with a ``network`` only): its processes run on, and no
        packet reaches them or leaves; the time (``time.time()``). :meth:`kill` ends it."""
        if not isinstance(node, NamespacedNode):
            raise ValueError("a partition needs a cluster whose nodes have namespaces: LocalCluster(network=...)")
        at = time.time()
        self.network.cut(node.index)
        return at

    def pids(self) -> set[int]:
        """Every process of every live node (the nodes' own processes and their children: workers, replicas)."""
        return {p.pid for node in [self.cluster.head_node, *self.workers] for p in self._processes(node)}

    def alive_nodes(self) -> list[str]:
        import ray

        return [n["NodeID"] for n in ray.nodes() if n["Alive"]]

    def node_of(self, node_id: str):
        """The worker node object with this id (None for the head or an unknown id)."""
        return next((w for w in self.workers if w.node_id == node_id), None)

    def shutdown(self) -> list[str]:
        """Disconnect, then stop every process of every node (Serve's with them); what Ray printed meanwhile."""
        import ray

        captured = io.StringIO()  # Ray reports the processes it sees end, on stdout and stderr
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            try:
                if ray.is_initialized():
                    from ray import serve

                    serve.shutdown()  # stops the handles' routers in this process too
            finally:
                try:
                    ray.shutdown()  # also when a failure disconnected the driver: it resets the driver's node
                finally:
                    for node in self.workers:
                        if isinstance(node, NamespacedNode):
                            self._stop(node)
                    self.cluster.shutdown()
        return captured.getvalue().splitlines()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
