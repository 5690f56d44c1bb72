"""The local Ray cluster's start: a node that misses Ray's fixed 30 s to register (a busy machine)
is cleaned up and started again. (Its own module: no other cluster may be connected meanwhile.)"""

from __future__ import annotations

import pytest

from helpers.serving import ray_cluster

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own use of pydantic


@pytest.mark.slow
def test_a_start_that_times_out_is_cleaned_up_and_tried_again(monkeypatch):
    """Ray gives a node 30 s to register; a machine busy with other work can miss it. The cluster
    kills what the failed start left and starts again (and gives up, saying why, after a few tries)."""
    import ray.cluster_utils

    real, calls = ray.cluster_utils.Cluster, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            real(*args, **kwargs).shutdown()  # processes came up, then "timed out"
            raise Exception("The current node timed out during startup. This could happen because ...")
        return real(*args, **kwargs)

    monkeypatch.setattr(ray.cluster_utils, "Cluster", flaky)
    local = ray_cluster.LocalCluster(nodes=1)
    try:
        # the simulated miss, then a real start (which a busy machine can make miss its 30 s too)
        assert 2 <= len(calls) <= ray_cluster.STARTUP_TRIES and ray.is_initialized()
    finally:
        local.shutdown()
    assert not ray_cluster._children(), "nothing of either start is left"


def test_started_tries_again_only_when_a_node_missed_its_start_up_time():
    timeout = Exception("The current node timed out during startup. This could happen because ...")
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise timeout
        return "up"

    assert ray_cluster.started(flaky) == "up" and len(calls) == 3

    def other():
        calls.append(1)
        raise ValueError("a port is taken")

    calls.clear()
    with pytest.raises(ValueError):
        ray_cluster.started(other)
    assert len(calls) == 1, "any other error is raised at once"

    def never():
        calls.append(1)
        raise timeout

    calls.clear()
    with pytest.raises(Exception, match="timed out during startup"):
        ray_cluster.started(never)
    assert len(calls) == ray_cluster.STARTUP_TRIES
