"""Network namespaces on this machine: each node of a local Ray cluster gets an address and a link
of its own, so that one node can be cut off from the others (a network partition, which is what
losing a machine looks like from the rest of a cluster) and every node can run Serve's HTTP proxy on
the same port. Linux only, as root (``ip netns``, ``ip link``); :func:`unavailable` says why not.

    with Network(2) as network:       # a bridge maas-br and namespaces maas-0, maas-1 (10.231.0.1, .2)
        subprocess.run(network.exec(0, ["python", "driver.py"]))   # the driver and the head in maas-0
    # inside: NamespacedCluster(Network(2)); .partition(node) cuts a worker off (Network.cut)

Every address is on a bridge of this machine with no route beyond it: a process in a namespace that
binds 0.0.0.0 is reachable from the other namespaces and from this machine only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.serving.ray_cluster import LocalCluster, _kill

PREFIX = "maas"
SUBNET = "10.231.0"  # a private /24 that nothing else here uses; namespace i is SUBNET.(i + 1)


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    return subprocess.run(command, check=check, capture_output=True, text=True)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not Linux, not root, no ``ip``), or None."""
    if not shutil.which("ip"):
        return "the ip command (iproute2) is not installed"
    if os.name != "posix" or not os.path.exists("/proc/self/ns/net"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}-probe"
    made = _ip("netns", "add", probe, check=False)
    _ip("netns", "del", probe, check=False)
    return None if made.returncode == 0 else f"ip netns add failed: {made.stderr.strip()}"


class Network:
    """``size`` namespaces ``<prefix>-0`` … joined by veth pairs to one bridge ``<prefix>-br``;
    entering the context makes them (after removing any left by an earlier run with this prefix),
    leaving removes them."""

    def __init__(self, size: int, prefix: str = PREFIX, subnet: str = SUBNET):
        self.size, self.prefix, self.subnet = size, prefix, subnet
        self.bridge = f"{prefix}-br"

    def namespace(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    def link(self, i: int) -> str:
        """The namespace's end of its veth pair."""
        return f"{self.prefix}-n{i}"

    def exec(self, i: int, argv: list[str]) -> list[str]:
        """``argv`` run in namespace ``i``."""
        return ["ip", "netns", "exec", self.namespace(i), *argv]

    def cut(self, i: int) -> None:
        """Take namespace ``i``'s link down: its node's processes run on, and nothing reaches them."""
        _ip("link", "set", self.link(i), "down", namespace=self.namespace(i))

    def mend(self, i: int) -> None:
        _ip("link", "set", self.link(i), "up", namespace=self.namespace(i))

    def __enter__(self) -> Network:
        self.remove()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("link", "set", self.bridge, "up")
        for i in range(self.size):
            ns, here = self.namespace(i), f"{self.prefix}-h{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", here, "type", "veth", "peer", "name", self.link(i))
            _ip("link", "set", here, "master", self.bridge, "up")
            _ip("link", "set", self.link(i), "netns", ns)
            _ip("addr", "add", f"{self.address(i)}/24", "dev", self.link(i), namespace=ns)
            _ip("link", "set", self.link(i), "up", namespace=ns)
            _ip("link", "set", "lo", "up", namespace=ns)
        return self

    def remove(self) -> None:
        """Remove the namespaces (their veth pairs go with them) and the bridge, if there."""
        listed = _ip("netns", "list", check=False).stdout.split()
        for name in listed:
            if name.startswith(f"{self.prefix}-"):
                _ip("netns", "del", name, check=False)
        # a namespace outlives its removal while a process still runs in it; its veth pair with it
        for here in [line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link").stdout.splitlines()]:
            if here.startswith(f"{self.prefix}-h"):
                _ip("link", "del", here, check=False)
        _ip("link", "del", self.bridge, check=False)

    def __exit__(self, *exc) -> None:
        self.remove()


@dataclass(eq=False)
class NamespacedNode:
    """A worker node started with ``ray start`` in namespace ``index`` of a :class:`Network`."""

    index: int
    process: subprocess.Popen
    node_id: str = ""


class NamespacedCluster(LocalCluster):
    """A :class:`~helpers.serving.ray_cluster.LocalCluster` whose node ``i`` runs in namespace ``i`` of
    ``network``, with its address; this process (the driver, with the head) must run in namespace 0.
    :meth:`partition` cuts a worker's link: its processes run on and nothing reaches them."""

    def __init__(self, network: Network, nodes: int = 2, **options):
        if nodes > network.size:
            raise ValueError("a cluster needs a namespace for each node")
        self.network, address = network, network.address(0)
        try:
            with socket.socket() as probe:
                probe.bind((address, 0))
        except OSError:
            raise RuntimeError(
                f"the driver must run in namespace {network.namespace(0)}, where the head's address {address} is:"
                f" start it with {' '.join(network.exec(0, ['python', '...']))}"
            ) from None
        super().__init__(nodes, node_ip_address=address, **options)

    def _start_worker(self, timeout: float = 90.0) -> NamespacedNode:
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
        argv += [f"--address={self.cluster.address}", f"--node-ip-address={address}", f"--num-cpus={self.node_cpus}"]
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
                _kill(self._tops(node))
                said = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the node in namespace {index} did not join within {timeout:.0f} s:\n{said}")
            time.sleep(0.2)
            node.node_id = next(
                (n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == address), ""
            )
        return node

    def _tops(self, node) -> list:
        import psutil

        if not isinstance(node, NamespacedNode):
            return super()._tops(node)
        try:
            return [psutil.Process(node.process.pid)]  # `ray start`, which started the node's processes
        except psutil.NoSuchProcess:
            return []

    def partition(self, node) -> float:
        """Cut a worker node's link: its processes run on, and no packet reaches them or leaves; the time
        (``time.time()``). :meth:`kill` ends it."""
        at = time.time()
        self.network.cut(node.index)
        return at


def start_serve_every_node() -> str:
    """Serve with an HTTP proxy on every node of a :class:`NamespacedCluster`, each on all of its node's
    addresses (the namespace's loopback and its link to the bridge), on one free port; the head's URL."""
    from helpers.serving import ray_serve

    return ray_serve.start_serve(proxy_location="EveryNode", host="0.0.0.0")
