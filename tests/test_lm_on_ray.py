"""The poem model's OpenAI-compatible service on Ray Serve (helpers.lm.on_ray): two replicas on the
two nodes of a local cluster, the official client pointed at Serve's proxy.

One cluster for the module, started once and always stopped; a toy model (tests/lm_toy.py).
Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os

import pytest

from helpers.serving import loadtest, ray_cluster, ray_serve
from helpers.serving import ray_experiments as rx

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
MODEL = "tang-poet"
#: the first test also starts the cluster (with its retries) and two replicas that load and warm up the model
TIMEOUT = ray_cluster.STARTUP_TRIES * 2 * 45 + 240


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import lm_toy as toy

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the replicas inherit it from the cluster's nodes
    directory = tmp_path_factory.mktemp("toy-on-ray")
    toy.toy_checkpoint(directory, steps=40)
    return directory


@pytest.fixture(scope="module")
def poet(checkpoint):
    from ray import serve

    from helpers.lm import on_ray

    local = ray_cluster.LocalCluster(nodes=2, node_cpus=1)
    try:
        url = ray_serve.start_serve()
        serve.run(on_ray.application(checkpoint, num_replicas=2, slots=4), name=on_ray.APP_NAME, route_prefix="/")
        yield local, url
    finally:
        local.shutdown()


@pytest.mark.timeout(TIMEOUT)
def test_the_official_client_through_ray_streams_what_it_gets_whole(poet):
    from openai import BadRequestError, OpenAI

    _, url = poet
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    whole = client.completions.create(model=MODEL, prompt="春", max_tokens=12, seed=5, temperature=0.8)
    streamed = client.completions.create(model=MODEL, prompt="春", max_tokens=12, seed=5, temperature=0.8, stream=True)
    assert "".join(chunk.choices[0].text for chunk in streamed) == whole.choices[0].text
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "春"}], max_tokens=8, seed=5
    )
    assert chat.choices[0].message.content
    with pytest.raises(BadRequestError) as refused:
        client.completions.create(model=MODEL, prompt="春", max_tokens=12, temperature=9)
    assert "temperature" in str(refused.value)


@pytest.mark.timeout(TIMEOUT)
def test_two_replicas_on_two_nodes_answer_the_same_seed_alike(poet):
    """Many requests of one seed spread over both replicas: every answer is the same text."""
    local, url = poet
    from ray import serve

    states = serve.status().applications["poet"].deployments["PoetService"].replica_states
    assert {str(getattr(k, "value", k)): v for k, v in states.items()} == {"RUNNING": 2}, states
    handle = serve.get_app_handle("poet")
    nodes = {handle.node.remote().result() for _ in range(40)}  # the router spreads calls over both replicas
    assert nodes == set(local.alive_nodes()), "one replica on each node"
    body = json.dumps({"model": MODEL, "prompt": "春", "max_tokens": 10, "seed": 11, "temperature": 1.0}).encode()
    texts = set()
    for _ in range(12):
        status, reply = loadtest.send("POST", f"{url}/v1/completions", body)
        assert status == 200, reply
        texts.add(reply["choices"][0]["text"])
    assert len(texts) == 1


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("fault", ["freeze", "kill"])
def test_a_lost_node_ends_its_streams_and_the_same_request_again_gets_the_same_text(poet, fault):
    """Last: it freezes, then kills, the worker node while streams run (a new node and replica come
    between). The streams on its replica end without [DONE] (their KV caches were there); the
    others finish (on the CI machine the router once sent all eight to the replica that was lost).
    The same request again, same seed, on the replica that is left, writes the whole text, which
    begins with what the client had."""
    from helpers.lm import on_ray

    local, url = poet
    if not local.workers:  # the previous fault's node is gone: a new one, and the replica back on it
        rx.rejoin(local, 2, app=on_ray.APP_NAME, deployment="PoetService")
    table = on_ray.node_loss_during_streams(local, url, range(8), fault=fault)
    broken = table[~table["finished"]]
    assert len(broken), table  # the lost replica held streams (the router may have sent it all eight)
    assert broken["again_finished"].all() and broken["same_text"].all(), table
