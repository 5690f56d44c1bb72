"""Network namespaces on this machine: each node of a local Ray cluster gets an address and a link
of its own, so that one node can be cut off from the others (a network partition, which is what
losing a machine looks like from the rest of a cluster) and every node can run Serve's HTTP proxy on
the same port. Linux only, as root (``ip netns``, ``ip link``); :func:`unavailable` says why not.

    with Network(2) as network:       # a bridge maas-br and namespaces maas-0, maas-1 (10.231.0.1, .2)
        subprocess.run(network.exec(0, ["python", "driver.py"]))   # the driver and the head in maas-0
    # inside: Network(2).cut(1) ... .mend(1)

Every address is on a bridge of this machine with no route beyond it: a process in a namespace that
binds 0.0.0.0 is reachable from the other namespaces and from this machine only.
"""

from __future__ import annotations

import os
import shutil
import subprocess

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
